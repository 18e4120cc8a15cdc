"""Learning-rate schedule (warm-up + cosine / multi-step) against the PyTorch reference fixture ``lr_schedule``.

The schedulers are built and driven exactly like the reference trainer: ``build_optimizer`` for the main and the
meta optimizer on a small model (one param group per tensor), ``build_lr_scheduler`` for each optimizer (its warm-up
lasts ``SOLVER.WARMUP_ITERS`` epochs x iterations per epoch, as in the reference trainer), one ``LRScheduler`` hook per
optimizer, and ``TrainerBase.train``; the lr is read inside ``run_step`` (the value the optimizer step would use).
Every setting comes from the fixture (arrays, and the scheduler name / warm-up method from MANIFEST info).
"""
import numpy as np
import pytest
from golden import Fixture
from mindspore import Parameter, Tensor, nn

from fastreid_ms.config import get_cfg
from fastreid_ms.engine.hooks import LRScheduler
from fastreid_ms.engine.train_loop import TrainerBase
from fastreid_ms.solver import build_lr_scheduler, build_optimizer, warmup_iterations

RTOL = 1e-6  # README: values rounded to float32 once


class _TinyModel(nn.Cell):
    def __init__(self, num_params: int):
        super().__init__()
        self.weights = nn.CellList([_OneParam() for _ in range(num_params)])


class _OneParam(nn.Cell):
    def __init__(self):
        super().__init__()
        self.weight = Parameter(Tensor(np.ones(2, np.float32)), name="weight")


class _LrRecordingTrainer(TrainerBase):
    def __init__(self, optimizers, warmup_iters, delay_epochs):
        super().__init__()
        self.optimizers = optimizers
        self.warmup_iters = warmup_iters
        self.delay_epochs = delay_epochs
        self.lrs = []
        self.epochs = []

    def run_step(self):
        self.lrs.append([[g["lr"] for g in opt.param_groups] for opt in self.optimizers])
        self.epochs.append(self.epoch)


def _run_case(fx, prefix):
    info = fx.info[prefix]
    ipe = int(fx[f"{prefix}_iters_per_epoch"])
    cfg = get_cfg()
    cfg.SOLVER.OPT = "SGD"
    cfg.SOLVER.SCHED = info["sched"]
    cfg.SOLVER.BASE_LR = float(fx[f"{prefix}_base_lr"])
    cfg.SOLVER.MAX_EPOCH = int(fx[f"{prefix}_max_epoch"])
    cfg.SOLVER.WARMUP_FACTOR = float(fx[f"{prefix}_warmup_factor"])
    cfg.SOLVER.WARMUP_ITERS = int(fx[f"{prefix}_warmup_epochs"])
    cfg.SOLVER.WARMUP_METHOD = info["warmup_method"]
    cfg.SOLVER.DELAY_EPOCHS = int(fx[f"{prefix}_delay_epochs"])
    if info["sched"] == "CosineAnnealingLR":
        cfg.SOLVER.ETA_MIN_LR = float(fx[f"{prefix}_eta_min"])
    else:
        cfg.SOLVER.STEPS = [int(s) for s in fx[f"{prefix}_steps"]]
        cfg.SOLVER.GAMMA = float(fx[f"{prefix}_gamma"])
    model = _TinyModel(int(info["n_param_groups"]))
    optimizer, groups = build_optimizer(cfg, model)
    optimizer_meta, _ = build_optimizer(cfg, model, flag="meta")
    assert len(groups) == info["n_param_groups"]
    # WARMUP_ITERS is given in epochs: the warm-up lasts WARMUP_ITERS x iters_per_epoch iterations
    warmup_iters = warmup_iterations(cfg, ipe)
    assert warmup_iters == int(fx[f"{prefix}_warmup_iters"])
    scheduler = build_lr_scheduler(cfg, optimizer, ipe)
    scheduler_meta = build_lr_scheduler(cfg, optimizer_meta, ipe)
    if info["sched"] == "CosineAnnealingLR":
        assert scheduler["lr_sched"].T_max == int(fx[f"{prefix}_t_max"])
    trainer = _LrRecordingTrainer([optimizer, optimizer_meta], warmup_iters, cfg.SOLVER.DELAY_EPOCHS)
    trainer.register_hooks([LRScheduler(optimizer, scheduler), LRScheduler(optimizer_meta, scheduler_meta)])
    trainer.train(0, cfg.SOLVER.MAX_EPOCH, ipe)
    return trainer, optimizer, optimizer_meta


@pytest.mark.parametrize("prefix", ["cos", "ms"])
def test_lr_at_every_iteration_matches_reference(prefix):
    fx = Fixture("lr_schedule")
    expected = fx[f"{prefix}_lr"].astype(np.float64)
    trainer, optimizer, optimizer_meta = _run_case(fx, prefix)
    lrs = np.asarray(trainer.lrs, dtype=np.float64)  # (iterations, optimizers, groups)
    assert lrs.shape[0] == expected.shape[0], f"{prefix}: {lrs.shape[0]} iterations, reference {expected.shape[0]}"
    np.testing.assert_array_equal(np.asarray(trainer.epochs), fx[f"{prefix}_epoch"])
    for o, name in enumerate(["main", "meta"]):
        for g in range(lrs.shape[2]):
            np.testing.assert_allclose(lrs[:, o, g], expected, rtol=RTOL, atol=0,
                                       err_msg=f"{prefix}: {name} optimizer, param group {g}")
    info = fx.info[prefix]
    # the scalar the hook logs is the lr of the last step; the lr left after training is the reference's too
    assert trainer.storage.latest()["lr"][0] == pytest.approx(info["storage_lr_last"], rel=RTOL)
    for opt in (optimizer, optimizer_meta):
        for group in opt.param_groups:
            assert group["lr"] == pytest.approx(info["final_lr_after_training"], rel=RTOL)
