"""Optimizers (fastreid_ms/solver/optim.py, build.py) against numpy re-implementations of torch.optim formulas, with
the fused update compiled (the default) and op by op."""
import numpy as np
import pytest
from mindspore import Parameter, Tensor, nn, ops

import mindspore
from fastreid_ms.config import get_cfg
from fastreid_ms.solver import SGD, Adam, AdamW, StickyGradMask, build_optimizer
from fastreid_ms.solver.build import is_norm_cell


def _params(rng, shapes, prefix="p"):
    return [Parameter(Tensor(rng.standard_normal(s).astype(np.float32)), name=f"{prefix}{i}")
            for i, s in enumerate(shapes)]


def _torch_sgd(p, grads, lrs, momentum, wd, nesterov, mask):
    """torch.optim.SGD (dampening 0) on one parameter; steps where mask is False are skipped (grad None)."""
    p = p.copy()
    buf = None
    f32 = np.float32
    for g, lr, m in zip(grads, lrs, mask):
        if not m:
            continue
        d = g + f32(wd) * p
        if momentum:
            buf = d.copy() if buf is None else f32(momentum) * buf + d
            d = d + f32(momentum) * buf if nesterov else buf
        p = p - f32(lr) * d
    return p


def _torch_adam(p, grads, lrs, wd, mask, decoupled, betas=(0.9, 0.999), eps=1e-8):
    p = p.astype(np.float64)
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    t = 0
    for g, lr, keep in zip(grads, lrs, mask):
        if not keep:
            continue
        t += 1
        g = g.astype(np.float64)
        if wd:
            if decoupled:
                p = p * (1 - lr * wd)
            else:
                g = g + wd * p
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        bc1, bc2 = 1 - betas[0] ** t, 1 - betas[1] ** t
        p = p - lr / bc1 * m / (np.sqrt(v) / np.sqrt(bc2) + eps)
    return p


@pytest.mark.parametrize("momentum,nesterov,compile", [(0.9, False, True), (0.9, True, True), (0.0, False, True),
                                                      (0.9, False, False), (0.0, False, False)])
def test_sgd_matches_torch_formula_with_lr_changes_and_masks(momentum, nesterov, compile):
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (5,), (2, 2, 3)]
    params = _params(rng, shapes)
    init = [p.asnumpy().copy() for p in params]
    opt = SGD([{"params": [p], "lr": 0.1, "weight_decay": wd} for p, wd in zip(params, (5e-4, 0.0, 1e-2))],
              lr=0.1, momentum=momentum, nesterov=nesterov, compile=compile)
    steps = 4
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(steps)]
    lrs = [0.1, 0.05, 0.2, 0.01]
    # parameter 1 has no gradient in steps 0 and 2 (first update happens at step 1: buffer = d_p then)
    masks = [[True, False, True], [True, True, True], [True, False, True], [True, True, False]]
    for k in range(steps):
        for group in opt.param_groups:
            group["lr"] = lrs[k]
        opt.step([Tensor(g) for g in grads[k]], has_grad=masks[k])
    for i, p in enumerate(params):
        wd = opt.param_groups[i]["weight_decay"]
        ref = _torch_sgd(init[i], [g[i] for g in grads], lrs, momentum, wd, nesterov, [m[i] for m in masks])
        np.testing.assert_allclose(p.asnumpy(), ref, rtol=1e-6, atol=1e-7, err_msg=f"param {i}")
    state = opt.state_dict()["state"]
    if momentum == 0:
        assert state == {}
    else:
        assert sorted(state) == [0, 1, 2] and all(set(st) == {"momentum_buffer"} for st in state.values())


def test_sgd_zero_gradient_is_skipped_unless_sticky_and_step_rejects_wrong_lengths():
    """An all-zero gradient means "no .grad" (PyTorch >= 2): no update, no weight decay, no momentum buffer; the
    step returns which gradients were non-zero. ``sticky`` (PyTorch 1.x zero_grad memory) updates it anyway."""
    rng = np.random.default_rng(1)
    params = _params(rng, [(2,), (3,)])
    before = params[1].asnumpy().copy()
    opt = SGD(params, lr=0.1, momentum=0.9, weight_decay=0.1)
    present = opt.step([Tensor(np.ones(2, np.float32)), Tensor(np.zeros(3, np.float32))])
    assert present.asnumpy().tolist() == [True, False]
    np.testing.assert_array_equal(params[1].asnumpy(), before)
    assert 1 not in opt.state_dict()["state"]
    opt.step([Tensor(np.ones(2, np.float32)), Tensor(np.zeros(3, np.float32))], sticky=[False, True])
    np.testing.assert_allclose(params[1].asnumpy(), before - 0.1 * 0.1 * before, rtol=1e-6)
    assert 1 in opt.state_dict()["state"]
    with pytest.raises(ValueError, match="2 parameters"):
        opt.step([Tensor(np.ones(2, np.float32))])
    with pytest.raises(ValueError, match="has_grad"):
        opt.step([Tensor(np.ones(2, np.float32)), Tensor(np.ones(3, np.float32))], has_grad=[True])
    with pytest.raises(ValueError, match="nesterov"):
        SGD(params, lr=0.1, momentum=0.0, nesterov=True)


