"""Golden tests of the layers ACL-DGReID's Meta* ops map to (conv, fully connected, batch/instance/IBN norms, gate,
squeeze-excitation, hyper-router, class centres) against the PyTorch reference fixtures ``op_*.npz`` (all except
``op_gem``, which belongs to the pooling layers).

Each test builds the layer with the sizes found in the fixture, loads the fixture's ``p_*`` state (after checking
that the WEIGHTS.md recipe over the layer's own state order reproduces it), runs ONE differentiated forward in the
fixture's mode (``value_and_grad`` of ``sum_k sum(out_k * cot_k)``, compiled with ``mindspore.jit`` as training
runs it, and op by op for a subset) and compares outputs, input and parameter gradients and running statistics
after the call (so a BN running-stat update inside the differentiated forward must happen exactly once).

The fixture's opt maps to the project's mechanisms: ``type_running_stats`` 'general' -> ``update_stats=True``,
'hold' or no opt -> False; a meta forward (``meta_grad_*``, ``meta_step``) runs on fast weights written into the
Parameters by the trainer's :class:`~fastreid_ms.engine.meta_train_loop.FastWeights` and restored afterwards.
"""
import numpy as np
import pytest

import mindspore as ms
from mindspore import Tensor, ops

from golden import Fixture, assert_close, recipe_values
from fastreid_ms.engine.meta_train_loop import FastWeights
from fastreid_ms.layers import IBN, BatchNorm, Conv2d, Dense, InstanceNorm, SELayer
from fastreid_ms.modeling.backbones.meta_dynamic_router_resnet import Gate, HyperRouter
from fastreid_ms.modeling.heads.meta_embedding_head import ClassCenters
from fastreid_ms.utils.state_dict import load_torch_state_dict


def recipe_kind(name, shape):
    """The WEIGHTS.md rule deciding how a state entry is drawn."""
    last = name.split(".")[-1]
    if len(shape) >= 2:
        return "fan_in"
    if name.endswith("running_var"):
        return "running_var"
    if name.endswith("running_mean"):
        return "running_mean"
    if last == "gate":
        return "gate"
    if name.endswith("bn3.weight"):
        return "res_norm_weight"
    if last == "weight":
        return "norm_weight"
    if last == "bias":
        return "bias"
    raise AssertionError(f"no recipe rule for {name}")


def state_spec(module):
    return [[name, list(p.shape), "float32", recipe_kind(name, p.shape)] for name, p in module.parameters_and_names()]


def _conv(fx):
    w = fx["p_weight"]
    info = fx.info
    assert w.shape[2] == w.shape[3] == info["kernel"]
    return Conv2d(w.shape[1] * info["groups"], w.shape[0], info["kernel"], stride=info["stride"],
                  padding=info["padding"], groups=info["groups"], bias=info["bias"]), ("x",), ("y",)


def _linear(fx):
    w = fx["p_weight"]
    return Dense(w.shape[1], w.shape[0], bias=fx.info["bias"]), ("x",), ("y",)


def _bn(fx):
    info = fx.info
    module = BatchNorm(fx["p_weight"].shape[0], bias_freeze=info["bias_freeze"], eps=info["eps"],
                       momentum=info["momentum"])
    return module, ("x",), ("y",)


def _inorm(fx):
    return InstanceNorm(fx["p_weight"].shape[0], eps=fx.info["eps"], zero_if_height_one=True), ("x",), ("y",)


def _ibn(fx):
    module = IBN(fx["in_x"].shape[1], "BN", zero_if_height_one=True)
    assert module.half == fx.info["IN_channels"]
    return module, ("x",), ("y",)


def _gate(fx):
    return Gate(fx["p_gate"].shape[0]), ("x1", "x2"), ("y",)


def _se(fx):
    return SELayer(fx["in_x"].shape[1], reduction=fx.info["reduction"], names="fc1_fc2"), ("x",), ("y",)


def _router(fx):
    planes = fx["in_x"].shape[1]
    reduction = planes // fx["p_fc1.weight"].shape[0]
    module = HyperRouter(planes, num_experts=fx.info["K"], num_domains=fx["p_fc_classifier.weight"].shape[0],
                         reduction=reduction)
    return module, ("x",), ("weights", "domain_logits")


def _mparam(fx):
    c = fx["p_centers"]
    return ClassCenters(c.shape[1], c.shape[0]), ("x",), ("distmat",)


BUILDERS = {
    "op_metaconv2d_plain": _conv, "op_metaconv2d_meta": _conv, "op_metaconv2d_g4_plain": _conv,
    "op_metaconv2d_g4_meta": _conv,
    "op_metalinear_plain": _linear, "op_metalinear_meta": _linear, "op_metalinear_nobias_meta": _linear,
    "op_metabn_general": _bn, "op_metabn_hold": _bn, "op_metabn_eval": _bn, "op_metabn_meta_hold": _bn,
    "op_metabn_freeze_meta": _bn,
    "op_metain_plain": _inorm, "op_metain_meta": _inorm,
    "op_metaibn_general": _ibn, "op_metaibn_eval": _ibn, "op_metaibn_meta_hold": _ibn,
    "op_metagate_plain": _gate, "op_metagate_meta": _gate,
    "op_metase_plain": _se, "op_metase_meta": _se,
    "op_hyperrouter_plain": _router, "op_hyperrouter_meta": _router,
    "op_metaparam_plain": _mparam, "op_metaparam_meta": _mparam,
}


