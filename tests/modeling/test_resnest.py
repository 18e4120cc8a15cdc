"""ResNeSt ("S50") backbone and its split-attention convolution against numpy formulations of upstream's code."""
from pathlib import Path

import numpy as np
import pytest
from mindspore import Tensor

from fastreid_ms.config import get_cfg
from fastreid_ms.layers import SplAtConv2d, radix_softmax
from fastreid_ms.modeling import build_backbone
from fastreid_ms.modeling.backbones.resnest import AvgPool

REPO = Path(__file__).resolve().parents[2]


def s50_cfg(**backbone):
    cfg = get_cfg()
    cfg.merge_from_file(str(REPO / "configs" / "Market1501" / "bagtricks_S50.yml"))
    cfg.MODEL.BACKBONE.PRETRAIN = False
    for key, value in backbone.items():
        setattr(cfg.MODEL.BACKBONE, key, value)
    return cfg


def np_softmax(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def test_radix_softmax_matches_upstream_view_transpose():
    x = np.random.default_rng(0).standard_normal((3, 12, 1, 1)).astype(np.float32)
    got = radix_softmax(Tensor(x), radix=2, cardinality=2).asnumpy()
    expected = np_softmax(x.reshape(3, 2, 2, -1).transpose(0, 2, 1, 3), 1).reshape(3, -1)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(radix_softmax(Tensor(x), 1, 1).asnumpy(), 1 / (1 + np.exp(-x.reshape(3, -1))),
                               rtol=1e-6)


def test_split_attention_conv_matches_numpy():
    rng = np.random.default_rng(1)
    cell = SplAtConv2d(8, 8, 3, padding=1, bias=False, radix=2, norm_layer="BN")
    cell.set_train(False)  # norms with their initial running statistics: x / sqrt(1 + eps)
    x = Tensor(rng.standard_normal((2, 8, 5, 4)).astype(np.float32))
    scale = 1 / np.sqrt(1 + 1e-5)
    y = np.maximum(cell.conv(x).asnumpy() * scale, 0)
    parts = np.split(y, 2, axis=1)
    gap = (parts[0] + parts[1]).mean((2, 3))                                     # (2, 8)
    w1, b1 = cell.fc1.weight.asnumpy()[:, :, 0, 0], cell.fc1.bias.asnumpy()      # (32, 8)
    hidden = np.maximum((gap @ w1.T + b1) * scale, 0)
    w2, b2 = cell.fc2.weight.asnumpy()[:, :, 0, 0], cell.fc2.bias.asnumpy()
    att = np_softmax((hidden @ w2.T + b2).reshape(2, 1, 2, -1).transpose(0, 2, 1, 3), 1).reshape(2, -1)
    atts = np.split(att, 2, axis=1)
    expected = atts[0][:, :, None, None] * parts[0] + atts[1][:, :, None, None] * parts[1]
    assert cell.fc1.weight.shape == (32, 8, 1, 1)  # inter channels max(8 * 2 // 4, 32)
    np.testing.assert_allclose(cell(x).asnumpy(), expected, rtol=1e-4, atol=1e-5)


def np_avg_pool(x, k, s, pad, ceil, count_pad):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    valid = np.pad(np.ones((h, w)), pad)
    rnd = np.ceil if ceil else np.floor
    oh, ow = int(rnd((h + 2 * pad - k) / s)) + 1, int(rnd((w + 2 * pad - k) / s)) + 1
    out = np.zeros((n, c, oh, ow), np.float32)
    for i in range(oh):
        for j in range(ow):
            win = xp[:, :, i * s:i * s + k, j * s:j * s + k]
            count = k * k if count_pad else valid[i * s:i * s + k, j * s:j * s + k].sum()
            out[:, :, i, j] = win.sum((2, 3)) / count
    return out


@pytest.mark.parametrize("h,w", [(6, 4), (7, 5)])
def test_avg_pools_follow_pytorch(h, w):
    x = np.random.default_rng(2).standard_normal((1, 2, h, w)).astype(np.float32)
    np.testing.assert_allclose(AvgPool(3, 2, padding=1)(Tensor(x)).asnumpy(), np_avg_pool(x, 3, 2, 1, False, True),
                               rtol=1e-5, atol=1e-6)
    got = AvgPool(2, 2, ceil_mode=True, count_include_pad=False)(Tensor(x)).asnumpy()
    np.testing.assert_allclose(got, np_avg_pool(x, 2, 2, 0, True, False), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(AvgPool(1, 1)(Tensor(x)).asnumpy(), x)


def test_resnest50_structure_and_parameter_names():
    backbone = build_backbone(s50_cfg())
    # ResNeSt-50's published 27.48M parameters minus its 2048x1000 (+1000) ImageNet classifier
    assert sum(int(np.prod(p.shape)) for p in backbone.trainable_params()) == 25_434_240
    names = {n for n, _ in backbone.parameters_and_names()}
    for name in ("conv1.0.weight", "conv1.4.running_var", "conv1.6.weight", "bn1.weight", "layer1.0.conv2.conv.weight",
                 "layer1.0.conv2.bn0.running_mean", "layer1.0.conv2.fc1.bias", "layer3.5.conv2.fc2.weight",
                 "layer2.0.downsample.1.weight", "layer2.0.downsample.2.running_mean", "layer4.2.bn3.bias"):
        assert name in names, name
    assert not backbone.layer1[0].avd and backbone.layer2[0].avd and backbone.layer4[0].avd
    assert not backbone.layer2[1].avd
    assert backbone.layer4[1].conv2.conv.dilation == (2, 2)  # LAST_STRIDE 1: dilated stride-1 layer4


@pytest.mark.parametrize("last_stride,stride", [(1, 16), (2, 32)])
def test_resnest_runs_in_train_and_eval(last_stride, stride):
    backbone = build_backbone(s50_cfg(LAST_STRIDE=last_stride))
    x = Tensor(np.random.default_rng(3).uniform(-1, 1, (2, 3, 64, 32)).astype(np.float32))
    for train in (True, False):
        backbone.set_train(train)
        out = backbone(x).asnumpy()
        assert out.shape == (2, 2048, 64 // stride, 32 // stride)
        assert np.all(np.isfinite(out))


def test_options_upstream_ignores_are_logged_not_built(caplog):
    caplog.set_level("INFO", logger="fastreid_ms.modeling.backbones.resnest")
    backbone = build_backbone(s50_cfg(WITH_NL=True, WITH_IBN=True))
    assert "does not use MODEL.BACKBONE.WITH_IBN, WITH_NL" in caplog.text
    names = {n for n, _ in backbone.parameters_and_names()}
    assert not any(n.startswith("NL_") or ".IN." in n for n in names)


def test_unknown_depth_is_refused():
    with pytest.raises(ValueError, match="MODEL.BACKBONE.DEPTH='34x'"):
        build_backbone(s50_cfg(DEPTH="34x"))
