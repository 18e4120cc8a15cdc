"""fastreid_ms.layers: margin softmaxes, pooling, norms (BN/IBN/GN/frozen/ghost), SE, non-local, weight init."""
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import mindspore
import numpy as np
import pytest
from mindspore import Tensor

from fastreid_ms import layers

# ---------------------------------------------------------------------------------------------------------------
# any_softmax: small hand-made cases with values worked out from the FastReID formulas
# ---------------------------------------------------------------------------------------------------------------

COS = np.array([[0.5, 0.1, -0.2],
                [0.3, 0.8, 0.0]], dtype=np.float32)
TARGETS = np.array([0, -1], dtype=np.int64)   # row 1 has no positive class (upstream's model-parallel convention)
SCALE, MARGIN = 2.0, 0.25


def _apply(cls, logits=COS, targets=TARGETS, scale=SCALE, margin=MARGIN):
    out = cls(logits.shape[1], scale, margin)(Tensor(logits), None if targets is None else Tensor(targets))
    return out.asnumpy()


def test_linear_scales_logits_only():
    np.testing.assert_allclose(_apply(layers.Linear), [[1.0, 0.2, -0.4], [0.6, 1.6, 0.0]], rtol=1e-6)


def test_cos_softmax_subtracts_margin_at_target_only():
    # s * (cos - m) at (0, 0) = 2 * 0.25 = 0.5; everything else s * cos; row with target -1 untouched
    np.testing.assert_allclose(_apply(layers.CosSoftmax), [[0.5, 0.2, -0.4], [0.6, 1.6, 0.0]], rtol=1e-6)
    # targets=None behaves like all -1
    np.testing.assert_allclose(_apply(layers.CosSoftmax, targets=None), 2.0 * COS, rtol=1e-6)


def test_arc_softmax_adds_angular_margin_at_target():
    expected = 2.0 * COS.astype(np.float64)
    expected[0, 0] = 2.0 * math.cos(math.acos(0.5) + 0.25)   # = 2 cos(pi/3 + 0.25) = 0.540396...
    np.testing.assert_allclose(_apply(layers.ArcSoftmax), expected, rtol=1e-5, atol=1e-6)
    assert abs(expected[0, 0] - 0.5403962) < 1e-6


def test_circle_softmax_values():
    m = MARGIN
    # target entry (0,0): alpha_p = 1 + m - 0.5 = 0.75, (0.5 - (1 - m)) = -0.25 -> 2 * 0.75 * -0.25 = -0.375
    # non-target entries: alpha_n = relu(c + m), times (c - m), times s
    expected = np.array([[-0.375, 2 * 0.35 * (0.1 - m), 2 * 0.05 * (-0.2 - m)],
                         [2 * 0.55 * (0.3 - m), 2 * 1.05 * (0.8 - m), 2 * 0.25 * (0.0 - m)]])
    np.testing.assert_allclose(_apply(layers.CircleSoftmax), expected, rtol=1e-5, atol=1e-7)
    # alpha_n clamps at 0 for cos < -m
    out = _apply(layers.CircleSoftmax, logits=np.array([[-0.6, 0.9]], np.float32), targets=np.array([1]))
    np.testing.assert_allclose(out, [[0.0, 2 * 0.35 * (0.9 - 0.75)]], atol=1e-6)


def _numpy_margin_logits(kind, cos, targets, s, m):
    """A direct numpy transcription of FastReID's any_softmax forward (float64)."""
    cos = cos.astype(np.float64)
    hot = np.zeros_like(cos)
    rows = np.where(targets != -1)[0]
    hot[rows, targets[rows]] = 1.0
    if kind == "CosSoftmax":
        return s * (cos - m * hot)
    if kind == "ArcSoftmax":
        return s * np.cos(np.arccos(cos) + m * hot)
    alpha_p = np.maximum(1 + m - cos, 0)
    alpha_n = np.maximum(cos + m, 0)
    return s * (hot * alpha_p * (cos - (1 - m)) + (1 - hot) * alpha_n * (cos - m))


