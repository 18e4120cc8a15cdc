"""DR50 Baseline behaviour beyond the golden fixtures: shapes, train/eval outputs for every phase, the eval-only
build with NUM_CLASSES 0, input validation and builder errors (op by op: these are behaviour checks, the compiled
passes are checked against the reference in tests/golden)."""
from pathlib import Path

import numpy as np
import pytest

import mindspore as ms

from fastreid_ms.config import get_cfg
from fastreid_ms.layers.helpers import max_pool_3x3_s2_ceil
from fastreid_ms.modeling import build_backbone, build_model
from fastreid_ms.modeling.passes import EvalPass, TrainPass

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "bagtricks_DR50_mix.yml"
NUM_CLASSES = (3, 2, 4)


def dr50_cfg(num_classes=NUM_CLASSES):
    cfg = get_cfg()
    cfg.merge_from_file(str(CONFIG))
    cfg.MODEL.BACKBONE.PRETRAIN = False
    cfg.MODEL.HEADS.NUM_CLASSES1, cfg.MODEL.HEADS.NUM_CLASSES2, cfg.MODEL.HEADS.NUM_CLASSES3 = num_classes
    return cfg


def batch(ids, domains, rng, size=(64, 32)):
    n = len(ids)
    return {"images": rng.integers(0, 256, size=(n, 3) + size).astype(np.float32),
            "targets": np.array(ids, dtype=np.int64), "camids": np.zeros(n, dtype=np.int64),
            "domainids": np.array(domains, dtype=np.int64)}


@pytest.fixture(scope="module")
def model():
    return build_model(dr50_cfg())


def test_backbone_output_shapes():
    backbone = build_backbone(dr50_cfg())
    backbone.set_train(False)
    x, paths, feats = backbone(ms.Tensor(np.random.default_rng(0).standard_normal((2, 3, 64, 32)), ms.float32))
    assert x.shape == (2, 2048, 4, 2) and paths.shape == (2, 16)
    assert [f.shape for f in feats] == [(2, 256), (2, 512), (2, 1024), (2, 2048)]
    np.testing.assert_allclose(paths.asnumpy().reshape(2, 4, 4).sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(feats[2].asnumpy(), axis=1), 1.0, rtol=1e-5)


def test_stem_max_pool_matches_ceil_mode_for_every_parity():
    rng = np.random.default_rng(1)
    for h, w in ((12, 8), (13, 9), (12, 9), (13, 8)):
        x = ms.Tensor(rng.standard_normal((2, 3, h, w)).astype(np.float32))
        expected = ms.ops.max_pool2d(x, 3, 2, 0, ceil_mode=True).asnumpy()
        np.testing.assert_array_equal(max_pool_3x3_s2_ceil(x).asnumpy(), expected, err_msg=f"{h}x{w}")


def _tensors(data):
    return ms.Tensor(data["images"]), ms.Tensor(data["targets"]), ms.Tensor(data["domainids"])


