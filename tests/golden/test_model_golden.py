"""Golden tests of the DR50 backbone (``model_backbone.npz``) and of Baseline + MetaEmbeddingHead
(``model_baseline.npz``): eval and train forwards, gradients, running statistics and the meta-learning passes."""
import numpy as np
import pytest

import mindspore as ms
from mindspore import Tensor

from golden import Fixture, assert_close
from model_utils import check_model_grad, check_summaries, dr50_cfg, load_recipe
from fastreid_ms.modeling.backbones import build_backbone
from fastreid_ms.modeling.ops import opt_setting

OUT_NAMES = ("x", "weights", "feat1", "feat2", "feat3", "feat4")


def _flat_outputs(outputs):
    x, paths, feats = outputs
    return (x, paths) + tuple(feats)


@pytest.fixture(scope="module")
def backbone_fx():
    return Fixture("model_backbone")


@pytest.fixture(scope="module")
def backbone(backbone_fx):
    model = build_backbone(dr50_cfg())
    load_recipe(model, "backbone", int(backbone_fx["seed_weights"]))
    return model


def test_backbone_eval_outputs(backbone_fx, backbone):
    fx = backbone_fx
    load_recipe(backbone, "backbone", int(fx["seed_weights"]))
    backbone.set_train(False)
    outs = _flat_outputs(backbone(Tensor(fx["in_x"])))
    for name, out in zip(OUT_NAMES, outs):
        assert_close(out.asnumpy(), fx["eval_out_" + name], fx.tol("out/post"), f"eval_out_{name}")


def test_backbone_train_outputs_and_gradients(backbone_fx, backbone):
    """train(), opt None ('hold' BN): outputs, d/d input and per-parameter gradients of sum(out * cot)."""
    fx = backbone_fx
    values = load_recipe(backbone, "backbone", int(fx["seed_weights"]))
    backbone.set_train(True)
    params = dict(backbone.parameters_and_names())
    names = fx.info["param_names"]
    trainable = [n for n, p in params.items() if p.requires_grad]
    assert sorted(trainable) == sorted(names), "trainable parameters differ from the reference's"
    cots = [Tensor(fx["cot_" + n]) for n in OUT_NAMES]

    def objective(x):
        outs = _flat_outputs(backbone(x))
        return sum((o * c).sum() for o, c in zip(outs, cots)), outs

    (_, outs), (grad_x, grads) = ms.value_and_grad(objective, 0, [params[n] for n in names], has_aux=True)(
        Tensor(fx["in_x"]))
    for name, out in zip(OUT_NAMES, outs):
        assert_close(out.asnumpy(), fx["train_out_" + name], fx.tol("out/post"), f"train_out_{name}")
    check_model_grad(grad_x.asnumpy(), fx["train_grad_x"], fx, "train_grad_x")

    grads = dict(zip(names, (g.asnumpy() for g in grads)))
    present = fx["train_pgrad_present"]
    no_grad = set(fx.info["no_grad_params"])
    assert {n for n, p in zip(names, present) if not p} == no_grad
    for n in no_grad:
        assert not np.any(grads[n]), f"{n} has no gradient in the reference but a non-zero one here"
    check_summaries(fx, "train_pgrad", names, [grads[n] for n in names], fx.tol("summary"), "backbone train")
    for n in fx.info["small_params"]:
        if n in no_grad:
            assert ("train_grad_p_" + n) not in fx
            continue
        check_model_grad(grads[n], fx["train_grad_p_" + n], fx, f"train_grad_p_{n}")
    for name, value in values.items():
        if name.endswith(("running_mean", "running_var")):
            np.testing.assert_array_equal(params[name].asnumpy(), value, err_msg=f"{name} changed in a 'hold' forward")


def test_backbone_basic_forward_updates_running_stats_once(backbone_fx, backbone):
    """opt 'basic' ('general' BN) inside value_and_grad: same outputs as the hold forward, running statistics
    updated exactly once (momentum 0.1, unbiased variance)."""
    fx = backbone_fx
    load_recipe(backbone, "backbone", int(fx["seed_weights"]))
    backbone.set_train(True)
    params = dict(backbone.parameters_and_names())
    opt = opt_setting("basic")

    def objective(x):
        outs = _flat_outputs(backbone(x, opt))
        return outs[0].sum(), outs

    (_, outs), _ = ms.value_and_grad(objective, 0, None, has_aux=True)(Tensor(fx["in_x"]))
    for name, out in zip(OUT_NAMES, outs):
        assert_close(out.asnumpy(), fx["basic_out_" + name], fx.tol("out/post"), f"basic_out_{name}")
    buffer_names = fx.info["buffer_names"]
    check_summaries(fx, "basic_post_buf", buffer_names, [params[n].asnumpy() for n in buffer_names],
                    fx.tol("out/post"), "backbone basic")
    for n in fx.info["small_buffers"]:
        assert_close(params[n].asnumpy(), fx["basic_post_" + n], fx.tol("out/post"), f"basic_post_{n}")
