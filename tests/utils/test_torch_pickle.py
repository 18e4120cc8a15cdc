"""Reading PyTorch .pth files without torch (fastreid_ms/utils/torch_pickle.py).

Files are built here with the pickle module and stand-in classes that pickle under PyTorch's module/class names
(fake ``torch`` modules exist in ``sys.modules`` only while the bytes are produced), and real PyTorch files from
tests/data_files are checked against PyTorch's own ``.numpy()`` values stored beside them.
"""
import collections
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from fastreid_ms.utils.torch_pickle import UnsafePickleError, find_state_dict, load_pth, load_pth_object
from torch_writer import FakeStorage, FakeTensor, fake_torch, write_legacy, write_zip  # noqa: F401 (fixture)

DATA = Path(__file__).resolve().parents[1] / "data_files"


def _sample(torch_mod):
    base = np.arange(24, dtype=np.float32).reshape(4, 6) * 0.5 - 3
    st = FakeStorage("0", base)
    values = {
        "w": FakeTensor(st, 0, (4, 6), (6, 1)),
        "w_t": FakeTensor(st, 0, (6, 4), (1, 6)),
        "w_slice": FakeTensor(st, 8, (3, 3), (6, 1)),
        "half": FakeTensor(FakeStorage("1", np.array([1.5, -2, 4], np.float16)), 1, (2,), (1,)),
        "double": FakeTensor(FakeStorage("2", np.array([[1 / 3, 2.0]], np.float64)), 0, (1, 2), (2, 1)),
        "long": FakeTensor(FakeStorage("3", np.array([-(2 ** 40), 7], np.int64)), 0, (2,), (1,)),
        "byte": FakeTensor(FakeStorage("4", np.array([0, 255, 3], np.uint8)), 0, (3,), (1,)),
        "flag": FakeTensor(FakeStorage("5", np.array([True, False], np.bool_)), 0, (2,), (1,)),
        "scalar": FakeTensor(FakeStorage("6", np.array([9.0], np.float32)), 0, (), ()),
        "expand": FakeTensor(FakeStorage("7", np.array([1.0, 2.0], np.float32)), 0, (2, 3), (1, 0)),
    }
    expected = {"w": base, "w_t": base.T, "w_slice": base[1:4, 2:5], "half": np.array([-2, 4], np.float16),
                "double": np.array([[1 / 3, 2.0]]), "long": np.array([-(2 ** 40), 7]),
                "byte": np.array([0, 255, 3], np.uint8), "flag": np.array([True, False]),
                "scalar": np.array(9.0, np.float32), "expand": np.array([[1.0] * 3, [2.0] * 3], np.float32)}
    return collections.OrderedDict(values), expected


def _check(loaded, expected):
    assert list(loaded) == list(expected)
    for k, v in expected.items():
        assert loaded[k].dtype == v.dtype and loaded[k].shape == v.shape, k
        np.testing.assert_array_equal(loaded[k], v, err_msg=k)
        assert loaded[k].flags["C_CONTIGUOUS"] and loaded[k].flags["OWNDATA"], k


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_stand_in_files_dtypes_views_and_nesting(tmp_path, fake_torch, layout):
    state, expected = _sample(fake_torch)
    path = tmp_path / f"{layout}.pth"
    writer = write_zip if layout == "zip" else write_legacy
    writer(path, {"model": state, "epoch": 3, "note": "x"}, fake_torch)
    obj = load_pth_object(path)
    assert obj["epoch"] == 3 and obj["note"] == "x"
    _check(load_pth(path), expected)


def test_find_state_dict_variants_and_errors():
    sd = {"a": np.zeros(1)}
    assert find_state_dict(sd) == sd
    assert find_state_dict({"state_dict": sd, "epoch": 1}) == sd
    assert find_state_dict({"model": {"module": sd}}) == sd
    with pytest.raises(ValueError, match="no state dict found.*'epoch'"):
        find_state_dict({"epoch": 1}, "f.pth")
    with pytest.raises(ValueError, match="expected a dict"):
        find_state_dict([1, 2])


def test_malicious_pickle_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    path = tmp_path / "evil.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"model": Evil()}, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"evil\.pth.*'(posix|os)\.system'"):
        load_pth(path)
    assert not marker.exists()
    legacy = tmp_path / "evil_legacy.pth"
    legacy.write_bytes(pickle.dumps(Evil(), protocol=2))
    with pytest.raises((UnsafePickleError, ValueError)):
        load_pth(legacy)
    assert not marker.exists()


def test_unknown_persistent_id_and_truncated_storage(tmp_path, fake_torch):
    class ModulePickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("module", "Net", "source") if obj == "net" else None

    buf = io.BytesIO()
    ModulePickler(buf, protocol=2).dump({"x": "net"})
    path = tmp_path / "module.pth"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", buf.getvalue())
    with pytest.raises(UnsafePickleError, match="persistent id 'module'"):
        load_pth_object(path)
    state, _ = _sample(fake_torch)
    short = tmp_path / "short.pth"
    write_zip(short, state, fake_torch)
    with zipfile.ZipFile(short) as z:
        records = {n: z.read(n) for n in z.namelist()}
    records["archive/data/0"] = records["archive/data/0"][:10]
    with zipfile.ZipFile(short, "w") as z:
        for n, b in records.items():
            z.writestr(n, b)
    with pytest.raises(ValueError, match="truncated"):
        load_pth(short)
    with pytest.raises(FileNotFoundError):
        load_pth(tmp_path / "missing.pth")


@pytest.mark.parametrize("name,prefix", [("torch_zip_state.pth", "zip/"), ("torch_nested.pth", "nested/"),
                                         ("torch_legacy.pth", "legacy/")])
def test_real_pytorch_files(name, prefix):
    expected = np.load(DATA / "torch_samples_expected.npz")
    keys = [k[len(prefix):] for k in expected.files if k.startswith(prefix)]
    loaded = load_pth(DATA / name)
    loaded = {k[len("module."):] if k.startswith("module.") else k: v for k, v in loaded.items()}
    assert sorted(loaded) == sorted(keys)
    for k in keys:
        ref = expected[prefix + k]
        assert loaded[k].shape == ref.shape and loaded[k].dtype == ref.dtype, k
        np.testing.assert_array_equal(loaded[k], ref, err_msg=k)
    if name == "torch_nested.pth":
        obj = load_pth_object(DATA / name)
        assert obj["epoch"] == 7 and obj["metric"] == 0.5
        assert obj["optimizer"]["param_groups"][0]["lr"] == 0.01
