"""Tensor helpers shared by the layers (and usable by the models).

MindSpore's CPU element-wise kernels are ~10x slower when one operand is broadcast (``x * s.reshape(1, C, 1, 1)``)
than for same-shape operands, while its BatchNorm kernel streams an (N, C, H, W) tensor at the same-shape speed. So
per-channel scalings go through ``ops.batch_norm`` in inference form (mean 0, variance 1, eps 1e-12, and
``1 / sqrt(1 + 1e-12) == 1`` exactly in float32), giving bitwise the same products as the broadcast multiply.
"""
from mindspore import ops

__all__ = ["channel_scale", "spatial_mean"]

_UNIT_VARIANCE_EPS = 1e-12


def channel_scale(x, scale, shift=None):
    """``x * scale.reshape(1, C, 1, 1) (+ shift)`` for x (N, C, H, W) and scale/shift (C,), or the per-sample
    ``x * scale.reshape(N, C, 1, 1) (+ shift)`` for scale/shift (N, C)."""
    n, c, h, w = x.shape
    if scale.ndim == 2:
        y = _affine(x.reshape(1, n * c, h, w), scale.reshape(n * c), None if shift is None else shift.reshape(n * c))
        return y.reshape(n, c, h, w)
    return _affine(x, scale, shift)


def _affine(x, scale, shift):
    c = x.shape[1]
    if shift is None:
        shift = ops.zeros(c, x.dtype)
    return ops.batch_norm(x, ops.zeros(c, x.dtype), ops.ones(c, x.dtype), scale, shift, False, 0.1,
                          _UNIT_VARIANCE_EPS)


def spatial_mean(x):
    """(N, C, H, W) -> (N, C) mean over H and W, as a matmul with a constant 1/(H*W) column: 2-3x faster on
    MindSpore CPU than ``mean`` over (2, 3) or over the flattened last axis, forward and backward (the sum order
    differs, so results agree to float32 rounding)."""
    n, c, h, w = x.shape
    weights = ops.full((h * w, 1), 1.0 / (h * w), dtype=x.dtype)
    return ops.matmul(x.reshape(n * c, h * w), weights).reshape(n, c)