@pytest.mark.parametrize("cls,decoupled,compile", [(Adam, False, True), (AdamW, True, True), (Adam, False, False)])
def test_adam_matches_torch_formula(cls, decoupled, compile):
    rng = np.random.default_rng(2)
    shapes = [(4, 3), (6,)]
    params = _params(rng, shapes)
    init = [p.asnumpy().copy() for p in params]
    opt = cls(params, lr=1e-2, weight_decay=0.05, compile=compile)
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(3)]
    lrs = [1e-2, 5e-3, 2e-2]
    masks = [[True, False], [True, True], [False, True]]
    for k in range(3):
        for group in opt.param_groups:
            group["lr"] = lrs[k]
        opt.step([Tensor(g) for g in grads[k]], has_grad=masks[k])
    for i, p in enumerate(params):
        ref = _torch_adam(init[i], [g[i] for g in grads], lrs, 0.05, [m[i] for m in masks], decoupled)
        np.testing.assert_allclose(p.asnumpy(), ref, rtol=2e-6, atol=2e-7, err_msg=f"param {i}")
    assert [opt.state_dict()["state"][i]["step"] for i in range(2)] == [2, 2]


def test_optimizer_state_dict_roundtrip_continues_identically():
    rng = np.random.default_rng(3)
    shapes = [(3, 2), (4,)]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(4)]
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    for cls, kwargs in [(SGD, dict(lr=0.1, momentum=0.9, weight_decay=1e-3)), (Adam, dict(lr=1e-2))]:
        straight = [Parameter(Tensor(v.copy()), name=f"s{i}") for i, v in enumerate(init)]
        opt = cls(straight, **kwargs)
        for g in grads:
            opt.step([Tensor(x) for x in g])
        resumed = [Parameter(Tensor(v.copy()), name=f"r{i}") for i, v in enumerate(init)]
        first = cls(resumed, **kwargs)
        for g in grads[:2]:
            first.step([Tensor(x) for x in g])
        state = first.state_dict()
        assert all(isinstance(v, np.ndarray) for st in state["state"].values() for k, v in st.items() if k != "step")
        second = cls(resumed, **kwargs)
        second.load_state_dict(state)
        for g in grads[2:]:
            second.step([Tensor(x) for x in g])
        for a, b in zip(straight, resumed):
            np.testing.assert_allclose(b.asnumpy(), a.asnumpy(), rtol=1e-6, atol=1e-7)
        bad = cls([Parameter(Tensor(np.zeros((3, 2), np.float32)), name="x")], **kwargs)
        with pytest.raises(ValueError, match="param group"):
            bad.load_state_dict(state)


def test_sticky_grad_mask_emulates_torch1_zero_grad_across_optimizers():
    rng = np.random.default_rng(4)
    params = _params(rng, [(2,), (2,), (2,)])
    sticky = StickyGradMask(3, keeps_tensors=True)
    sticky.record(Tensor(np.array([True, False, False])))
    # a second optimizer over the same parameters sees the same history
    sticky.record(Tensor(np.array([False, True, False])))
    assert sticky.sticky().asnumpy().tolist() == [True, True, False] == sticky.ever().tolist()
    plain = StickyGradMask(3, keeps_tensors=False)
    plain.record(Tensor(np.array([True, False, False])))
    assert plain.sticky().asnumpy().tolist() == [False, False, False]
    # with the sticky mask a zero gradient still applies weight decay (and momentum) like torch 1.x
    opt = SGD(params, lr=0.1, momentum=0.9, weight_decay=0.5)
    before = [p.asnumpy().copy() for p in params]
    zeros = [Tensor(np.zeros(2, np.float32)) for _ in params]
    present = opt.step(zeros, sticky=sticky.sticky())
    assert present.asnumpy().tolist() == [False, False, False]
    np.testing.assert_allclose(params[0].asnumpy(), before[0] - 0.1 * 0.5 * before[0], rtol=1e-6)
    np.testing.assert_array_equal(params[2].asnumpy(), before[2])
    sticky.reset([False, False, True])
    assert sticky.ever().tolist() == [False, False, True]
    with pytest.raises(ValueError, match="2 flags for 3"):
        sticky.reset([True, True])