def fast_weight_args(fx, module):
    """(update_stats, fast-weight gradients aligned with the trainable parameters or None, step) of the fixture's
    opt (the reference's FIFO list ``meta_grad_*`` is in named_parameters order; each key names its parameter)."""
    opt = fx.info["opt"] or {}
    update_stats = opt.get("type_running_stats", "hold") == "general"
    if not opt.get("meta", False):
        return update_stats, None, None
    names = [name for name, p in module.parameters_and_names() if p.requires_grad]
    keys = fx.keys("meta_grad_")
    assert [k[len("meta_grad_"):] for k in keys] == [n for n in names if "meta_grad_" + n in fx], \
        "meta_grad_* entries are not in the module's parameter order"
    params = dict(module.parameters_and_names())
    grads = tuple(Tensor(fx["meta_grad_" + n]) if "meta_grad_" + n in fx else ops.zeros_like(params[n])
                  for n in names)
    return update_stats, grads, float(fx["meta_step"])


@pytest.mark.parametrize("name, compile", [(name, True) for name in sorted(BUILDERS)] +
                         [("op_metabn_general", False), ("op_hyperrouter_meta", False)])
def test_op_matches_reference(name, compile):
    fx = Fixture(name)
    module, in_names, out_names = BUILDERS[name](fx)

    state = {k[2:]: fx[k] for k in fx.keys("p_")}
    float_state = {k: v for k, v in state.items() if v.dtype.kind == "f"}
    expected_state = recipe_values(state_spec(module), int(fx["seed_weights"]))
    assert list(expected_state) == list(float_state), "module state order differs from the reference state_dict"
    for key, value in float_state.items():
        np.testing.assert_array_equal(expected_state[key], value, err_msg=f"{name}: recipe value of {key}")
    missing, unexpected, mismatched = load_torch_state_dict(module, state)
    assert not missing and not unexpected and not mismatched, (missing, unexpected, mismatched)

    module.set_train(bool(fx.info["train"]))
    update_stats, fast_grads, step = fast_weight_args(fx, module)
    takes_stats = bool(getattr(type(module), "is_norm", False))
    inputs = [Tensor(fx["in_" + n]) for n in in_names]
    cots = [Tensor(fx["cot_" + n]) for n in out_names]
    params = {n: p for n, p in module.parameters_and_names() if p.requires_grad}
    grad_p_names = [k[len("grad_p_"):] for k in fx.keys("grad_p_")]
    assert sorted(grad_p_names) == sorted(set(params) - set(fx.info["no_grad"])), \
        "trainable parameters differ from the reference's requires_grad parameters"
    weights = [params[n] for n in grad_p_names]

    def objective(*xs):
        outs = module(*xs, update_stats) if takes_stats else module(*xs)
        outs = outs if isinstance(outs, tuple) else (outs,)
        total = (outs[0] * cots[0]).sum()
        for o, c in zip(outs[1:], cots[1:]):
            total = total + (o * c).sum()
        return total, outs

    grad_fn = ms.value_and_grad(objective, grad_position=tuple(range(len(inputs))), weights=weights, has_aux=True)
    run = ms.jit(grad_fn) if compile else grad_fn
    if fast_grads is None:
        (_, outs), (grads_in, grads_p) = run(*inputs)
    else:
        with FastWeights(list(params.values()), compile=compile)(fast_grads, [step] * len(params)):
            (_, outs), (grads_in, grads_p) = run(*inputs)
    grads_in = grads_in if isinstance(grads_in, tuple) else (grads_in,)

    tol_out, tol_grad = fx.tol("out/post"), fx.tol("grad")
    for n, o in zip(out_names, outs):
        assert_close(o.asnumpy(), fx["out_" + n], tol_out, f"{name}: out_{n}")
    for n, g in zip(in_names, grads_in):
        assert_close(g.asnumpy(), fx["grad_in_" + n], tol_grad, f"{name}: grad_in_{n}")
    for n, g in zip(grad_p_names, grads_p):
        assert_close(g.asnumpy(), fx["grad_p_" + n], tol_grad, f"{name}: grad_p_{n}")
    for key in fx.keys("post_"):
        assert_close(dict(module.parameters_and_names())[key[5:]].asnumpy(), fx[key], tol_out, f"{name}: {key}")
    for key in fx.keys("meta_grad_"):
        np.testing.assert_array_equal(params[key[len("meta_grad_"):]].asnumpy(), float_state[key[len("meta_grad_"):]],
                                      err_msg=f"{name}: the slow parameter changed in a meta forward")


def test_instance_norm_height_one_branch_returns_zeros():
    fx = Fixture("op_metain_plain")
    module = InstanceNorm(fx["p_weight"].shape[0], eps=fx.info["eps"], zero_if_height_one=True)
    load_torch_state_dict(module, {k[2:]: fx[k] for k in fx.keys("p_")})
    module.set_train(True)
    out = module(Tensor(fx["h1_in_x"]))
    np.testing.assert_array_equal(out.asnumpy(), fx["h1_out_y"])
