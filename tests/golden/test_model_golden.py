"""Golden tests of the DR50 backbone (``model_backbone.npz``) and of Baseline + MetaEmbeddingHead
(``model_baseline.npz``): eval and train forwards, gradients, running statistics and the meta-learning passes, each
differentiated forward compiled with ``mindspore.jit`` as training runs it. The meta-test pass runs on fast weights
written into the Parameters by the trainer's :class:`~fastreid_ms.engine.meta_train_loop.FastWeights`."""
import numpy as np
import pytest

import mindspore as ms
from mindspore import Tensor, ops

from golden import Fixture, assert_close, recipe_values, weights_spec
from model_utils import check_model_grad, check_summaries, dr50_cfg, load_recipe
from fastreid_ms.engine.meta_train_loop import FastWeights, meta_step_sizes
from fastreid_ms.modeling import build_backbone, build_model
from fastreid_ms.modeling.passes import EvalPass

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


def _compiled(fn):
    return ms.jit(fn)


def test_backbone_eval_outputs(backbone_fx, backbone):
    fx = backbone_fx
    load_recipe(backbone, "backbone", int(fx["seed_weights"]))
    backbone.set_train(False)

    def forward(x):
        return _flat_outputs(backbone(x))

    outs = _compiled(forward)(Tensor(fx["in_x"]))
    for name, out in zip(OUT_NAMES, outs):
        assert_close(out.asnumpy(), fx["eval_out_" + name], fx.tol("out/post"), f"eval_out_{name}")


def test_backbone_train_outputs_and_gradients(backbone_fx, backbone):
    """train(), 'hold' BN (update_stats False): outputs, d/d input and per-parameter gradients of sum(out * cot)."""
    fx = backbone_fx
    values = load_recipe(backbone, "backbone", int(fx["seed_weights"]))
    backbone.set_train(True)
    params = dict(backbone.parameters_and_names())
    names = fx.info["param_names"]
    trainable = [n for n, p in params.items() if p.requires_grad]
    assert sorted(trainable) == sorted(names), "trainable parameters differ from the reference's"
    cots = [Tensor(fx["cot_" + n]) for n in OUT_NAMES]

    def objective(x):
        outs = _flat_outputs(backbone(x, False))
        total = (outs[0] * cots[0]).sum()
        for o, c in zip(outs[1:], cots[1:]):
            total = total + (o * c).sum()
        return total, outs

    grad_fn = ms.value_and_grad(objective, 0, [params[n] for n in names], has_aux=True)
    (_, outs), (grad_x, grads) = _compiled(grad_fn)(Tensor(fx["in_x"]))
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
    """'general' BN (update_stats True) inside value_and_grad: same outputs as the hold forward, running
    statistics updated exactly once (momentum 0.1, unbiased variance)."""
    fx = backbone_fx
    load_recipe(backbone, "backbone", int(fx["seed_weights"]))
    backbone.set_train(True)
    params = dict(backbone.parameters_and_names())

    def objective(x):
        outs = _flat_outputs(backbone(x, True))
        return outs[0].sum(), outs

    (_, outs), _ = _compiled(ms.value_and_grad(objective, 0, None, has_aux=True))(Tensor(fx["in_x"]))
    for name, out in zip(OUT_NAMES, outs):
        assert_close(out.asnumpy(), fx["basic_out_" + name], fx.tol("out/post"), f"basic_out_{name}")
    buffer_names = fx.info["buffer_names"]
    check_summaries(fx, "basic_post_buf", buffer_names, [params[n].asnumpy() for n in buffer_names],
                    fx.tol("out/post"), "backbone basic")
    for n in fx.info["small_buffers"]:
        assert_close(params[n].asnumpy(), fx["basic_post_" + n], fx.tol("out/post"), f"basic_post_{n}")


# ---------------------------------------------------------------------------------------------------------------
# Baseline + MetaEmbeddingHead (model_baseline.npz)

@pytest.fixture(scope="module")
def baseline_fx():
    return Fixture("model_baseline")


@pytest.fixture(scope="module")
def baseline(baseline_fx):
    model = build_model(dr50_cfg(baseline_fx.info["num_classes"]))
    return model


def _fresh(model, fx, train):
    load_recipe(model, "baseline", int(fx["seed_weights"]))
    model.set_train(train)
    return dict(model.parameters_and_names())


