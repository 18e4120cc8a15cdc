"""TrainerBase loop and the standard hooks (fastreid_ms/engine/train_loop.py, hooks.py) with dummy trainers."""
import os
import signal

import mindspore
import numpy as np
import pytest
from mindspore import Tensor, nn

from fastreid_ms.config import get_cfg
from fastreid_ms.engine.hooks import (CallbackHook, EvalHook, IterationTimer, LayerFreeze, LRScheduler,
                                      PeriodicCheckpointer, PeriodicWriter, PreciseBN, Preemption, TrainingCurves,
                                      update_bn_stats)
from fastreid_ms.engine.train_loop import HookBase, TrainerBase, TrainingPreempted
from fastreid_ms.layers.batch_norm import BatchNorm
from fastreid_ms.solver import SGD, build_lr_scheduler
from fastreid_ms.utils.events import EventWriter


class _Trainer(TrainerBase):
    def __init__(self, fail_at=None):
        super().__init__()
        self.fail_at = fail_at
        self.seen = []

    def run_step(self):
        assert self.storage.iter == self.iter
        self.seen.append((self.epoch, self.iter))
        if self.iter == self.fail_at:
            raise RuntimeError("boom")


def _recorder(log, tag):
    def make(event):
        return lambda t: log.append((tag, event, t.epoch, t.iter))
    return CallbackHook(**{e: make(e) for e in ("before_train", "after_train", "before_epoch", "after_epoch",
                                                 "before_step", "after_step")})


def test_loop_order_epoch_iter_bookkeeping_and_hook_order():
    log = []
    trainer = _Trainer()
    trainer.register_hooks([_recorder(log, "a"), None, _recorder(log, "b")])
    trainer.train(start_epoch=1, max_epoch=3, iters_per_epoch=2)
    assert trainer.seen == [(1, 2), (1, 3), (2, 4), (2, 5)]
    assert (trainer.start_iter, trainer.max_iter, trainer.iter) == (2, 6, 6)
    events = [(tag, e, ep, it) for tag, e, ep, it in log]
    assert events[:6] == [("a", "before_train", 0, 2), ("b", "before_train", 0, 2),
                          ("a", "before_epoch", 1, 2), ("b", "before_epoch", 1, 2),
                          ("a", "before_step", 1, 2), ("b", "before_step", 1, 2)]
    assert ("a", "after_step", 1, 3) in events and ("a", "after_epoch", 1, 4) in events
    assert events[-2:] == [("a", "after_train", 2, 6), ("b", "after_train", 2, 6)]
    assert trainer.storage.epoch == 2
    with pytest.raises(TypeError, match="HookBase"):
        trainer.register_hooks([object()])


def test_exception_still_runs_after_train():
    log = []
    trainer = _Trainer(fail_at=3)
    trainer.register_hooks([_recorder(log, "a")])
    with pytest.raises(RuntimeError, match="boom"):
        trainer.train(0, 5, 2)
    assert log[-1][:2] == ("a", "after_train")


def test_a_failing_after_train_does_not_replace_the_training_error(tmp_path, capture_logs):
    """The training error is raised even when a hook's after_train fails meanwhile (logged), and the other hooks'
    after_train still run; TrainingCurves draws nothing from a metrics.json without series (no error)."""
    def broken_after_train(trainer):
        raise ValueError("after_train broke")

    log = []
    (tmp_path / "metrics.json").write_text('{"iteration": 0}\n')
    trainer = _Trainer(fail_at=1)
    trainer.register_hooks([TrainingCurves(str(tmp_path), 1), CallbackHook(after_train=broken_after_train)])
    with capture_logs("fastreid_ms") as records:
        with pytest.raises(RuntimeError, match="boom"):
            trainer.train(0, 5, 2)
    assert any("after_train failed" in r.getMessage() and "after_train broke" in str(r.exc_info[1])
               for r in records)
    assert not (tmp_path / "training_curves.png").exists()


class _CountingWriter(EventWriter):
    def __init__(self):
        self.writes, self.closed = [], False

    def write(self):
        from fastreid_ms.utils.events import get_event_storage

        self.writes.append(get_event_storage().iter)

    def close(self):
        self.closed = True


def test_periodic_writer_and_iteration_timer():
    writer = _CountingWriter()
    trainer = _Trainer()
    trainer.register_hooks([IterationTimer(warmup_iter=2), PeriodicWriter([writer], period=3)])
    trainer.train(0, 2, 4)
    # every 3rd iteration (2, 5), the last iteration (7) and each epoch end, where the storage is already at the
    # next iteration (4, 8) so that epoch-end scalars such as evaluation results are not taken as written
    assert writer.writes == [2, 4, 5, 7, 8] and writer.closed
    times = trainer.storage.history("time").values()
    assert [it for _, it in times] == [1, 2, 3, 4, 5, 6, 7]
    with pytest.raises(TypeError, match="EventWriter"):
        PeriodicWriter([object()])