def test_gradient_presence_counts_tiny_values_and_not_exact_zeros():
    params = _params(np.random.default_rng(7), [(2, 3), (2,)])
    opt = SGD(params, lr=0.1)
    present = opt.step([Tensor(np.zeros((2, 3), np.float32)), Tensor(np.array([0.0, -1e-30], np.float32))])
    assert present.asnumpy().tolist() == [False, True]


class _Norm(nn.Cell):
    def __init__(self):
        super().__init__()
        self.weight = Parameter(Tensor(np.ones(3, np.float32)), name="weight")
        self.bias = Parameter(Tensor(np.zeros(3, np.float32)), name="bias")
        self.running_mean = Parameter(Tensor(np.zeros(3, np.float32)), name="running_mean", requires_grad=False)


class _Affine(nn.Cell):
    is_norm = True  # explicit convention, the class name does not say "Norm"

    def __init__(self):
        super().__init__()
        self.weight = Parameter(Tensor(np.ones(3, np.float32)), name="weight")


class _Router(nn.Cell):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Dense(3, 3)
        self.fc_classifier = nn.Dense(3, 2, has_bias=False)


class _Model(nn.Cell):
    def __init__(self):
        super().__init__()
        self.conv = nn.Dense(3, 3)
        self.bn = _Norm()
        self.affine = _Affine()
        self.router1 = _Router()
        self.adaptor1_sub = nn.Dense(3, 3, has_bias=False)
        self.heads = nn.SequentialCell([_Norm(), nn.Dense(3, 2, has_bias=False)])

    def construct(self, x):
        y = self.conv(x) * self.bn.weight + self.bn.bias + self.affine.weight
        y = self.router1.fc1(y) + self.adaptor1_sub(y)
        return self.heads[1](y * self.heads[0].weight + self.heads[0].bias)


def _cfg(**solver):
    cfg = get_cfg()
    cfg.SOLVER.OPT = "SGD"
    cfg.SOLVER.BASE_LR = 0.1
    cfg.SOLVER.WEIGHT_DECAY = 1e-4
    cfg.SOLVER.WEIGHT_DECAY_NORM = 2e-4
    cfg.SOLVER.WEIGHT_DECAY_BIAS = 3e-4
    for k, v in solver.items():
        setattr(cfg.SOLVER, k, v)
    return cfg


def test_param_groups_hyper_parameters_follow_the_reference_rules():
    model = _Model()
    opt, groups = build_optimizer(_cfg(BIAS_LR_FACTOR=2.0, HEADS_LR_FACTOR=10.0), model)
    by_name = {g["name"]: g for g in groups}
    assert [g["name"] for g in groups] == [n for n, p in model.parameters_and_names() if p.requires_grad]
    assert all(len(g["params"]) == 1 for g in groups)
    expect = {
        "conv.weight": (0.1, 1e-4), "conv.bias": (0.2, 3e-4), "bn.weight": (0.1, 2e-4), "bn.bias": (0.2, 3e-4),
        "affine.weight": (0.1, 2e-4), "router1.fc1.weight": (0.1, 1e-4), "router1.fc1.bias": (0.2, 3e-4),
        "router1.fc_classifier.weight": (0.1, 1e-4), "adaptor1_sub.weight": (0.1, 1e-4),
        "heads.0.weight": (1.0, 2e-4), "heads.0.bias": (2.0, 3e-4), "heads.1.weight": (1.0, 1e-4),
    }
    assert set(by_name) == set(expect)
    for name, (lr, wd) in expect.items():
        assert by_name[name]["lr"] == pytest.approx(lr) and by_name[name]["weight_decay"] == pytest.approx(wd), name
    # the optimizer holds the model's own Parameters (never copies)
    model_params = {id(p) for p in model.trainable_params()}
    assert {id(p) for p in opt.parameters} == model_params and len(opt.parameters) == len(model_params)
    assert opt.param_groups[0]["momentum"] == 0.9 and all(g["freeze_status"] == "normal" for g in groups)