def _batch(fx, prefix):
    return {k: np.array(fx[f"{prefix}_{k}"]) for k in ("images", "targets", "camids", "domainids")}


def _mtrain_batch(fx):
    test_id = int(fx["meta_test_id"])
    parts = [_batch(fx, f"dom{d}") for d in range(3) if d != test_id]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


HEAD_OUTPUTS = ("paths", "features", "center_distmat", "cls_outputs1", "cls_outputs2", "cls_outputs3",
                "pred_class_logits1", "pred_class_logits2", "pred_class_logits3")


def _loss_and_grads(model, batch, phase, names, params):
    """One compiled differentiated training forward: (total, loss dict, head outputs, {name: grad of the summed
    losses}). (The outputs leave the graph as a tuple: MindSpore 2.10 takes minutes to compile a dict of them as
    value_and_grad's auxiliary output.)"""
    loss_names = model.loss_names(phase)

    def objective(images, targets, domainids):
        losses, outputs = model(images, targets, domainids, phase, return_outputs=True)
        total = losses[loss_names[0]]
        for k in loss_names[1:]:
            total = total + losses[k]
        return total, (tuple([losses[k] for k in loss_names]), tuple([outputs[k] for k in HEAD_OUTPUTS]))

    grad_fn = ms.value_and_grad(objective, None, [params[n] for n in names], has_aux=True)
    (total, (values, outputs)), grads = _compiled(grad_fn)(
        Tensor(batch["images"]), Tensor(batch["targets"]), Tensor(batch["domainids"]))
    return (total, dict(zip(loss_names, values)), dict(zip(HEAD_OUTPUTS, outputs)),
            {n: g.asnumpy() for n, g in zip(names, grads)})


def _check_losses(fx, prefix, total, losses, keys):
    assert list(losses) == list(keys), f"{prefix} loss keys {list(losses)} != reference {list(keys)}"
    for k, v in losses.items():
        assert_close(v.asnumpy(), fx[f"{prefix}_loss_{k}"], fx.tol("loss"), f"{prefix}_loss_{k}")
    assert_close(total.asnumpy(), fx[f"{prefix}_loss_total"], fx.tol("loss"), f"{prefix}_loss_total")


def _check_no_grad(fx, grads, present_key, no_grad_names):
    names = fx.info["param_names"]
    assert {n for n, p in zip(names, fx[present_key]) if not p} == set(no_grad_names)
    for n in no_grad_names:
        assert not np.any(grads[n]), f"{n} has no gradient in the reference but a non-zero one here"


def test_baseline_eval_features(baseline_fx, baseline):
    fx = baseline_fx
    _fresh(baseline, fx, train=False)
    batch = _batch(fx, "basic")
    images_before = batch["images"].copy()
    feats = EvalPass(baseline)(batch)
    assert_close(feats, fx["eval_out_features"], fx.tol("out/post"), "eval_out_features")
    np.testing.assert_array_equal(batch["images"], images_before, err_msg="Baseline modified the input images")


def test_baseline_basic_step(baseline_fx, baseline):
    """Phase 'basic': loss dict, head outputs, parameter gradients and running statistics after ONE forward."""
    fx = baseline_fx
    params = _fresh(baseline, fx, train=True)
    names = fx.info["param_names"]
    assert sorted(n for n, p in params.items() if p.requires_grad) == sorted(names)
    total, losses, outputs, grads = _loss_and_grads(baseline, _batch(fx, "basic"), "basic", names, params)
    _check_losses(fx, "basic", total, losses, fx.info["basic_loss_keys"])
    assert_close(outputs["paths"].asnumpy(), fx["basic_out_paths"], fx.tol("out/post"), "basic_out_paths")
    for key in fx.keys("basic_out_head_"):
        out = outputs[key[len("basic_out_head_"):]]
        assert_close(out.asnumpy(), fx[key], fx.tol("out/post"), key)

    _check_no_grad(fx, grads, "basic_pgrad_present", fx.info["basic_no_grad"])
    check_summaries(fx, "basic_pgrad", names, [grads[n] for n in names], fx.tol("summary"), "baseline basic")
    for key in fx.keys("basic_grad_p_"):
        check_model_grad(grads[key[len("basic_grad_p_"):]], fx[key], fx, key)

    buffer_names = [n for n, *_ in weights_spec()["baseline"]["state_dict"]
                    if n.endswith(("running_mean", "running_var"))]
    assert len(buffer_names) == len(fx["basic_post_buf_norm"])
    check_summaries(fx, "basic_post_buf", buffer_names, [params[n].asnumpy() for n in buffer_names],
                    fx.tol("out/post"), "baseline basic buffers")
    for key in fx.keys("basic_post_"):
        if not key.startswith("basic_post_buf_"):
            assert_close(params[key[len("basic_post_"):]].asnumpy(), fx[key], fx.tol("out/post"), key)