def test_eval_hook_period_end_of_training_and_flattening():
    calls = []

    def evaluate():
        calls.append(trainer.epoch)
        return {"Market1501": {"Rank-1": 80.0 + len(calls), "metric": 70.0}}

    trainer = _Trainer()
    trainer.register_hooks([EvalHook(2, evaluate)])
    trainer.train(0, 5, 1)
    assert calls == [1, 3, 4]  # epochs 2 and 4 (1-based), then after training since 5 % 2 != 0
    assert trainer.storage.latest()["Market1501/Rank-1"][0] == 83.0
    assert trainer.storage.smoothing_hints()["Market1501/metric"] is False
    bad = _Trainer()
    bad.register_hooks([EvalHook(1, lambda: {"x": "text"})])
    with pytest.raises(ValueError, match="nested dict of float"):
        bad.train(0, 1, 1)


class _FakeCheckpointer:
    def __init__(self):
        self.saved = []

    def save(self, name, **kwargs):
        self.saved.append((name, kwargs["epoch"], kwargs["metric"]))


def test_periodic_checkpointer_reference_schedule():
    metrics = {4: 10.0, 9: 30.0, 14: 20.0, 15: 25.0}

    def evaluate():
        return {"metric": metrics.get(trainer.epoch, 0.0)} if (trainer.epoch + 1) % 5 == 0 else None

    ckpt = _FakeCheckpointer()
    trainer = _Trainer()
    trainer.cfg = get_cfg()
    trainer.cfg.DATASETS.TESTS = ("CUHK03",)
    trainer.register_hooks([EvalHook(5, evaluate), PeriodicCheckpointer(ckpt, 5, save_every_epoch_after=12)])
    trainer.train(0, 16, 1)
    assert ckpt.saved == [
        ("model_best", 4, 10.0), ("model_0004", 4, 10.0),
        ("model_best", 9, 30.0), ("model_0009", 9, 30.0),
        ("model_0012", 12, 30.0), ("model_0013", 13, 30.0),
        ("model_0014", 14, 20.0), ("model_0014", 14, 20.0),  # not better than 30: no model_best
        ("model_0015", 15, 20.0), ("model_final", 15, 20.0),
    ]


def test_periodic_checkpointer_metric_of_first_test_set_and_default():
    ckpt = _FakeCheckpointer()
    trainer = _Trainer()
    trainer.cfg = get_cfg()
    trainer.cfg.DATASETS.TESTS = ("A", "B")
    trainer.register_hooks([EvalHook(1, lambda: {"A": {"metric": 5.0}, "B": {"metric": 9.0}}),
                            PeriodicCheckpointer(ckpt, 1, save_every_epoch_after=-1)])
    trainer.train(0, 2, 1)
    assert ckpt.saved == [("model_best", 0, 5.0), ("model_0000", 0, 5.0), ("model_final", 1, 5.0)]
    first = _FakeCheckpointer()
    plain = _Trainer()
    plain.register_hooks([PeriodicCheckpointer(first, 1, save_every_epoch_after=-1)])
    plain.train(0, 1, 1)
    assert first.saved == [("model_final", 0, -1)]


class _Scaler:
    def __init__(self, scales):
        self._scales = list(scales)

    def get_scale(self):
        return self._scales[0]

    def advance(self):
        self._scales.pop(0)


def test_lr_scheduler_hook_skips_warmup_step_when_the_loss_scale_changed():
    from mindspore import Parameter

    params = [Parameter(Tensor(np.zeros(1, np.float32)), name="w")]
    opt = SGD(params, lr=1.0, momentum=0.9)
    cfg = get_cfg()
    # warm-up: 2 epochs x 2 iterations
    cfg.SOLVER.SCHED, cfg.SOLVER.WARMUP_ITERS, cfg.SOLVER.WARMUP_FACTOR = "CosineAnnealingLR", 2, 0.2
    sched = build_lr_scheduler(cfg, opt, iters_per_epoch=2)

    class AmpTrainer(_Trainer):
        def run_step(self):
            super().run_step()
            if self.iter == 1:
                self.grad_scaler.advance()  # overflow at iteration 1: scale changes

    trainer = AmpTrainer()
    trainer.grad_scaler = _Scaler([8.0, 4.0])
    trainer.warmup_iters = 4
    trainer.register_hooks([LRScheduler(opt, sched)])
    trainer.train(0, 1, 2)
    assert sched["warmup_sched"].last_epoch == 1  # stepped after iteration 0 only
    lrs = [v for v, _ in trainer.storage.history("lr").values()]
    assert lrs == pytest.approx([0.2, 0.4])


class _BNNet(nn.Cell):
    def __init__(self):
        super().__init__()
        self.body = nn.SequentialCell([BatchNorm(3)])
        self.head = BatchNorm(3)

    def construct(self, batch):
        return self.head(self.body(Tensor(batch)))