def test_meta_optimizer_momentum_zero_freeze_tags_inert_and_adaptor_sub_switch():
    model = _Model()
    opt, groups = build_optimizer(_cfg(), model, flag="meta")
    tags = {g["name"]: g["freeze_status"] for g in groups}
    assert tags["router1.fc1.weight"] == "normal" and tags["router1.fc1.bias"] == "normal"
    assert tags["router1.fc_classifier.weight"] == "freeze" and tags["conv.weight"] == "freeze"
    assert all(g["momentum"] == 0.0 for g in opt.param_groups) and opt.freeze_iters == 0
    # reference rule 'adaptor_sub' in name never matches adaptor1_sub; the switch applies it
    assert {g["name"]: g["lr"] for g in groups}["adaptor1_sub.weight"] == pytest.approx(0.1)
    _, fixed = build_optimizer(_cfg(FIX_ADAPTOR_SUB_LR=True), model)
    assert {g["name"]: g["lr"] for g in fixed}["adaptor1_sub.weight"] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="SOLVER.OPT"):
        build_optimizer(_cfg(OPT="Lamb"), model)


def test_norm_convention():
    assert is_norm_cell(_Norm()) and is_norm_cell(_Affine()) and is_norm_cell(nn.BatchNorm2d(2))
    assert not is_norm_cell(nn.Dense(2, 2)) and not is_norm_cell(_Router())


def test_value_and_grad_over_optimizer_parameters_updates_the_model():
    """Regression for the previous port's fatal bug (gradients w.r.t. copies are zero, the model never moves)."""
    model = _Model()
    opt, _ = build_optimizer(_cfg(), model)
    x = Tensor(np.random.default_rng(5).standard_normal((4, 3)).astype(np.float32))
    before = {p.name: p.asnumpy().copy() for p in opt.parameters}
    loss, grads = mindspore.value_and_grad(lambda: (model(x) ** 2).mean(), None, opt.parameters)()
    assert sum(float(ops.abs(g).sum().asnumpy()) for g in grads) > 0
    opt.step(grads)
    changed = [p.name for p in opt.parameters if not np.array_equal(p.asnumpy(), before[p.name])]
    reached = [p.name for p, g in zip(opt.parameters, grads) if np.any(g.asnumpy())]
    assert changed == reached and len(reached) == len(opt.parameters) - 1   # fc_classifier takes no part


@pytest.mark.parametrize("clip_type,norm_type", [("value", 2.0), ("norm", 2.0), ("norm", float("inf")),
                                                 ("norm", 1.0)])
def test_gradient_clipping_per_parameter(clip_type, norm_type):
    rng = np.random.default_rng(6)
    params = _params(rng, [(3, 3), (4,)])
    init = [p.asnumpy().copy() for p in params]
    cfg = _cfg(MOMENTUM=0.0, WEIGHT_DECAY=0.0, WEIGHT_DECAY_NORM=0.0, WEIGHT_DECAY_BIAS=0.0)
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = clip_type
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 0.5
    cfg.SOLVER.CLIP_GRADIENTS.NORM_TYPE = norm_type

    class Holder(nn.Cell):
        def __init__(self):
            super().__init__()
            self.a, self.b = params

    opt, _ = build_optimizer(cfg, Holder())
    grads = [np.array(rng.standard_normal((3, 3)) * 3, np.float32), np.array([0.01, -0.02, 0.03, 0.0], np.float32)]
    opt.step([Tensor(g) for g in grads])
    for p, p0, g in zip(params, init, grads):
        if clip_type == "value":
            clipped = np.clip(g, -0.5, 0.5)
        else:
            norm = np.abs(g).max() if np.isinf(norm_type) else (np.abs(g) ** norm_type).sum() ** (1 / norm_type)
            clipped = g * min(1.0, 0.5 / (norm + 1e-6))
        np.testing.assert_allclose(p.asnumpy(), p0 - 0.1 * clipped, rtol=1e-5, atol=1e-7)


def test_freeze_layers_ignore_frozen_gradients_for_freeze_iters_steps():
    model = _Model()
    cfg = _cfg(FREEZE_ITERS=2)
    cfg.MODEL.FREEZE_LAYERS = ["conv", "heads"]
    opt, groups = build_optimizer(cfg, model)
    frozen = [g["freeze_status"] == "freeze" for g in groups]
    assert [g["name"] for g in groups if g["freeze_status"] == "freeze"] == \
        ["conv.weight", "conv.bias", "heads.0.weight", "heads.0.bias", "heads.1.weight"]
    grads = [Tensor(np.ones(p.shape, np.float32)) for p in opt.parameters]
    for step in range(3):
        before = [p.asnumpy().copy() for p in opt.parameters]
        opt.step(grads)
        moved = [not np.array_equal(p.asnumpy(), b) for p, b in zip(opt.parameters, before)]
        expected = [True] * len(moved) if step == 2 else [not f for f in frozen]
        assert moved == expected, f"step {step}"
    # without FREEZE_ITERS the tags are not applied
    cfg.SOLVER.FREEZE_ITERS = 0
    assert build_optimizer(cfg, _Model())[0].freeze_iters == 0
