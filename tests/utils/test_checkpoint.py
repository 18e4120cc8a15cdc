"""Checkpointer (fastreid_ms/utils/checkpoint.py): round trip of weights and training state, atomic writes, PyTorch
files, shape-mismatch reporting."""
import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import mindspore
import numpy as np
import pytest
from mindspore import Parameter, Tensor, nn

from fastreid_ms.solver import SGD, CosineAnnealingLR
from fastreid_ms.utils.checkpoint import CheckpointError, Checkpointer, CheckpointWriteError
from fastreid_ms.utils.periodic_checkpointer import PeriodicCheckpointer

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data_files"


class _Net(nn.Cell):
    """PyTorch-named parameters, a buffer, and an empty classifier (NUM_CLASSES = 0 as in eval-only runs)."""

    def __init__(self, num_classes=3, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.conv = nn.SequentialCell([_Conv(rng), _BN(rng)])
        self.fc = Parameter(Tensor(rng.standard_normal((num_classes, 3)).astype(np.float32)), name="fc")
        self.empty = Parameter(Tensor(np.zeros((0, 4), np.float32)), name="empty")


class _Conv(nn.Cell):
    def __init__(self, rng):
        super().__init__()
        self.weight = Parameter(Tensor(rng.standard_normal((3, 2, 1, 1)).astype(np.float32)), name="weight")
        self.bias = Parameter(Tensor(rng.standard_normal(3).astype(np.float32)), name="bias")


class _BN(nn.Cell):
    def __init__(self, rng):
        super().__init__()
        self.weight = Parameter(Tensor(rng.standard_normal(3).astype(np.float32)), name="weight")
        self.bias = Parameter(Tensor(rng.standard_normal(3).astype(np.float32)), name="bias")
        self.running_mean = Parameter(Tensor(rng.standard_normal(3).astype(np.float32)), name="running_mean",
                                      requires_grad=False)
        self.running_var = Parameter(Tensor(rng.random(3).astype(np.float32) + 1), name="running_var",
                                     requires_grad=False)


class _Sampler:
    def __init__(self):
        self.state = {"epoch": 0, "order": np.arange(5, dtype=np.int64), 3: ("a", 1.5, None), "seeds": [1, 2]}

    def state_dict(self):
        return self.state

    def load_state_dict(self, state):
        self.state = state


def _training_objects(net):
    params = [p for p in net.trainable_params() if p.size]
    opt = SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-3)
    sched = CosineAnnealingLR(opt, T_max=5)
    return opt, sched


def _weights(net):
    return {n: p.asnumpy().copy() for n, p in net.parameters_and_names()}


def test_roundtrip_weights_optimizer_scheduler_rng_and_extra(tmp_path):
    net = _Net()
    opt, sched = _training_objects(net)
    for _ in range(2):
        opt.step([Tensor(np.full(p.shape, 0.5, np.float32)) for p in opt.parameters])
        sched.step()
    sampler = _Sampler()
    sampler.state["order"] = np.array([4, 2, 0], np.int64)
    ckpt = Checkpointer(net, str(tmp_path), optimizer=opt, lr_sched=sched, sampler=sampler)
    random.seed(1)
    np.random.seed(2)
    path = ckpt.save("model_0003", epoch=3, metric=41.5, note="text")
    after_save = (random.random(), np.random.rand())
    assert path == os.path.join(str(tmp_path), "model_0003.ckpt")
    assert (tmp_path / "last_checkpoint").read_text() == "model_0003.ckpt"
    assert ckpt.has_checkpoint() and ckpt.get_all_checkpoint_files() == [path]

    fresh = _Net(seed=1)
    opt2, sched2 = _training_objects(fresh)
    sampler2 = _Sampler()
    ckpt2 = Checkpointer(fresh, str(tmp_path), optimizer=opt2, lr_sched=sched2, sampler=sampler2)
    extra = ckpt2.resume_or_load("", resume=True)
    assert extra == {"epoch": 3, "metric": 41.5, "note": "text"}
    for name, value in _weights(net).items():
        np.testing.assert_array_equal(_weights(fresh)[name], value, err_msg=name)
    state, state2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert sorted(state) == sorted(state2) and state
    for i in state:
        np.testing.assert_array_equal(state2[i]["momentum_buffer"], state[i]["momentum_buffer"])
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
    assert sched2.last_epoch == sched.last_epoch == 2
    assert sampler2.state["epoch"] == 0 and sampler2.state[3] == ("a", 1.5, None) and sampler2.state["seeds"] == [1, 2]
    np.testing.assert_array_equal(sampler2.state["order"], [4, 2, 0])
    assert (random.random(), np.random.rand()) == after_save  # RNG states restored

    # the file is an ordinary MindSpore checkpoint: the weights load by name
    plain = _Net(seed=2)
    mindspore.load_param_into_net(plain, mindspore.load_checkpoint(path))
    np.testing.assert_array_equal(plain.conv[1].running_var.asnumpy(), net.conv[1].running_var.asnumpy())


