"""Writing PyTorch-format .pth files without torch, for tests of the torch-free reader: stand-in classes pickle under
PyTorch's module/class names while fake ``torch`` modules exist in ``sys.modules`` (only while the bytes are
produced), in the zip layout of ``torch.save`` (torch >= 1.6) or its legacy layout."""
import collections
import io
import pickle
import struct
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

STORAGE_NAMES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
                  np.dtype(np.float16): "HalfStorage", np.dtype(np.int64): "LongStorage",
                  np.dtype(np.uint8): "ByteStorage", np.dtype(np.bool_): "BoolStorage"}


class FakeTensor:
    """Pickles like a torch tensor: ``_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())``."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        rebuild = sys.modules["torch._utils"]._rebuild_tensor_v2
        return rebuild, (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict())


class FakeStorage:
    def __init__(self, key, array):
        self.key, self.array = key, np.ascontiguousarray(array).ravel()


@pytest.fixture
def fake_torch(monkeypatch):
    """Stand-in ``torch`` / ``torch._utils`` modules so that pickle writes PyTorch's global names."""
    torch_mod = types.ModuleType("torch")
    utils_mod = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called while writing")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils_mod._rebuild_tensor_v2 = _rebuild_tensor_v2
    for name in STORAGE_NAMES.values():
        cls = type(name, (), {"__module__": "torch"})
        setattr(torch_mod, name, cls)
    torch_mod._utils = utils_mod
    monkeypatch.setitem(sys.modules, "torch", torch_mod)
    monkeypatch.setitem(sys.modules, "torch._utils", utils_mod)
    return torch_mod


class ZipPickler(pickle.Pickler):
    def __init__(self, file, torch_mod, legacy=False):
        super().__init__(file, protocol=2)
        self.torch, self.legacy, self.storages = torch_mod, legacy, {}

    def persistent_id(self, obj):
        if not isinstance(obj, FakeStorage):
            return None
        self.storages[obj.key] = obj
        storage_type = getattr(self.torch, STORAGE_NAMES[obj.array.dtype])
        pid = ("storage", storage_type, obj.key, "cpu", obj.array.size)
        return pid + (None,) if self.legacy else pid


def write_zip(path, obj, torch_mod, archive="archive"):
    buf = io.BytesIO()
    pickler = ZipPickler(buf, torch_mod)
    pickler.dump(obj)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{archive}/data.pkl", buf.getvalue())
        z.writestr(f"{archive}/byteorder", "little")
        z.writestr(f"{archive}/version", "3\n")
        for key, st in pickler.storages.items():
            z.writestr(f"{archive}/data/{key}", st.array.astype(st.array.dtype.newbyteorder("<")).tobytes())


def write_legacy(path, obj, torch_mod):
    buf = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True, "protocol_version": 1001}):
        pickle.dump(header, buf, protocol=2)
    pickler = ZipPickler(buf, torch_mod, legacy=True)
    pickler.dump(obj)
    keys = sorted(pickler.storages)
    pickle.dump(keys, buf, protocol=2)
    for key in keys:
        array = pickler.storages[key].array
        buf.write(struct.pack("<q", array.size) + array.tobytes())
    Path(path).write_bytes(buf.getvalue())



def save_state_dict_pth(path, state: dict, torch_mod, wrap_key="model", prefix="module.") -> None:
    """``torch.save({wrap_key: {prefix + name: tensor}}, path)`` for a dict of numpy arrays (what a PyTorch
    FastReID / ACL-DGReID checkpoint of a DataParallel model looks like)."""
    tensors = collections.OrderedDict()
    for i, (name, array) in enumerate(state.items()):
        array = np.ascontiguousarray(array)
        stride = tuple(int(s // array.itemsize) for s in array.strides) if array.ndim else ()
        tensors[prefix + name] = FakeTensor(FakeStorage(str(i), array), 0, tuple(array.shape), stride)
    write_zip(path, {wrap_key: tensors} if wrap_key else tensors, torch_mod)
