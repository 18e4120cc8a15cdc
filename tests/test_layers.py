"""fastreid_ms.layers: margin softmaxes, pooling, norms (BN/IBN/GN/frozen/ghost), SE, non-local, weight init."""
import math

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
