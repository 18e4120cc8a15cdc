"""FastReID's global pooling layers (``MODEL.HEADS.POOL_LAYER``), as MindSpore Cells.

Every layer keeps the upstream output layout: a 4-D ``(N, C, 1, 1)`` tensor (``Flatten`` gives ``(N, C*H*W, 1, 1)``,
``Identity`` returns its input), so the head applies its neck and then takes ``[..., 0, 0]`` as upstream does.
Constructors accept and ignore extra positional/keyword arguments like upstream, so a head can build any of them with
the same call.
"""
import mindspore
from mindspore import Parameter, Tensor, nn, ops

from .helpers import global_avg_pool

__all__ = [
    "Identity",
    "Flatten",
    "GlobalAvgPool",
    "GlobalMaxPool",
    "GeneralizedMeanPooling",
    "GeneralizedMeanPoolingP",
    "FastGlobalAvgPool",
    "AdaptiveAvgMaxPool",
    "ClipGlobalAvgPool",
]


def _is_global(output_size) -> bool:
    if isinstance(output_size, int):
        return output_size == 1
    return tuple(output_size) == (1, 1)


def _adaptive_avg_pool(x, output_size):
    """``F.adaptive_avg_pool2d``; the global case is :func:`~fastreid_ms.layers.helpers.global_avg_pool`."""
    if _is_global(output_size):
        return global_avg_pool(x).reshape(x.shape[0], x.shape[1], 1, 1)
    return ops.adaptive_avg_pool2d(x, output_size)


class Identity(nn.Cell):
    """Returns its input unchanged."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def construct(self, x):
        return x


class Flatten(nn.Cell):
    """``(N, C, H, W) -> (N, C*H*W, 1, 1)`` (upstream's view keeps the two trailing unit axes)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def construct(self, x):
        return x.reshape(x.shape[0], -1, 1, 1)


class GlobalAvgPool(nn.Cell):
    """``nn.AdaptiveAvgPool2d(output_size)`` (default 1)."""

    def __init__(self, output_size=1, *args, **kwargs):
        super().__init__()
        self.output_size = output_size

    def construct(self, x):
        return _adaptive_avg_pool(x, self.output_size)


class GlobalMaxPool(nn.Cell):
    """``nn.AdaptiveMaxPool2d(output_size)`` (default 1)."""

    def __init__(self, output_size=1, *args, **kwargs):
        super().__init__()
        self.output_size = output_size

    def construct(self, x):
        if _is_global(self.output_size):
            n, c = x.shape[0], x.shape[1]
            return x.reshape(n, c, -1).amax(-1).reshape(n, c, 1, 1)
        return ops.adaptive_max_pool2d(x, self.output_size)


class GeneralizedMeanPooling(nn.Cell):
    """Generalized-mean (GeM) pooling with a fixed exponent: ``avgpool(clamp(x, eps) ** p) ** (1 / p)``.

    ``p = 1`` is average pooling, ``p -> inf`` max pooling. FastReID's default (and the ACL-DGReID head's pool) is
    ``norm=3, eps=1e-6``; the clamp happens before the power, so negative inputs get zero gradient.
    """

    def __init__(self, norm=3, output_size=(1, 1), eps=1e-6, *args, **kwargs):
        super().__init__()
        if not norm > 0:
            raise ValueError(f"GeneralizedMeanPooling: norm (the exponent p) must be > 0, got {norm!r}")
        self.p = float(norm)
        self.output_size = output_size
        self.eps = eps

    def construct(self, x):
        x = ops.pow(x.clamp(min=self.eps), self.p)
        return ops.pow(_adaptive_avg_pool(x, self.output_size), 1.0 / self.p)

    def extend_repr(self):
        return f"{self.p}, output_size={self.output_size}"


class GeneralizedMeanPoolingP(GeneralizedMeanPooling):
    """GeM pooling whose exponent is a trainable Parameter ``p`` of shape (1,), initialised to ``norm``."""

    def __init__(self, norm=3, output_size=(1, 1), eps=1e-6, *args, **kwargs):
        super().__init__(norm, output_size, eps)
        self.p = Parameter(Tensor([float(norm)], mindspore.float32), name="p")

    def construct(self, x):
        x = ops.pow(x.clamp(min=self.eps), self.p)
        return ops.pow(_adaptive_avg_pool(x, self.output_size), 1.0 / self.p)

    def extend_repr(self):
        return f"p=Parameter(1), output_size={self.output_size}"


class FastGlobalAvgPool(nn.Cell):
    """Mean over H*W; ``(N, C, 1, 1)``, or ``(N, C)`` with ``flatten=True``."""

    def __init__(self, flatten=False, *args, **kwargs):
        super().__init__()
        self.flatten = flatten

    def construct(self, x):
        pooled = global_avg_pool(x)
        if self.flatten:
            return pooled
        return pooled.reshape(x.shape[0], x.shape[1], 1, 1)


class AdaptiveAvgMaxPool(nn.Cell):
    """Global average pool plus global max pool (summed)."""

    def __init__(self, output_size=1, *args, **kwargs):
        super().__init__()
        self.gap = FastGlobalAvgPool()
        self.gmp = GlobalMaxPool(output_size)

    def construct(self, x):
        return self.gap(x) + self.gmp(x)


class ClipGlobalAvgPool(nn.Cell):
    """Global average pool clamped to [0, 1]."""

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.avgpool = FastGlobalAvgPool()

    def construct(self, x):
        return self.avgpool(x).clamp(min=0.0, max=1.0)