def test_baseline_meta_step(baseline_fx, baseline):
    """mtrain forward + its gradient (the fast gradients), mtest forward on the fast weights, and the meta
    gradient d(mtrain_total + mtest_total)/dparam; BN running statistics untouched throughout."""
    fx = baseline_fx
    values = recipe_values(weights_spec()["baseline"]["state_dict"], int(fx["seed_weights"]))
    params = _fresh(baseline, fx, train=True)
    names = fx.info["param_names"]

    mtrain = _mtrain_batch(fx)
    tr_total, tr_losses, tr_outputs, g_tr = _loss_and_grads(baseline, mtrain, "mtrain", names, params)
    _check_losses(fx, "mtrain", tr_total, tr_losses, fx.info["mtrain_loss_keys"])
    assert_close(tr_outputs["paths"].asnumpy(), fx["mtrain_out_paths"], fx.tol("out/post"), "mtrain_out_paths")
    assert_close(tr_outputs["features"].asnumpy(), fx["mtrain_out_features"], fx.tol("out/post"),
                 "mtrain_out_features")

    # The inner (fast) gradients: the reference's opt['grad_params'] (None where the mtrain loss does not reach).
    _check_no_grad(fx, g_tr, "mtest_gradparams_present", fx.info["grad_params_none"])
    check_summaries(fx, "mtest_gradparams", names, [g_tr[n] for n in names], fx.tol("summary"), "mtrain grads")
    for key in fx.keys("mtest_gradparam_"):
        check_model_grad(g_tr[key[len("mtest_gradparam_"):]], fx[key], fx, key)

    step_sizes = meta_step_sizes(names, float(fx["mtest_step_size"]))
    reference_steps = fx.info["step_sizes"]
    for n, step in zip(names, step_sizes):
        assert step == pytest.approx(reference_steps[n.rsplit(".", 1)[0]], rel=1e-6), n

    test_batch = _batch(fx, f"dom{int(fx['meta_test_id'])}")
    weights = [params[n] for n in names]
    with FastWeights(weights)(tuple(Tensor(g_tr[n]) for n in names), step_sizes):
        te_total, te_losses, te_outputs, g_te = _loss_and_grads(baseline, test_batch, "mtest", names, params)
    _check_losses(fx, "mtest", te_total, te_losses, fx.info["mtest_loss_keys"])
    for key in ("paths", "features", "center_distmat"):
        assert_close(te_outputs[key].asnumpy(), fx[f"mtest_out_{key}"], fx.tol("out/post"), f"mtest_out_{key}")

    meta = {n: g_tr[n] + g_te[n] for n in names}
    _check_no_grad(fx, meta, "meta_pgrad_present", fx.info["meta_no_grad"])
    check_summaries(fx, "meta_pgrad", names, [meta[n] for n in names], fx.tol("summary"), "meta grads")
    for name, value in values.items():
        if value.dtype.kind == "f":
            np.testing.assert_array_equal(params[name].asnumpy(), value,
                                          err_msg=f"{name} changed during the mtrain/mtest forwards")


def test_parameter_counts_match_reference(backbone, baseline):
    """Parameter totals of weights_spec.json (running statistics are not parameters in PyTorch)."""
    for model, part in ((backbone, "backbone"), (baseline, "baseline")):
        spec = weights_spec()[part]
        params = [p for n, p in model.parameters_and_names() if not n.endswith(("running_mean", "running_var"))]
        assert sum(int(np.prod(p.shape)) for p in params) == spec["param_count"], part
        assert sum(int(np.prod(p.shape)) for p in params if p.requires_grad) == spec["trainable_param_count"], part