def test_resume_false_loads_weights_only_and_empty_path(tmp_path):
    net = _Net()
    opt, sched = _training_objects(net)
    Checkpointer(net, str(tmp_path), optimizer=opt).save("model_final", epoch=9)
    other = _Net(seed=3)
    opt2, _ = _training_objects(other)
    opt2.param_groups[0]["lr"] = 123.0
    ckpt = Checkpointer(other, str(tmp_path / "elsewhere"), optimizer=opt2)
    extra = ckpt.resume_or_load(str(tmp_path / "model_final.ckpt"), resume=True)  # no last_checkpoint there
    assert extra == {"epoch": 9} and opt2.param_groups[0]["lr"] == 123.0
    np.testing.assert_array_equal(other.fc.asnumpy(), net.fc.asnumpy())
    assert ckpt.load("") == {}
    with pytest.raises(FileNotFoundError, match="not found"):
        ckpt.load(str(tmp_path / "nope.ckpt"))


def test_unsupported_state_type_names_the_entry(tmp_path):
    class Bad:
        def state_dict(self):
            return {"inner": {"obj": object()}}

    with pytest.raises(TypeError, match=r"state\.checkpointables\.bad\.inner\.obj"):
        Checkpointer(_Net(), str(tmp_path), bad=Bad()).save("x")
    assert os.listdir(tmp_path) == []


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    net = _Net()
    ckpt = Checkpointer(net, str(tmp_path))
    good = ckpt.save("model_0001", epoch=1)
    original = _weights(net)

    def broken_save(save_obj, ckpt_file_name, **kwargs):
        with open(ckpt_file_name, "wb") as f:
            f.write(b"\x00partial checkpoint bytes")
        raise OSError("disk full")

    monkeypatch.setattr(mindspore, "save_checkpoint", broken_save)
    net.fc.set_data(Tensor(np.zeros((3, 3), np.float32)))
    with pytest.raises(CheckpointWriteError, match=f"cannot write checkpoint {tmp_path / 'model_0002.ckpt'}: disk "
                                                   f"full; the checkpoints written before and last_checkpoint are "
                                                   f"unchanged"):
        ckpt.save("model_0002", epoch=2)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0001.ckpt"]
    assert ckpt.get_checkpoint_file() == good
    restored = _Net(seed=5)
    assert Checkpointer(restored, str(tmp_path)).resume_or_load("", resume=True) == {"epoch": 1}
    np.testing.assert_array_equal(restored.fc.asnumpy(), original["fc"])


_KILLED_WRITER = textwrap.dedent("""
    import sys, time
    import mindspore
    sys.path.insert(0, {tests!r})
    from test_checkpoint import _Net
    from fastreid_ms.utils.checkpoint import Checkpointer
    ckpt = Checkpointer(_Net(), {out!r})
    ckpt.save("model_a", epoch=1)
    real = mindspore.save_checkpoint
    def slow(save_obj, name, **kw):
        real(save_obj[:1], name, **kw)  # part of the data is on disk ...
        print("WRITING", flush=True)
        time.sleep(120)                 # ... when the process is killed
    mindspore.save_checkpoint = slow
    ckpt.save("model_b", epoch=2)
""")


def test_process_killed_during_save_leaves_last_checkpoint_loadable(tmp_path):
    code = _KILLED_WRITER.format(tests=str(REPO / "tests" / "utils"), out=str(tmp_path))
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                            text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "WRITING", f"child did not reach the write: {line!r}, rc={proc.poll()}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    files = sorted(os.listdir(tmp_path))
    assert "model_b.ckpt" not in files and "model_a.ckpt" in files
    ckpt = Checkpointer(_Net(seed=7), str(tmp_path))
    assert ckpt.get_checkpoint_file().endswith("model_a.ckpt")
    assert ckpt.get_all_checkpoint_files() == [str(tmp_path / "model_a.ckpt")]  # the partial temp file is hidden
    assert ckpt.resume_or_load("", resume=True) == {"epoch": 1}
    np.testing.assert_array_equal(ckpt.model.fc.asnumpy(), _Net().fc.asnumpy())