def test_precise_bn_averages_batch_statistics():
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((4, 3, 2, 2)).astype(np.float32) * (i + 1) for i in range(3)]
    net = _BNNet()
    net.set_train(True)
    forward = lambda model, batch: model(batch)  # noqa: E731 (the test net takes the bare batch)
    update_bn_stats(net, iter(batches), num_iters=3, forward=forward)
    mean = np.mean([b.mean(axis=(0, 2, 3)) for b in batches], axis=0)
    var = np.mean([b.var(axis=(0, 2, 3), ddof=1) for b in batches], axis=0)
    np.testing.assert_allclose(net.body[0].running_mean.asnumpy(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.body[0].running_var.asnumpy(), var, rtol=1e-5, atol=1e-6)
    assert net.body[0].momentum == 0.1
    with pytest.raises(ValueError, match="ran out"):
        update_bn_stats(net, iter(batches), num_iters=5, forward=forward)
    hook_net = _BNNet()
    hook_net.set_train(True)
    trainer = _Trainer()
    trainer.register_hooks([PreciseBN(hook_net, batches, num_iter=2, forward=forward)])
    trainer.train(0, 2, 1)
    mean2 = np.mean([b.mean(axis=(0, 2, 3)) for b in batches[:2]], axis=0)
    np.testing.assert_allclose(hook_net.body[0].running_mean.asnumpy(), mean2, rtol=1e-5, atol=1e-6)


def test_layer_freeze_puts_children_in_eval_mode_for_freeze_iters():
    net = _BNNet()
    net.set_train(True)
    states = []

    class Probe(HookBase):
        def before_step(self):
            states.append((net.body.training, net.body[0].training, net.head.training))

    trainer = _Trainer()
    trainer.register_hooks([LayerFreeze(net, ["body", "missing"], freeze_iters=2), Probe()])
    trainer.train(0, 2, 2)
    assert states == [(False, False, True), (False, False, True), (True, True, True), (True, True, True)]


class _SavingCheckpointer:
    def __init__(self):
        self.saved = []

    def save(self, name, **extra):
        self.saved.append((name, extra))
        return f"out/{name}.ckpt"


def _signal_at(iteration, signum):
    return CallbackHook(before_step=lambda t: os.kill(os.getpid(), signum) if t.iter == iteration else None)


def test_preemption_finishes_the_step_then_stops_with_a_checkpoint_and_restores_the_handler():
    ckpt, trainer = _SavingCheckpointer(), _Trainer()
    after = []
    trainer.register_hooks([_signal_at(3, signal.SIGTERM), Preemption(ckpt),
                            CallbackHook(after_step=lambda t: after.append(t.iter))])
    with pytest.raises(TrainingPreempted) as stopped:
        trainer.train(0, 4, 3)
    assert trainer.seen[-1] == (1, 3) and after[-1] == 3  # the step ran and every hook saw it
    assert ckpt.saved == [("model_preempted", {"epoch": 1, "iteration": 4, "metric": -1})]
    assert (stopped.value.iteration, stopped.value.exit_code) == (4, 128 + signal.SIGTERM)
    assert str(stopped.value) == ("stopped by SIGTERM before iteration 4; checkpoint out/model_preempted.ckpt "
                                  "written; continue with --resume")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    resumed = _Trainer()
    resumed.train(0, 4, 3, start_iter=4)
    assert resumed.seen[0] == (1, 4) and resumed.seen[-1] == (3, 11)


def _add_one(x):
    return x + 1


def test_preemption_reports_sigint_after_mindspore_ran_a_graph():
    """Running a compiled graph installs MindSpore's SIGINT handler (which sends SIGTERM); the hook takes SIGINT
    back after the step."""
    def compile_at_1(t):
        if t.iter == 1:
            mindspore.jit(_add_one)(Tensor(np.ones(1, np.float32)))

    ckpt, trainer = _SavingCheckpointer(), _Trainer()
    trainer.register_hooks([CallbackHook(after_step=compile_at_1), _signal_at(3, signal.SIGINT), Preemption(ckpt)])
    with pytest.raises(TrainingPreempted) as stopped:
        trainer.train(0, 4, 3)
    assert (stopped.value.signum, stopped.value.exit_code, stopped.value.iteration) == (signal.SIGINT, 130, 4)


def test_preemption_at_an_epoch_end_lets_the_epoch_end_run_first():
    ckpt, trainer = _SavingCheckpointer(), _Trainer()
    epochs_done = []
    trainer.register_hooks([_signal_at(5, signal.SIGINT),
                            CallbackHook(after_epoch=lambda t: epochs_done.append(t.epoch)), Preemption(ckpt)])
    with pytest.raises(TrainingPreempted) as stopped:
        trainer.train(0, 4, 3)
    assert epochs_done == [0, 1] and stopped.value.iteration == 6 and stopped.value.exit_code == 130
    assert ckpt.saved == [("model_preempted", {"epoch": 1, "iteration": 6, "metric": -1})]
