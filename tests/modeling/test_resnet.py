"""FastReID's ResNet backbone variants and the upstream Baseline + EmbeddingHead (no meta-learning) on tiny inputs."""
from pathlib import Path

import numpy as np
import pytest

import mindspore as ms

from fastreid_ms.config import get_cfg
from fastreid_ms.modeling import build_backbone, build_model
from fastreid_ms.modeling.passes import EvalPass, TrainPass
from torch_writer import fake_torch, save_state_dict_pth  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]


def resnet_cfg(depth="50x", **backbone):
    cfg = get_cfg()
    cfg.merge_from_file(str(REPO / "configs" / "Base-bagtricks.yml"))
    cfg.MODEL.BACKBONE.PRETRAIN = False
    cfg.MODEL.BACKBONE.DEPTH = depth
    for key, value in backbone.items():
        setattr(cfg.MODEL.BACKBONE, key, value)
    return cfg


def images(n=2, h=64, w=32, seed=0):
    return ms.Tensor(np.random.default_rng(seed).standard_normal((n, 3, h, w)).astype(np.float32))


@pytest.mark.parametrize("depth,kwargs,channels", [
    ("18x", dict(WITH_IBN=True, WITH_SE=True, LAST_STRIDE=2), 512),
    ("34x", dict(), 512),
    ("50x", dict(WITH_IBN=True, WITH_NL=True), 2048),
])
def test_resnet_variants_run_in_train_and_eval(depth, kwargs, channels):
    backbone = build_backbone(resnet_cfg(depth, **kwargs))
    stride = 32 if kwargs.get("LAST_STRIDE", 1) == 2 else 16
    for train in (True, False):
        backbone.set_train(train)
        out = backbone(images())
        assert out.shape == (2, channels, 64 // stride, 32 // stride)
        assert np.all(np.isfinite(out.asnumpy()))


def test_resnet_parameter_names_follow_pytorch():
    backbone = build_backbone(resnet_cfg("50x", WITH_IBN=True, WITH_SE=True, WITH_NL=True))
    names = {n for n, _ in backbone.parameters_and_names()}
    for name in ("conv1.weight", "bn1.running_var", "layer1.0.bn1.IN.weight", "layer1.0.bn1.BN.running_mean",
                 "layer3.5.bn1.IN.bias", "layer4.0.bn1.weight", "layer2.0.downsample.0.weight",
                 "layer2.0.downsample.1.running_mean", "layer1.0.se.fc.0.weight", "layer4.2.se.fc.2.weight",
                 "NL_2.1.W.1.running_var", "NL_3.2.theta.weight", "NL_3.2.g.bias"):
        assert name in names, name
    assert not any(n.startswith(("NL_1.", "NL_4.")) for n in names)
    assert "layer4.0.bn1.IN.weight" not in names, "stage 4 never uses IBN"


def test_resnet101_non_local_layout():
    backbone = build_backbone(resnet_cfg("101x", WITH_NL=True))
    assert backbone.nl_indices == ((), (2, 3), (14, 15, 16, 17, 18, 19, 20, 21, 22), ())
    assert len(backbone.layer3) == 23 and len(backbone.NL_3) == 9


def test_resnet_builder_errors():
    with pytest.raises(ValueError, match="DEPTH"):
        build_backbone(resnet_cfg("152x"))
    with pytest.raises(ValueError, match="PRETRAIN_PATH"):
        build_backbone(resnet_cfg("18x", PRETRAIN=True, PRETRAIN_PATH=""))


@pytest.mark.parametrize("cls_layer,neck_feat,embedding_dim", [("Linear", "before", 0), ("ArcSoftmax", "after", 64),
                                                               ("CircleSoftmax", "after", 0)])
def test_baseline_with_embedding_head(cls_layer, neck_feat, embedding_dim):
    cfg = resnet_cfg("18x")
    cfg.MODEL.BACKBONE.FEAT_DIM = 512
    cfg.MODEL.HEADS.NUM_CLASSES = 5
    cfg.MODEL.HEADS.CLS_LAYER = cls_layer
    cfg.MODEL.HEADS.NECK_FEAT = neck_feat
    cfg.MODEL.HEADS.EMBEDDING_DIM = embedding_dim
    cfg.MODEL.HEADS.SCALE = 16 if cls_layer != "Linear" else 1
    cfg.MODEL.HEADS.MARGIN = 0.2 if cls_layer != "Linear" else 0.0
    model = build_model(cfg)
    dim = embedding_dim or 512
    batch = {"images": np.random.default_rng(1).integers(0, 256, (4, 3, 64, 32)).astype(np.float32),
             "targets": np.array([0, 0, 3, 3], dtype=np.int64)}
    assert EvalPass(model, compile=False)(batch).shape == (4, dim)
    model.set_train(True)
    losses, outputs = model(ms.Tensor(batch["images"]), ms.Tensor(batch["targets"]), return_outputs=True)
    assert list(losses) == ["loss_cls", "loss_triplet"] == list(model.loss_names())
    assert all(np.isfinite(v.asnumpy()) for v in losses.values())
    assert outputs["cls_outputs"].shape == (4, 5) and outputs["features"].shape == (4, dim)
    _, grads = TrainPass(model, model.trainable_params(), compile=False)(batch)
    assert any(np.any(g.asnumpy()) for g in grads)
    with pytest.raises(ValueError, match="phases"):
        model.loss_names("mtrain")


def test_resnet_pretrained_weights_are_loaded_non_strictly(tmp_path, fake_torch):
    reference = build_backbone(resnet_cfg("18x"))
    rng = np.random.default_rng(5)
    state = {n: rng.standard_normal(p.shape).astype(np.float32) for n, p in reference.parameters_and_names()}
    state.pop("layer4.1.bn2.running_var")                       # missing -> keeps its initial value
    state["fc.weight"] = np.zeros((1000, 512), np.float32)      # unexpected -> ignored
    state["layer1.0.bn1.num_batches_tracked"] = np.array(3)     # PyTorch counter -> ignored
    save_state_dict_pth(tmp_path / "r18.pth", state, fake_torch)
    model = build_backbone(resnet_cfg("18x", PRETRAIN=True, PRETRAIN_PATH=str(tmp_path / "r18.pth")))
    params = dict(model.parameters_and_names())
    np.testing.assert_array_equal(params["layer2.0.conv1.weight"].asnumpy(), state["layer2.0.conv1.weight"])
    np.testing.assert_array_equal(params["bn1.running_mean"].asnumpy(), state["bn1.running_mean"])
    np.testing.assert_array_equal(params["layer4.1.bn2.running_var"].asnumpy(), np.ones(512, np.float32))