@pytest.mark.parametrize("kind", ["CosSoftmax", "ArcSoftmax", "CircleSoftmax"])
def test_margin_layers_match_numpy_transcription_and_gradients(kind):
    rng = np.random.default_rng(3)
    cos = rng.uniform(-0.9, 0.9, size=(5, 4)).astype(np.float32)
    targets = np.array([0, 3, -1, 2, 1], dtype=np.int64)
    s, m = 16.0, 0.35
    layer = getattr(layers, kind)(4, s, m)
    out = layer(Tensor(cos), Tensor(targets)).asnumpy()
    np.testing.assert_allclose(out, _numpy_margin_logits(kind, cos, targets, s, m), rtol=1e-5, atol=1e-5)

    grad = mindspore.grad(lambda c: layer(c, Tensor(targets)).sum())(Tensor(cos)).asnumpy()
    cos64 = cos.astype(np.float64)
    hot = np.zeros_like(cos64)
    hot[[0, 1, 3, 4], [0, 3, 2, 1]] = 1.0
    if kind == "CosSoftmax":
        expected = np.full_like(cos64, s)
    elif kind == "ArcSoftmax":   # d/dc s cos(acos c + m) = s sin(acos c + m) / sqrt(1 - c^2)
        expected = s * np.sin(np.arccos(cos64) + m * hot) / np.sqrt(1 - cos64 ** 2)
    else:                        # alphas are detached: gradient is s * alpha
        expected = s * (hot * np.maximum(1 + m - cos64, 0) + (1 - hot) * np.maximum(cos64 + m, 0))
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# pooling
# ---------------------------------------------------------------------------------------------------------------

