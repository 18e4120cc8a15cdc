"""LR schedulers (fastreid_ms/solver/lr_scheduler.py) against PyTorch's formulas, and build_lr_scheduler."""
import math

import numpy as np
import pytest
from mindspore import Parameter, Tensor

from fastreid_ms.config import get_cfg
from fastreid_ms.solver import SGD, CosineAnnealingLR, MultiStepLR, WarmupLR, build_lr_scheduler


def _opt(lrs=(0.1, 0.2)):
    params = [Parameter(Tensor(np.zeros(2, np.float32)), name=f"p{i}") for i in range(len(lrs))]
    return SGD([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)], lr=lrs[0], momentum=0.9)


@pytest.mark.parametrize("method", ["linear", "constant", "exp"])
def test_warmup_factor_per_iteration(method):
    opt = _opt()
    w, wf = 8, 0.05
    sched = WarmupLR(opt, warmup_factor=wf, warmup_iters=w, warmup_method=method)
    for t in range(w + 3):
        if t < w:
            factor = {"linear": wf * (1 - t / w) + t / w, "constant": wf, "exp": wf ** (1 - t / w)}[method]
        else:
            factor = 1.0
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.1 * factor, 0.2 * factor], rel=1e-12)
        sched.step()
    with pytest.raises(ValueError, match="warmup method"):
        WarmupLR(_opt(), warmup_method="cosine")


def test_cosine_recursive_form_equals_closed_form_and_restarts():
    opt = _opt()
    sched = CosineAnnealingLR(opt, T_max=5, eta_min=0.01)
    for t in range(1, 16):
        sched.step()
        for base, g in zip((0.1, 0.2), opt.param_groups):
            closed = 0.01 + (base - 0.01) * (1 + math.cos(math.pi * t / 5)) / 2
            assert g["lr"] == pytest.approx(closed, rel=1e-9, abs=1e-12), t
    with pytest.raises(ValueError, match="T_max"):
        CosineAnnealingLR(_opt(), T_max=0)


def test_multistep_is_chainable_with_a_warmup_scheduler():
    opt = _opt((1.0,))
    ms = MultiStepLR(opt, milestones=[1, 3, 3], gamma=0.5)
    warm = WarmupLR(opt, warmup_factor=0.1, warmup_iters=4, warmup_method="constant")
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    ms.step()  # milestone 1 scales the CURRENT (warm-up) lr ...
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    warm.step()  # ... which the next warm-up step recomputes from the base lr
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    for _ in range(3):
        warm.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0)
    ms.step()
    ms.step()  # milestone 3 counted twice: gamma ** 2
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25)


def test_scheduler_state_dict_roundtrip_resumes_the_sequence():
    opt = _opt()
    sched = CosineAnnealingLR(opt, T_max=7, eta_min=0.0)
    for _ in range(3):
        sched.step()
    state = sched.state_dict()
    assert "optimizer" not in state
    expected = []
    for _ in range(3):
        sched.step()
        expected.append([g["lr"] for g in opt.param_groups])
    opt2 = _opt()
    for g, g_saved in zip(opt2.param_groups, opt.param_groups):
        g["initial_lr"] = g_saved["initial_lr"]
    resumed = CosineAnnealingLR(opt2, T_max=7, eta_min=0.0)
    resumed.load_state_dict(state)
    for g, lr in zip(opt2.param_groups, state["_last_lr"]):
        g["lr"] = lr
    got = []
    for _ in range(3):
        resumed.step()
        got.append([g["lr"] for g in opt2.param_groups])
    assert np.allclose(got, expected, rtol=1e-12)
    ms = MultiStepLR(_opt(), milestones=[2, 2, 5])
    ms_state = ms.state_dict()
    ms2 = MultiStepLR(_opt(), milestones=[9])
    ms2.load_state_dict(ms_state)
    assert ms2.milestones == ms.milestones
    with pytest.raises(KeyError, match="unknown keys"):
        ms2.load_state_dict({"bogus": 1})


@pytest.mark.parametrize("warmup_epochs,delay,expected_t_max", [(3, 0, 17), (0, 0, 20), (3, 5, 15), (4, 0, 16)])
def test_build_lr_scheduler_t_max_and_warmup_entry(warmup_epochs, delay, expected_t_max):
    cfg = get_cfg()
    cfg.SOLVER.SCHED = "CosineAnnealingLR"
    cfg.SOLVER.MAX_EPOCH = 20
    cfg.SOLVER.WARMUP_ITERS = warmup_epochs  # in epochs; the config value is never rewritten
    cfg.SOLVER.DELAY_EPOCHS = delay
    opt = _opt()
    sched = build_lr_scheduler(cfg, opt, iters_per_epoch=10)
    assert cfg.SOLVER.WARMUP_ITERS == warmup_epochs
    assert sched["lr_sched"].T_max == expected_t_max
    assert ("warmup_sched" in sched) == (warmup_epochs > 0)
    if warmup_epochs:
        assert sched["warmup_sched"].warmup_iters == warmup_epochs * 10
        assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * cfg.SOLVER.WARMUP_FACTOR)
    cfg.SOLVER.SCHED = "StepLR"
    with pytest.raises(ValueError, match="SOLVER.SCHED"):
        build_lr_scheduler(cfg, _opt(), 10)