def test_eval_features_and_training_loss_dicts(model):
    rng = np.random.default_rng(2)
    basic = batch([0, 0, 3, 3, 5, 5], [0, 0, 1, 1, 2, 2], rng)
    feats = EvalPass(model, compile=False)(basic)
    assert feats.shape == (6, 2048)
    model.set_train(False)
    np.testing.assert_allclose(model(ms.Tensor(basic["images"])).asnumpy(), feats, rtol=1e-6)

    model.set_train(True)
    expected_keys = {
        "basic": ["loss_cls", "loss_triplet", "loss_domain_intra", "loss_domain_inter", "loss_Center"],
        "mtrain": ["loss_triplet_add", "loss_triplet_mtrain", "loss_stc", "loss_domain_intra", "loss_domain_inter"],
        "mtest": ["loss_triplet_mtest", "loss_domain_intra", "loss_domain_inter", "loss_Center"],
    }
    mtrain = batch([0, 0, 1, 1, 3, 3, 4, 4], [0, 0, 0, 0, 1, 1, 1, 1], rng)   # two ids per domain
    one_domain = batch([3, 3, 4, 4], [1, 1, 1, 1], rng)
    for phase, data in (("basic", basic), ("mtrain", mtrain), ("mtest", one_domain)):
        losses = model(*_tensors(data), phase)
        assert list(losses) == expected_keys[phase] == list(model.loss_names(phase)), phase
        assert all(np.isfinite(v.asnumpy()) and v.shape == () for v in losses.values())
    # single domain: the reference's interCluster returns the domain id as a constant
    assert float(losses["loss_domain_inter"].asnumpy()) == 1.0
    losses, outputs = model(*_tensors(basic), return_outputs=True)
    assert list(losses) == expected_keys["basic"], "the default phase is basic"
    assert outputs["paths"].shape == (6, 16) and outputs["center_distmat"].shape == (6, sum(NUM_CLASSES))
    assert [outputs[f"cls_outputs{i}"].shape[1] for i in (1, 2, 3)] == list(NUM_CLASSES)
    with pytest.raises(ValueError, match="phase='meta'"):
        model.loss_names("meta")


def test_phase_decides_running_statistics(model):
    """'basic' updates BN running statistics, the meta phases hold them; update_stats overrides the phase."""
    rng = np.random.default_rng(5)
    data = batch([0, 0, 3, 3], [0, 0, 1, 1], rng)
    model.set_train(True)
    bn = model.backbone.bn1
    before = bn.running_mean.asnumpy().copy()
    model(*_tensors(data), "mtest")
    np.testing.assert_array_equal(bn.running_mean.asnumpy(), before)
    model(*_tensors(data), "basic", False)
    np.testing.assert_array_equal(bn.running_mean.asnumpy(), before)
    model(*_tensors(data), "basic")
    assert not np.array_equal(bn.running_mean.asnumpy(), before)


def test_baseline_input_errors(model):
    """Batches are checked on the host before a pass runs, naming the key or the rows at fault."""
    rng = np.random.default_rng(3)
    data = batch([0, 0], [0, 0], rng)
    model.set_train(True)
    train = TrainPass(model, model.trainable_params(), compile=False)
    with pytest.raises(KeyError, match="targets"):
        train({"images": data["images"]})
    with pytest.raises(KeyError, match="domainids"):
        train({"images": data["images"], "targets": data["targets"]})
    with pytest.raises(ValueError, match="images"):
        train({"images": data["images"][:, :2], "targets": data["targets"], "domainids": data["domainids"]})
    with pytest.raises(ValueError, match="no negative"):
        train(batch([0, 0, 3, 3], [0, 0, 1, 1], rng), "mtrain")   # one id per domain: no same-domain negative


def test_eval_only_build_with_zero_classes():
    cfg = dr50_cfg((0, 0, 0))
    model = build_model(cfg)
    assert model.heads.weight1.weight.shape == (0, 2048) and model.heads.center.centers.shape == (0, 2048)
    feats = EvalPass(model, compile=False)(batch([0, 0], [0, 0], np.random.default_rng(4)))
    assert feats.shape == (2, 2048) and np.all(np.isfinite(feats))


def test_builder_errors():
    cfg = dr50_cfg()
    cfg.MODEL.BACKBONE.PRETRAIN = True
    cfg.MODEL.BACKBONE.PRETRAIN_PATH = ""
    with pytest.raises(ValueError, match="resnet50_ibn_a-d9d0bb7b.pth"):
        build_backbone(cfg)
    cfg = dr50_cfg()
    cfg.MODEL.BACKBONE.DEPTH = "34x"
    with pytest.raises(ValueError, match="DEPTH"):
        build_backbone(cfg)
    cfg = dr50_cfg()
    cfg.MODEL.HEADS.CLS_LAYER = "ArcSoftmax"
    with pytest.raises(ValueError, match="CLS_LAYER"):
        build_model(cfg)