def test_shape_mismatch_is_skipped_with_one_info_line(tmp_path, capture_logs):
    Checkpointer(_Net(num_classes=3), str(tmp_path)).save("model_best")
    eval_net = _Net(num_classes=0, seed=4)  # eval-only: 0 classes
    eval_net.extra = Parameter(Tensor(np.ones(2, np.float32)), name="extra")
    with capture_logs("fastreid_ms.utils.checkpoint") as records:
        Checkpointer(eval_net).load(str(tmp_path / "model_best.ckpt"))
    skipped = [r.getMessage() for r in records if "different shape" in r.getMessage()]
    assert len(skipped) == 1 and "fc (3, 3) vs (0, 3)" in skipped[0]
    assert not [r for r in records if r.levelno >= logging.WARNING]
    assert any("not found in the checkpoint: extra" in r.getMessage() for r in records)
    np.testing.assert_array_equal(eval_net.conv[0].weight.asnumpy(), _Net().conv[0].weight.asnumpy())


def test_load_pytorch_checkpoint_with_module_prefix(tmp_path, capture_logs):
    from fastreid_ms.utils.torch_pickle import load_pth

    class TorchLike(nn.Cell):  # Sequential(Conv2d(2, 3, 1), BatchNorm2d(3)) names
        def __init__(self):
            super().__init__()
            rng = np.random.default_rng(0)
            self.layers = nn.SequentialCell([_Conv(rng), _BN(rng)])

    net = TorchLike()
    renamed = {n.replace("layers.", ""): p for n, p in net.parameters_and_names()}
    for name, param in renamed.items():
        param.name = name
    flat = nn.SequentialCell([net.layers[0], net.layers[1]])
    with capture_logs("fastreid_ms.utils.checkpoint") as records:
        extra = Checkpointer(flat).load(str(DATA / "torch_nested.pth"))
    assert extra == {"epoch": 7, "metric": 0.5}
    expected = load_pth(DATA / "torch_nested.pth")
    for name, param in flat.parameters_and_names():
        np.testing.assert_array_equal(param.asnumpy(), expected["module." + name], err_msg=name)
    assert any("['optimizer'] is not restored" in r.getMessage() for r in records)


def test_checkpoints_get_the_umask_mode(tmp_path):
    """mindspore.save_checkpoint writes 0400; checkpoints are readable by whoever the umask allows, like any file."""
    previous = os.umask(0o022)
    try:
        path = Checkpointer(_Net(), str(tmp_path)).save("model_0000", epoch=0)
    finally:
        os.umask(previous)
    assert os.stat(path).st_mode & 0o777 == 0o644


def test_best_metric_survives_a_resume(tmp_path):
    """The first evaluation after a resume replaces model_best only when it beats the best before the crash."""
    ckpt = Checkpointer(_Net(), str(tmp_path))
    before = PeriodicCheckpointer(ckpt, 1, max_epoch=4, save_every_epoch_after=-1)
    before.step(0, metric=50.0)
    before.step(1, metric=40.0)
    assert ckpt.load(str(tmp_path / "model_best.ckpt"), checkpointables=[])["epoch"] == 0
    resumed = PeriodicCheckpointer(Checkpointer(_Net(), str(tmp_path)), 1, max_epoch=4, save_every_epoch_after=-1)
    resumed.restore(ckpt.resume_or_load("", resume=True))
    assert (resumed.best_metric, resumed.best_epoch) == (50.0, 0)
    resumed.step(2, metric=45.0)
    assert ckpt.load(str(tmp_path / "model_best.ckpt"), checkpointables=[])["epoch"] == 0
    resumed.step(3, metric=55.0)
    best = ckpt.load(str(tmp_path / "model_best.ckpt"), checkpointables=[])
    assert (best["epoch"], best["best_metric"], best["best_epoch"]) == (3, 55.0, 3)