def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_pooling_layers_values_and_shapes():
    x = _x((2, 3, 5, 4))
    t = Tensor(x)
    mean = x.mean((2, 3), keepdims=True)
    mx = x.max((2, 3), keepdims=True)
    np.testing.assert_allclose(layers.GlobalAvgPool()(t).asnumpy(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layers.FastGlobalAvgPool()(t).asnumpy(), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layers.FastGlobalAvgPool(flatten=True)(t).asnumpy(), mean[:, :, 0, 0], rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(layers.GlobalMaxPool()(t).asnumpy(), mx, rtol=1e-6)
    np.testing.assert_allclose(layers.AdaptiveAvgMaxPool()(t).asnumpy(), mean + mx, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layers.ClipGlobalAvgPool()(Tensor(x + 0.8)).asnumpy(),
                               np.clip(mean + 0.8, 0.0, 1.0), rtol=1e-5, atol=1e-6)
    assert layers.Flatten()(t).shape == (2, 60, 1, 1)
    assert layers.Identity("ignored", k=1)(t) is t
    # non-global adaptive output size
    np.testing.assert_allclose(layers.GlobalAvgPool((1, 2))(Tensor(_x((1, 1, 2, 4)))).asnumpy()[0, 0, 0],
                               _x((1, 1, 2, 4))[0, 0].reshape(2, 2, 2).transpose(1, 0, 2).reshape(2, 4).mean(1),
                               rtol=1e-5)


def test_gem_pooling_formula_and_learnable_p():
    x = np.abs(_x((2, 3, 4, 4))) + 0.1
    for p in (1.0, 3.0):
        out = layers.GeneralizedMeanPooling(norm=p)(Tensor(x)).asnumpy()
        np.testing.assert_allclose(out, (x ** p).mean((2, 3), keepdims=True) ** (1 / p), rtol=1e-5)
    with pytest.raises(ValueError, match="norm"):
        layers.GeneralizedMeanPooling(norm=0)
    gem_p = layers.GeneralizedMeanPoolingP(norm=3)
    assert [n for n, _ in gem_p.parameters_and_names()] == ["p"]
    out = gem_p(Tensor(x)).asnumpy()
    np.testing.assert_allclose(out, (x ** 3).mean((2, 3), keepdims=True) ** (1 / 3), rtol=1e-5)
    grad_p = mindspore.grad(lambda t: gem_p(t).sum(), grad_position=None, weights=gem_p.trainable_params())(
        Tensor(x))[0].asnumpy()
    # d/dp (mean x^p)^(1/p), summed over (N, C), by central differences in float64
    def total(p):
        return ((x.astype(np.float64) ** p).mean((2, 3)) ** (1 / p)).sum()
    np.testing.assert_allclose(grad_p, [(total(3 + 1e-5) - total(3 - 1e-5)) / 2e-5], rtol=1e-3)


# ---------------------------------------------------------------------------------------------------------------
# normalisation layers
# ---------------------------------------------------------------------------------------------------------------

def _bn_train_ref(x, weight, bias, eps=1e-5):
    mean = x.mean((0, 2, 3))
    var = x.var((0, 2, 3))
    y = (x - mean.reshape(1, -1, 1, 1)) / np.sqrt(var.reshape(1, -1, 1, 1) + eps)
    return y * weight.reshape(1, -1, 1, 1) + bias.reshape(1, -1, 1, 1), mean, x.var((0, 2, 3), ddof=1)


def test_batchnorm_parameters_named_like_pytorch():
    bn = layers.BatchNorm(4, bias_freeze=True)
    assert [n for n, _ in bn.parameters_and_names()] == ["weight", "bias", "running_mean", "running_var"]
    assert [p.name for p in bn.trainable_params()] == ["weight"]
    assert not bn.running_mean.requires_grad and not bn.running_var.requires_grad
    frozen_w = layers.BatchNorm(4, weight_freeze=True, weight_init=0.5, bias_init=0.25)
    assert [p.name for p in frozen_w.trainable_params()] == ["bias"]
    np.testing.assert_array_equal(frozen_w.weight.asnumpy(), np.full(4, 0.5, np.float32))
    np.testing.assert_array_equal(frozen_w.bias.asnumpy(), np.full(4, 0.25, np.float32))


def test_batchnorm_train_uses_batch_stats_and_momentum_0_1_unbiased_update():
    x1, x2 = _x((4, 3, 5, 2), 1) * 2 + 1, _x((4, 3, 5, 2), 2) - 0.5
    bn = layers.BatchNorm(3, weight_init=1.5, bias_init=-0.2)
    bn.set_train(True)
    w, b = np.full(3, 1.5), np.full(3, -0.2)
    y1 = bn(Tensor(x1)).asnumpy()
    ref, mean1, uvar1 = _bn_train_ref(x1.astype(np.float64), w, b)
    np.testing.assert_allclose(y1, ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.running_mean.asnumpy(), 0.1 * mean1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.asnumpy(), 0.9 + 0.1 * uvar1, rtol=1e-5)
    bn(Tensor(x2))
    _, mean2, uvar2 = _bn_train_ref(x2.astype(np.float64), w, b)
    np.testing.assert_allclose(bn.running_mean.asnumpy(), 0.9 * 0.1 * mean1 + 0.1 * mean2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.asnumpy(), 0.9 * (0.9 + 0.1 * uvar1) + 0.1 * uvar2, rtol=1e-5)


def test_batchnorm_eval_uses_running_stats_and_leaves_them():
    bn = layers.BatchNorm(3)
    rm, rv = np.array([0.5, -1.0, 2.0], np.float32), np.array([4.0, 0.25, 1.0], np.float32)
    bn.running_mean.set_data(Tensor(rm))
    bn.running_var.set_data(Tensor(rv))
    bn.set_train(False)
    x = _x((2, 3, 3, 3))
    y = bn(Tensor(x)).asnumpy()
    np.testing.assert_allclose(y, (x - rm.reshape(1, 3, 1, 1)) / np.sqrt(rv.reshape(1, 3, 1, 1) + 1e-5), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(bn.running_mean.asnumpy(), rm)
    np.testing.assert_array_equal(bn.running_var.asnumpy(), rv)


def test_batchnorm_affine_gradients():
    bn = layers.BatchNorm(3)
    bn.set_train(True)
    x = _x((4, 3, 2, 2), 3)
    cot = _x((4, 3, 2, 2), 4)
    grads = mindspore.grad(lambda t: (bn(t) * Tensor(cot)).sum(), grad_position=None,
                           weights=bn.trainable_params())(Tensor(x))
    xhat, _, _ = _bn_train_ref(x.astype(np.float64), np.ones(3), np.zeros(3))
    np.testing.assert_allclose(grads[0].asnumpy(), (cot * xhat).sum((0, 2, 3)), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(grads[1].asnumpy(), cot.sum((0, 2, 3)), rtol=1e-5, atol=1e-5)


def test_batchnorm_update_stats_false_uses_batch_stats_and_keeps_running_ones():
    """ACL-DGReID's 'hold' mode: batch statistics, running statistics untouched; a NormSequential passes the flag
    to its norms only."""
    x = _x((4, 3, 5, 2), 13) * 2 + 1
    bn = layers.BatchNorm(3)
    bn.set_train(True)
    ref, _, _ = _bn_train_ref(x.astype(np.float64), np.ones(3), np.zeros(3))
    np.testing.assert_allclose(bn(Tensor(x), False).asnumpy(), ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(bn.running_mean.asnumpy(), np.zeros(3, np.float32))
    np.testing.assert_array_equal(bn.running_var.asnumpy(), np.ones(3, np.float32))
    seq = layers.NormSequential([layers.Conv2d(3, 3, 1, bias=False), layers.BatchNorm(3)])
    seq.set_train(True)
    assert seq.takes_stats == (False, True)
    seq(Tensor(x), False)
    np.testing.assert_array_equal(seq[1].running_mean.asnumpy(), np.zeros(3, np.float32))
    seq(Tensor(x))
    assert np.abs(seq[1].running_mean.asnumpy()).max() > 0


def test_syncbn_on_one_process_is_batchnorm():
    x = _x((4, 3, 3, 2), 5)
    sync, plain = layers.get_norm("syncBN", 3), layers.get_norm("BN", 3)
    assert isinstance(sync, layers.SyncBatchNorm)
    for cell in (sync, plain):
        cell.set_train(True)
    np.testing.assert_array_equal(sync(Tensor(x)).asnumpy(), plain(Tensor(x)).asnumpy())
    np.testing.assert_array_equal(sync.running_var.asnumpy(), plain.running_var.asnumpy())


def test_ghost_batchnorm_normalises_each_virtual_batch():
    x = _x((4, 2, 3, 3), 6) * 3
    gbn = layers.get_norm("GhostBN", 2, num_splits=2)
    gbn.set_train(True)
    y = gbn(Tensor(x)).asnumpy()
    means, uvars = [], []
    for s in range(2):   # upstream's view(-1, C * 2, H, W): split s = samples n with n % 2 == s
        xs = x[s::2].astype(np.float64)
        ref, mean, uvar = _bn_train_ref(xs, np.ones(2), np.zeros(2))
        np.testing.assert_allclose(y[s::2], ref, rtol=1e-4, atol=1e-5)
        means.append(mean)
        uvars.append(uvar)
    np.testing.assert_allclose(gbn.running_mean.asnumpy(), 0.1 * np.mean(means, 0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gbn.running_var.asnumpy(), 0.9 + 0.1 * np.mean(uvars, 0), rtol=1e-5)
    gbn.set_train(False)
    plain = layers.BatchNorm(2)
    plain.running_mean.set_data(gbn.running_mean.value())
    plain.running_var.set_data(gbn.running_var.value())
    plain.set_train(False)
    np.testing.assert_allclose(gbn(Tensor(x)).asnumpy(), plain(Tensor(x)).asnumpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="num_splits must be >= 1"):
        layers.GhostBatchNorm(2, num_splits=0)


def test_frozen_batchnorm_uses_running_stats_in_training_and_is_not_trainable():
    fbn = layers.get_norm("FrozenBN", 3)
    assert fbn.trainable_params() == []
    rm, rv = np.array([1.0, 0.0, -1.0], np.float32), np.array([0.5, 2.0, 1.0], np.float32)
    fbn.running_mean.set_data(Tensor(rm))
    fbn.running_var.set_data(Tensor(rv))
    fbn.weight.set_data(Tensor(np.array([2.0, 1.0, 0.5], np.float32)))
    fbn.set_train(True)
    x = _x((2, 3, 2, 2), 7)
    scale = np.array([2.0, 1.0, 0.5]) / np.sqrt(rv + 1e-5)
    expected = (x - rm.reshape(1, 3, 1, 1)) * scale.reshape(1, 3, 1, 1)
    np.testing.assert_allclose(fbn(Tensor(x)).asnumpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(fbn.running_mean.asnumpy(), rm)
    grad_x = mindspore.grad(lambda t: fbn(t).sum())(Tensor(x)).asnumpy()
    np.testing.assert_allclose(grad_x, np.broadcast_to(scale.reshape(1, 3, 1, 1), x.shape), rtol=1e-5)


def test_convert_frozen_batchnorm_keeps_values_and_full_names():
    class Block(mindspore.nn.Cell):
        def __init__(self):
            super().__init__()
            self.conv = layers.Conv2d(3, 4, 1, bias=False)
            self.bn = layers.BatchNorm(4)

    class Net(mindspore.nn.Cell):
        def __init__(self):
            super().__init__()
            self.stage = mindspore.nn.SequentialCell([Block(), layers.BatchNorm(4)])

    net = Net()
    net.stage[0].bn.running_var.set_data(Tensor(np.full(4, 3.0, np.float32)))
    names_before = [n for n, _ in net.parameters_and_names()]
    out = layers.FrozenBatchNorm.convert_frozen_batchnorm(net)
    assert out is net
    assert isinstance(net.stage[0].bn, layers.FrozenBatchNorm) and isinstance(net.stage[1], layers.FrozenBatchNorm)
    assert [n for n, _ in net.parameters_and_names()] == names_before
    assert [p.name for _, p in net.parameters_and_names()] == names_before
    np.testing.assert_array_equal(net.stage[0].bn.running_var.asnumpy(), np.full(4, 3.0, np.float32))
    assert [p.name for p in net.trainable_params()] == ["stage.0.conv.weight"]


def _instance_norm_ref(x, eps=1e-5):
    x = x.astype(np.float64)
    return (x - x.mean((2, 3), keepdims=True)) / np.sqrt(x.var((2, 3), keepdims=True) + eps)


def test_instance_norm_and_group_norm():
    x = _x((2, 4, 3, 5), 8) * 2 + 1
    inorm = layers.InstanceNorm(4)
    for train in (True, False):   # no running statistics: the same in both modes
        inorm.set_train(train)
        np.testing.assert_allclose(inorm(Tensor(x)).asnumpy(), _instance_norm_ref(x), rtol=1e-4, atol=1e-5)
    gn = layers.get_norm("GN", 64)
    assert isinstance(gn, layers.GroupNorm) and gn.num_groups == 32
    assert [n for n, _ in gn.parameters_and_names()] == ["weight", "bias"]
    xg = _x((2, 64, 2, 3), 9)
    grouped = xg.reshape(2, 32, 2 * 2 * 3).astype(np.float64)
    ref = ((grouped - grouped.mean(-1, keepdims=True)) / np.sqrt(grouped.var(-1, keepdims=True) + 1e-5))
    np.testing.assert_allclose(gn(Tensor(xg)).asnumpy(), ref.reshape(xg.shape), rtol=1e-4, atol=1e-5)


def test_ibn_splits_instance_and_batch_norm():
    ibn = layers.IBN(7, "BN")
    assert ibn.half == 3
    assert [n for n, _ in ibn.parameters_and_names()] == [
        "IN.weight", "IN.bias", "BN.weight", "BN.bias", "BN.running_mean", "BN.running_var"]
    ibn.set_train(True)
    x = _x((3, 7, 4, 2), 10) * 1.5 + 0.3
    y = ibn(Tensor(x)).asnumpy()
    np.testing.assert_allclose(y[:, :3], _instance_norm_ref(x[:, :3]), rtol=1e-4, atol=1e-5)
    ref_bn, mean_bn, _ = _bn_train_ref(x[:, 3:].astype(np.float64), np.ones(4), np.zeros(4))
    np.testing.assert_allclose(y[:, 3:], ref_bn, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ibn.BN.running_mean.asnumpy(), 0.1 * mean_bn, rtol=1e-5, atol=1e-6)
    grads = mindspore.grad(lambda t: (ibn(t) * Tensor(x)).sum(), grad_position=None,
                           weights=ibn.trainable_params())(Tensor(x))
    assert [g.shape for g in grads] == [(3,), (3,), (4,), (4,)]
    assert all(float(np.abs(g.asnumpy()).sum()) > 0 for g in grads)


def test_get_norm_choices_and_errors():
    assert layers.get_norm("", 8) is None
    assert isinstance(layers.get_norm("BN", 8, bias_freeze=True), layers.BatchNorm)
    assert not layers.get_norm("BN", 8, bias_freeze=True).bias.requires_grad
    assert layers.get_norm(lambda c, **kw: ("custom", c, kw), 8, a=1) == ("custom", 8, {"a": 1})
    assert isinstance(layers.IBN(8, "GhostBN", num_splits=2).BN, layers.GhostBatchNorm)
    with pytest.raises(ValueError, match="'LN'"):
        layers.get_norm("LN", 8)


# ---------------------------------------------------------------------------------------------------------------
# SE, non-local, activations, conv cell, weight init
# ---------------------------------------------------------------------------------------------------------------

def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def test_se_layer_formula_names_and_gradients():
    se = layers.SELayer(32, reduction=16)
    assert [(n, p.shape) for n, p in se.parameters_and_names()] == [("fc.0.weight", (2, 32)), ("fc.2.weight", (32, 2))]
    x = _x((2, 32, 3, 2), 11)
    w1, w2 = se.fc[0].weight.asnumpy(), se.fc[2].weight.asnumpy()
    gate = _sigmoid(np.maximum(x.mean((2, 3)) @ w1.T, 0) @ w2.T)
    np.testing.assert_allclose(se(Tensor(x)).asnumpy(), x * gate[:, :, None, None], rtol=1e-5, atol=1e-6)
    grad_x, grads = mindspore.grad(lambda t: (se(t) ** 2).sum(), grad_position=0, weights=se.trainable_params())(
        Tensor(x))
    assert grad_x.shape == x.shape
    assert all(float(np.abs(g.asnumpy()).sum()) > 0 for g in grads)
    acl = layers.SELayer(32, reduction=16, names="fc1_fc2")    # ACL-DGReID's MetaSELayer names, same computation
    assert [(n, p.shape) for n, p in acl.parameters_and_names()] == [("fc1.weight", (2, 32)), ("fc2.weight", (32, 2))]
    acl.fc1.weight.set_data(Tensor(w1))
    acl.fc2.weight.set_data(Tensor(w2))
    np.testing.assert_allclose(acl(Tensor(x)).asnumpy(), se(Tensor(x)).asnumpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="names='fc'"):
        layers.SELayer(32, names="fc")


def test_non_local_starts_as_identity_and_matches_formula():
    nl = layers.Non_local(8, "BN")
    assert [n for n, _ in nl.parameters_and_names()] == [
        "g.weight", "g.bias", "W.0.weight", "W.0.bias", "W.1.weight", "W.1.bias", "W.1.running_mean",
        "W.1.running_var", "theta.weight", "theta.bias", "phi.weight", "phi.bias"]
    assert nl.inter_channels == 4
    nl.set_train(False)
    x = _x((2, 8, 3, 2), 12)
    np.testing.assert_allclose(nl(Tensor(x)).asnumpy(), x, rtol=1e-6)   # W.1 starts at weight 0, bias 0

    nl.W[1].weight.set_data(Tensor(np.ones(8, np.float32)))
    def conv1x1(cell, v):
        bias = cell.bias.asnumpy()[None, :, None, None]
        return np.einsum("oc,nchw->nohw", cell.weight.asnumpy()[:, :, 0, 0], v) + bias
    n, hw = 2, 6
    g = conv1x1(nl.g, x).reshape(n, 4, hw).transpose(0, 2, 1)
    theta = conv1x1(nl.theta, x).reshape(n, 4, hw).transpose(0, 2, 1)
    phi = conv1x1(nl.phi, x).reshape(n, 4, hw)
    y = ((theta @ phi / hw) @ g).transpose(0, 2, 1).reshape(n, 4, 3, 2)
    w_y = conv1x1(nl.W[0], y) / np.sqrt(1 + 1e-5)        # eval-mode BN with running stats 0 / 1
    np.testing.assert_allclose(nl(Tensor(x)).asnumpy(), w_y + x, rtol=1e-4, atol=1e-5)

    nl.set_train(True)
    grads = mindspore.grad(lambda t: (nl(t) ** 2).sum(), grad_position=None, weights=nl.trainable_params())(Tensor(x))
    names = [p.name for p in nl.trainable_params()]
    for name, grad in zip(names, grads):
        assert float(np.abs(grad.asnumpy()).sum()) > 0, f"no gradient reached {name}"


def test_activations():
    x = np.linspace(-3, 3, 13).astype(np.float32)
    xd = x.astype(np.float64)
    np.testing.assert_allclose(layers.Mish()(Tensor(x)).asnumpy(), xd * np.tanh(np.log1p(np.exp(xd))), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(layers.Swish()(Tensor(x)).asnumpy(), xd * _sigmoid(xd), rtol=1e-5, atol=1e-6)
    gelu = 0.5 * xd * (1 + np.tanh(np.sqrt(2 / np.pi) * (xd + 0.044715 * xd ** 3)))
    np.testing.assert_allclose(layers.GELU()(Tensor(x)).asnumpy(), gelu, rtol=1e-5, atol=1e-5)


def test_conv2d_cell_names_and_pytorch_default_init():
    mindspore.set_seed(0)
    conv = layers.Conv2d(16, 32, 3, padding=1, groups=2)
    assert [(n, p.shape) for n, p in conv.parameters_and_names()] == [("weight", (32, 8, 3, 3)), ("bias", (32,))]
    bound = 1 / np.sqrt(8 * 9)
    w = conv.weight.asnumpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound   # U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert np.abs(conv.bias.asnumpy()).max() <= bound
    assert layers.Conv2d(4, 4, 1, bias=False).bias is None
    assert conv(Tensor(_x((1, 16, 5, 4)))).shape == (1, 32, 5, 4)


def test_weight_init_kaiming_and_classifier():
    mindspore.set_seed(1)

    class Net(mindspore.nn.Cell):
        def __init__(self):
            super().__init__()
            self.conv = layers.Conv2d(64, 128, 3)
            self.bn = layers.BatchNorm(128, weight_init=0.3, bias_init=0.7)
            self.fc = mindspore.nn.Dense(256, 512)

    net = Net()
    net.apply(layers.weights_init_kaiming)
    fan_out = 128 * 9
    assert abs(net.conv.weight.asnumpy().std() / np.sqrt(2 / fan_out) - 1) < 0.02
    assert np.all(net.conv.bias.asnumpy() == 0)
    assert np.all(net.bn.weight.asnumpy() == 1) and np.all(net.bn.bias.asnumpy() == 0)
    assert abs(net.fc.weight.asnumpy().std() / 0.01 - 1) < 0.02 and np.all(net.fc.bias.asnumpy() == 0)
    net.apply(layers.weights_init_classifier)
    assert abs(net.fc.weight.asnumpy().std() / 0.001 - 1) < 0.02
    assert abs(net.conv.weight.asnumpy().std() / np.sqrt(2 / fan_out) - 1) < 0.02   # convs untouched


# ---------------------------------------------------------------------------------------------------------------
# SyncBatchNorm across 2 processes (msrun with 2 CPU workers running this file as the worker script)
# ---------------------------------------------------------------------------------------------------------------

SYNC_BATCH, SYNC_WORKERS = 8, 2


def _sync_inputs():
    x = np.random.default_rng(20).standard_normal((SYNC_BATCH, 3, 4, 2)).astype(np.float32) * 2 + 1
    cot = np.random.default_rng(21).standard_normal(x.shape).astype(np.float32)
    return x, cot


def _bn_step(cell, x, cot):
    """One training forward with gradients wrt input and affine params, then a second forward (2 running updates)."""
    cell.set_train(True)
    grad_x, grads = mindspore.grad(lambda t: (cell(t) * Tensor(cot)).sum(), grad_position=0,
                                   weights=cell.trainable_params())(Tensor(x))
    y = cell(Tensor(x)).asnumpy()
    return {"y": y, "grad_x": grad_x.asnumpy(), "grad_weight": grads[0].asnumpy(), "grad_bias": grads[1].asnumpy(),
            "running_mean": cell.running_mean.asnumpy(), "running_var": cell.running_var.asnumpy()}


def _syncbn_worker(out_dir):
    mindspore.set_device("CPU")
    from mindspore.communication import get_rank, init
    init()
    rank = get_rank()
    x, cot = _sync_inputs()
    part = slice(rank * SYNC_BATCH // SYNC_WORKERS, (rank + 1) * SYNC_BATCH // SYNC_WORKERS)
    result = _bn_step(layers.SyncBatchNorm(3, weight_init=1.3, bias_init=0.2), x[part], cot[part])
    np.savez(f"{out_dir}/rank{rank}.npz", **result)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_syncbn_across_two_processes_equals_full_batch_bn(tmp_path):
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]))
    cmd = [str(bin_dir / "msrun"), f"--worker_num={SYNC_WORKERS}", f"--local_worker_num={SYNC_WORKERS}",
           f"--master_port={_free_port()}", f"--log_dir={tmp_path / 'logs'}", "--join=True", __file__, str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    logs = "".join(p.read_text() for p in sorted((tmp_path / "logs").glob("*.log")))
    assert proc.returncode == 0, f"msrun failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}\n{logs[-4000:]}"

    x, cot = _sync_inputs()
    full = _bn_step(layers.BatchNorm(3, weight_init=1.3, bias_init=0.2), x, cot)
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(SYNC_WORKERS)]
    for key in ("y", "grad_x"):
        np.testing.assert_allclose(np.concatenate([r[key] for r in ranks]), full[key], rtol=1e-5, atol=1e-5,
                                   err_msg=key)
    for key in ("grad_weight", "grad_bias"):   # each process holds the gradient of its own part of the loss
        np.testing.assert_allclose(sum(r[key] for r in ranks), full[key], rtol=1e-5, atol=1e-5, err_msg=key)
    for key in ("running_mean", "running_var"):
        for r in ranks:
            np.testing.assert_allclose(r[key], full[key], rtol=1e-5, atol=1e-6, err_msg=key)


if __name__ == "__main__":   # the msrun worker of the test above
    _syncbn_worker(sys.argv[1])
