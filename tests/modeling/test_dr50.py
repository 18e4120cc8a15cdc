"""DR50 Baseline behaviour beyond the golden fixtures: shapes, train/eval outputs for every opt type, the
eval-only build with NUM_CLASSES 0, input validation and builder errors."""
from pathlib import Path

import numpy as np
import pytest

import mindspore as ms

from fastreid_ms.config import get_cfg
from fastreid_ms.modeling import build_backbone, build_model, meta_step_sizes, opt_setting
from fastreid_ms.modeling.backbones.meta_dynamic_router_resnet import max_pool_3x3_s2_ceil

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "bagtricks_DR50_mix.yml"
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


def test_eval_features_and_training_loss_dicts(model):
    rng = np.random.default_rng(2)
    basic = batch([0, 0, 3, 3, 5, 5], [0, 0, 1, 1, 2, 2], rng)
    model.set_train(False)
    feats = model(basic)
    assert feats.shape == (6, 2048)
    assert np.allclose(model(basic["images"]).asnumpy(), feats.asnumpy()), "a bare image array is accepted in eval"

    model.set_train(True)
    expected_keys = {
        "basic": ["loss_cls", "loss_triplet", "loss_domain_intra", "loss_domain_inter", "loss_Center"],
        "mtrain": ["loss_triplet_add", "loss_triplet_mtrain", "loss_stc", "loss_domain_intra", "loss_domain_inter"],
    }
    mtrain = batch([0, 0, 1, 1, 3, 3, 4, 4], [0, 0, 0, 0, 1, 1, 1, 1], rng)   # two ids per domain
    for flag, keys in expected_keys.items():
        losses = model(basic if flag == "basic" else mtrain, opt_setting(flag))
        assert list(losses) == keys, flag
        assert all(np.isfinite(v.asnumpy()) and v.shape == () for v in losses.values())
    losses, outputs = model(basic, None, return_outputs=True)
    assert list(losses) == expected_keys["basic"], "opt None is the basic composition"
    assert outputs["paths"].shape == (6, 16) and outputs["center_distmat"].shape == (6, sum(NUM_CLASSES))
    assert [outputs[f"cls_outputs{i}"].shape[1] for i in (1, 2, 3)] == list(NUM_CLASSES)

    names = [n for n, p in model.parameters_and_names() if p.requires_grad]
    grads = {n: ms.Tensor(np.full(p.shape, 1e-3, np.float32)) for n, p in model.parameters_and_names()
             if p.requires_grad}
    one_domain = batch([3, 3, 4, 4], [1, 1, 1, 1], rng)
    losses = model(one_domain, opt_setting("mtest", grads, meta_step_sizes(names, 0.01)))
    assert list(losses) == ["loss_triplet_mtest", "loss_domain_intra", "loss_domain_inter", "loss_Center"]
    # single domain: the reference's interCluster returns the domain id as a constant
    assert float(losses["loss_domain_inter"].asnumpy()) == 1.0
    with pytest.raises(KeyError, match="Parameter.name"):
        model(one_domain, opt_setting("mtest", {"conv1.weight": grads["backbone.conv1.weight"]}, {"conv1.weight": 0.1}))


def test_baseline_input_errors(model):
    rng = np.random.default_rng(3)
    data = batch([0, 0], [0, 0], rng)
    model.set_train(True)
    with pytest.raises(KeyError, match="targets"):
        model({"images": data["images"]})
    with pytest.raises(KeyError, match="domainids"):
        model({"images": data["images"], "targets": data["targets"]})
    with pytest.raises(ValueError, match="images"):
        model({"images": data["images"][:, :2], "targets": data["targets"], "domainids": data["domainids"]})


def test_eval_only_build_with_zero_classes():
    cfg = dr50_cfg((0, 0, 0))
    model = build_model(cfg)
    assert model.heads.weight1.weight.shape == (0, 2048) and model.heads.center.centers.shape == (0, 2048)
    model.set_train(False)
    feats = model(batch([0, 0], [0, 0], np.random.default_rng(4)))
    assert feats.shape == (2, 2048) and np.all(np.isfinite(feats.asnumpy()))


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