def test_checkpoint_keep_removes_only_old_periodic_files(tmp_path):
    """SOLVER.CHECKPOINT_KEEP 2: the two newest model_NNNN files stay (also across a resumed run's older files);
    model_best and model_final are never removed, and last_checkpoint always names an existing file."""
    (tmp_path / "model_0000.ckpt").write_bytes(b"from an earlier run")
    ckpt = Checkpointer(_Net(), str(tmp_path))
    periodic = PeriodicCheckpointer(ckpt, 1, max_epoch=6, save_every_epoch_after=-1, max_to_keep=2)
    for epoch, metric in zip(range(1, 6), (10.0, 30.0, 20.0, 25.0, 5.0)):
        periodic.step(epoch, metric=metric)
        assert os.path.isfile(ckpt.get_checkpoint_file())
    files = sorted(f for f in os.listdir(tmp_path) if f.endswith(".ckpt"))
    assert files == ["model_0003.ckpt", "model_0004.ckpt", "model_best.ckpt", "model_final.ckpt"]
    assert ckpt.load(str(tmp_path / "model_best.ckpt"), checkpointables=[])["epoch"] == 2


def test_checkpoint_keep_zero_keeps_everything_and_negative_is_refused(tmp_path):
    ckpt = Checkpointer(_Net(), str(tmp_path))
    periodic = PeriodicCheckpointer(ckpt, 1, max_epoch=4, save_every_epoch_after=-1)
    for epoch in range(4):
        periodic.step(epoch, metric=float(epoch))
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000.ckpt", "model_0001.ckpt",
                                            "model_0002.ckpt", "model_best.ckpt", "model_final.ckpt"]
    with pytest.raises(ValueError, match="SOLVER.CHECKPOINT_KEEP must be >= 0"):
        PeriodicCheckpointer(ckpt, 1, max_epoch=4, max_to_keep=-1)


def _damage(path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:  # one flipped byte inside the tensor data
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how,message", [("truncate", "is truncated"), ("flip", "is damaged: its CRC32 does not match")])
def test_damaged_checkpoint_is_refused_before_any_weight_is_loaded(tmp_path, how, message):
    net = _Net()
    path = Checkpointer(net, str(tmp_path)).save("model_0000", epoch=0)
    _damage(Path(path), how)
    target = _Net(seed=9)
    before = _weights(target)
    with pytest.raises(CheckpointError, match=f"checkpoint {path} {message}"):
        Checkpointer(target, str(tmp_path)).load(path, checkpointables=[])
    for name, value in _weights(target).items():
        np.testing.assert_array_equal(value, before[name])


def test_resume_falls_back_to_the_newest_intact_checkpoint(tmp_path, capture_logs):
    net = _Net()
    ckpt = Checkpointer(net, str(tmp_path))
    ckpt.save("model_0000", epoch=0)
    os.utime(tmp_path / "model_0000.ckpt", (1, 1))
    net.fc.set_data(Tensor(np.full((3, 3), 2.0, np.float32)))
    ckpt.save("model_0001", epoch=1)
    os.utime(tmp_path / "model_0001.ckpt", (2, 2))
    expected = _weights(net)
    ckpt.save("model_0002", epoch=2)
    _damage(tmp_path / "model_0002.ckpt", "truncate")
    resumed = Checkpointer(_Net(seed=3), str(tmp_path))
    with capture_logs("fastreid_ms.utils.checkpoint") as records:
        assert resumed.resume_or_load("", resume=True) == {"epoch": 1}
    np.testing.assert_array_equal(resumed.model.fc.asnumpy(), expected["fc"])
    messages = [r.getMessage() for r in records]
    assert any("Resuming from" in m and "model_0001.ckpt, the newest intact checkpoint, instead of" in m
               for m in messages), messages
    for name in ("model_0000.ckpt", "model_0001.ckpt"):
        _damage(tmp_path / name, "flip")
    with pytest.raises(CheckpointError, match="no intact checkpoint to resume from"):
        Checkpointer(_Net(), str(tmp_path)).resume_or_load("", resume=True)


def test_checkpoint_cut_at_an_entry_boundary_is_not_resumed_from(tmp_path):
    """A file cut between two tensors still parses; the missing CRC32 record (or training state) gives it away."""
    net = _Net()
    ckpt = Checkpointer(net, str(tmp_path))
    path = Path(ckpt.save("model_0000", epoch=0))
    content = path.read_bytes()
    path.write_bytes(content[:-17])  # only the CRC32 record removed
    with pytest.raises(CheckpointError, match="is truncated \\(its CRC32 record is missing\\)"):
        Checkpointer(_Net(), str(tmp_path)).load(str(path), checkpointables=[])
