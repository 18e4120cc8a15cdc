"""MGN meta-architecture: structure, eval output, upstream's loss composition and a training step, op by op and
through the compiled passes."""
from pathlib import Path

import numpy as np
import pytest
from mindspore import Tensor

from fastreid_ms.config import get_cfg
from fastreid_ms.modeling import build_model
from fastreid_ms.modeling.losses import cross_entropy_loss, triplet_loss
from fastreid_ms.modeling.meta_arch.mgn import BRANCHES, MGN, chunk_bounds
from fastreid_ms.modeling.passes import EvalPass, TrainPass
from fastreid_ms.solver import build_optimizer

REPO = Path(__file__).resolve().parents[2]
NUM_CLASSES = 4
H, W = 48, 16  # the stride-16 map is 3 x 1: stripes of 2 + 1 and 1 + 1 + 1 rows


def mgn_cfg(**overrides):
    cfg = get_cfg()
    cfg.merge_from_file(str(REPO / "configs" / "Market1501" / "mgn_R50-ibn.yml"))
    cfg.MODEL.BACKBONE.PRETRAIN = False
    cfg.MODEL.HEADS.NUM_CLASSES = NUM_CLASSES
    cfg.merge_from_list([x for kv in overrides.items() for x in kv])
    return cfg


@pytest.fixture(scope="module")
def model():
    return build_model(mgn_cfg())


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return {"images": rng.uniform(0, 255, (n, 3, H, W)).astype(np.float32),
            "targets": np.repeat(np.arange(NUM_CLASSES), n // NUM_CLASSES).astype(np.int64)}


def test_chunk_bounds_follow_torch_chunk():
    assert chunk_bounds(6, 2) == ((0, 3), (3, 6))
    assert chunk_bounds(3, 2) == ((0, 2), (2, 3))
    assert chunk_bounds(7, 3) == ((0, 3), (3, 6), (6, 7))
    with pytest.raises(ValueError, match="gives 2"):
        chunk_bounds(4, 3)


def test_structure_and_parameter_names(model):
    assert isinstance(model, MGN)
    names = [p.name for p in model.get_parameters()]
    assert len(names) == len(set(names))
    for name in ("backbone.0.weight", "backbone.1.running_mean", "backbone.4.0.bn1.IN.weight",
                 "backbone.6.conv1.weight", "b1.0.4.conv3.weight", "b1.1.2.conv3.weight", "b2.1.0.downsample.0.weight", "b3.0.0.bn1.IN.weight",
                 "b33_head.pool_layer.p", "b21_head.bottleneck.0.weight", "b1_head.weight"):
        assert name in names, name
    # the three branches own separate copies of layer3[1:] (5 blocks for R50) with equal initial values
    b1 = dict(model.b1.parameters_and_names())
    b2 = dict(model.b2.parameters_and_names())
    assert len(model.b1[0]) == 5
    assert b1["0.0.conv1.weight"] is not b2["0.0.conv1.weight"]
    np.testing.assert_array_equal(b1["0.0.conv1.weight"].asnumpy(), b2["0.0.conv1.weight"].asnumpy())
    # the part branches' stride-1 layer4 starts from the global layer4's weights
    np.testing.assert_array_equal(b1["1.1.conv2.weight"].asnumpy(), b2["1.1.conv2.weight"].asnumpy())
    assert model.loss_names() == tuple("loss_cls_" + b for b in BRANCHES) + tuple(
        "loss_triplet_" + b for b in ("b1", "b2", "b3", "b22", "b33"))


def test_part_branches_stride_one_and_stripes():
    model = build_model(mgn_cfg(**{"MODEL.BACKBONE.LAST_STRIDE": 2}))
    model.set_train(False)
    maps = model.branch_features(Tensor(batch(2)["images"]))
    assert maps["b1"].shape == (2, 2048, 2, 1)   # global branch: layer4 with LAST_STRIDE 2
    assert maps["b2"].shape == (2, 2048, 3, 1)   # part branches: stride 1
    assert [maps[b].shape[2] for b in ("b21", "b22", "b31", "b32", "b33")] == [2, 1, 1, 1, 1]
    np.testing.assert_array_equal(maps["b22"].asnumpy(), maps["b2"].asnumpy()[:, :, 2:])


def test_eval_output_is_concat_of_eight_heads(model):
    model.set_train(False)
    images = batch()["images"]
    features = EvalPass(model, compile=False)(images)
    assert features.shape == (8, 8 * 256)
    maps = model.branch_features(Tensor(images))
    order = ("b1", "b2", "b3", "b21", "b22", "b31", "b32", "b33")
    expected = np.concatenate([getattr(model, b + "_head")(maps[b]).asnumpy() for b in order], 1)
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-5)


def test_losses_are_upstream_composition(model):
    model.set_train(True)
    data = batch()
    maps = model.branch_features(Tensor(data["images"]), False)
    targets = Tensor(data["targets"])
    outputs = {b: getattr(model, b + "_head")(maps[b], targets, False) for b in BRANCHES}
    losses = model.losses(outputs, targets)
    assert tuple(losses) == model.loss_names()
    for b in BRANCHES:
        expected = cross_entropy_loss(outputs[b]["cls_outputs"], targets, 0.1, 0.2).asnumpy() * 0.125
        np.testing.assert_allclose(losses["loss_cls_" + b].asnumpy(), expected, rtol=1e-6)
    cat = np.concatenate([outputs[b]["features"].asnumpy() for b in ("b31", "b32", "b33")], 1)
    expected = triplet_loss(Tensor(cat), targets, 0.0, False, True).asnumpy() * 0.2
    np.testing.assert_allclose(losses["loss_triplet_b33"].asnumpy(), expected, rtol=1e-5)
    assert outputs["b1"]["features"].shape == (8, 256)  # NECK_FEAT after: the 256-d post-BNNeck feature


def test_training_step_pynative_and_compiled_agree_and_update(model):
    model.set_train(True)
    cfg = mgn_cfg(**{"MODEL.COMPILE": False})
    optimizer, _ = build_optimizer(cfg, model)
    data = batch()
    losses, grads = TrainPass(model, optimizer.parameters, compile=False)(data)
    compiled, compiled_grads = TrainPass(model, optimizer.parameters, compile=True)(data)
    for k, v in losses.items():
        assert np.isfinite(v.asnumpy()), k
        np.testing.assert_allclose(compiled[k].asnumpy(), v.asnumpy(), rtol=1e-4, atol=1e-5, err_msg=k)
    names = [p.name for p in optimizer.parameters]
    for name in ("backbone.0.weight", "b3.1.2.conv3.weight", "b32_head.bottleneck.0.weight", "b1_head.weight"):
        g = grads[names.index(name)].asnumpy()
        assert np.abs(g).sum() > 0, name
        np.testing.assert_allclose(compiled_grads[names.index(name)].asnumpy(), g, rtol=1e-3,
                                   atol=1e-4 * np.abs(g).max())
    # Base-MGN freezes [backbone, b1, b2, b3] for FREEZE_ITERS; the prefixes also match the b*_head parameters
    watched = [names.index(n) for n in ("b3.1.2.conv3.weight", "b32_head.bottleneck.0.weight")]
    before = [optimizer.parameters[i].asnumpy().copy() for i in watched]
    optimizer.step(grads)
    for i, value in zip(watched, before):
        np.testing.assert_array_equal(optimizer.parameters[i].asnumpy(), value)
    unfrozen, _ = build_optimizer(mgn_cfg(**{"MODEL.COMPILE": False, "SOLVER.FREEZE_ITERS": 0}), model)
    unfrozen.step(grads)
    for i, value in zip(watched, before):
        assert not np.array_equal(unfrozen.parameters[i].asnumpy(), value)


@pytest.mark.parametrize("overrides,match", [
    ({"MODEL.BACKBONE.WITH_NL": True}, "WITH_NL False"),
    ({"MODEL.BACKBONE.DEPTH": "34x"}, "Bottleneck ResNet"),
    ({"MODEL.LOSSES.NAME": '("CrossEntropyLoss", "CircleLoss")'}, "CircleLoss"),
])
def test_clear_errors(overrides, match):
    with pytest.raises(ValueError, match=match):
        build_model(mgn_cfg(**overrides))


def test_bad_input_height_names_the_fix(model):
    model.set_train(False)
    with pytest.raises(ValueError, match="multiple of 48"):
        EvalPass(model, compile=False)(np.zeros((2, 3, 64, 16), np.float32))
