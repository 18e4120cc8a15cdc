"""FastReID's normalisation layers (``MODEL.BACKBONE.NORM`` / ``MODEL.HEADS.NORM``) with PyTorch semantics.

* Parameters are named like PyTorch's state_dict: ``weight``, ``bias``, ``running_mean``, ``running_var`` (the
  running statistics are Parameters with ``requires_grad=False``; ``num_batches_tracked`` is not kept, momentum is
  fixed). ``IBN`` holds ``IN.weight``, ``IN.bias`` and ``BN.*``.
* ``momentum`` is PyTorch's: ``running = (1 - momentum) * running + momentum * batch_stat``, with the UNBIASED batch
  variance for ``running_var``; the output is normalised with the biased batch variance. (MindSpore's
  ``nn.BatchNorm2d`` uses the reversed convention, so it is not used here.)
* Training mode (``set_train(True)``) uses batch statistics and, with ``update_stats=True`` (the default of every
  norm's ``construct(x, update_stats=True)``), updates the running ones; ``update_stats=False`` leaves them untouched
  (ACL-DGReID's "hold" mode of the meta-learning passes). Eval mode uses the running statistics. Every norm takes the
  flag, so that blocks can pass it on without knowing which norm they hold.

``get_norm(norm, out_channels, **kwargs)`` builds "BN", "syncBN", "GhostBN", "FrozenBN" or "GN" (or calls a
callable with ``(out_channels, **kwargs)``), like upstream.
"""
from mindspore import Parameter, nn, ops

from fastreid_ms.utils import comm

from .weight_init import constant_tensor

__all__ = [
    "BatchNorm",
    "SyncBatchNorm",
    "GhostBatchNorm",
    "FrozenBatchNorm",
    "InstanceNorm",
    "GroupNorm",
    "IBN",
    "NormSequential",
    "takes_update_stats",
    "get_norm",
]


class BatchNorm(nn.Cell):
    """``nn.BatchNorm2d`` with FastReID's options.

    Args:
        num_features: channels C.
        eps, momentum: PyTorch meaning (momentum 0.1 -> running = 0.9 running + 0.1 batch).
        weight_freeze, bias_freeze: make ``weight`` / ``bias`` non-trainable (``requires_grad=False``); FastReID's
            BNNeck uses ``bias_freeze=True``.
        weight_init, bias_init: initial constants (None keeps PyTorch's defaults 1 and 0).
        **kwargs: ignored (upstream passes e.g. ``num_splits`` through ``get_norm`` to every norm).
    """

    is_norm = True

    def __init__(self, num_features, eps=1e-05, momentum=0.1, weight_freeze=False, bias_freeze=False, weight_init=1.0,
                 bias_init=0.0, **kwargs):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.weight = Parameter(constant_tensor(1.0 if weight_init is None else weight_init, num_features),
                                name="weight", requires_grad=not weight_freeze)
        self.bias = Parameter(constant_tensor(0.0 if bias_init is None else bias_init, num_features),
                              name="bias", requires_grad=not bias_freeze)
        self.running_mean = Parameter(constant_tensor(0.0, num_features), name="running_mean", requires_grad=False)
        self.running_var = Parameter(constant_tensor(1.0, num_features), name="running_var", requires_grad=False)

    def construct(self, x, update_stats=True):
        if not self.training:
            return ops.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False,
                                  self.momentum, self.eps)
        if update_stats:
            # the kernel updates the running Parameters in place (PyTorch momentum, unbiased variance)
            return ops.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, True,
                                  self.momentum, self.eps)
        c = x.shape[1]
        return ops.batch_norm(x, ops.zeros(c, x.dtype), ops.ones(c, x.dtype), self.weight, self.bias, True,
                              self.momentum, self.eps)

    def extend_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"weight_freeze={not self.weight.requires_grad}, bias_freeze={not self.bias.requires_grad}")


class SyncBatchNorm(BatchNorm):
    """Batch norm whose training statistics are computed over the whole data-parallel batch.

    With one process (``comm.get_world_size() == 1``) it is exactly :class:`BatchNorm`. With several processes it
    all-reduces the per-channel count, sum and sum of squares (``ops.AllReduce``, whose gradient all-reduces the
    incoming gradients, as PyTorch's ``SyncBatchNorm`` backward does), normalises with the global mean and biased
    variance and updates the running statistics with the global unbiased variance, identically on every process.
    MindSpore's own ``nn.SyncBatchNorm`` targets Ascend graph mode and uses the reversed momentum convention, so it is
    not used.
    """

    def __init__(self, num_features, eps=1e-05, momentum=0.1, weight_freeze=False, bias_freeze=False, weight_init=1.0,
                 bias_init=0.0, **kwargs):
        super().__init__(num_features, eps, momentum, weight_freeze, bias_freeze, weight_init, bias_init)
        self.all_reduce = ops.AllReduce() if comm.get_world_size() > 1 else None

    def construct(self, x, update_stats=True):
        if not self.training or self.all_reduce is None:
            return super().construct(x, update_stats)
        n, c, h, w = x.shape
        flat = x.swapaxes(0, 1).reshape(c, -1)
        local = ops.stack([flat.sum(1), (flat * flat).sum(1), ops.full((c,), float(n * h * w), dtype=x.dtype)])
        total = self.all_reduce(local)
        count = total[2]
        mean = total[0] / count
        var = total[1] / count - mean * mean
        if update_stats:
            _update_running_stats(self, mean, var * count / ops.clamp(count - 1, min=1.0))
        scale = self.weight * ops.rsqrt(var + self.eps)
        return (x - mean.reshape(1, c, 1, 1)) * scale.reshape(1, c, 1, 1) + self.bias.reshape(1, c, 1, 1)


def _update_running_stats(bn, mean, unbiased_var):
    """PyTorch momentum update of ``bn.running_mean`` / ``bn.running_var`` (no gradient)."""
    m = bn.momentum
    ops.assign(bn.running_mean, ops.stop_gradient((1 - m) * bn.running_mean + m * mean))
    ops.assign(bn.running_var, ops.stop_gradient((1 - m) * bn.running_var + m * unbiased_var))


class GhostBatchNorm(BatchNorm):
    """Ghost batch norm: in training the batch is split into ``num_splits`` virtual batches, each normalised with its
    own statistics (upstream's ``view(-1, C * num_splits, H, W)``: virtual batch ``s`` holds the samples with
    ``n % num_splits == s``); the running statistics are updated with the average over the splits of the per-split
    updates. Eval mode uses the running statistics. The training batch size must be divisible by ``num_splits``."""

    def __init__(self, num_features, num_splits=1, **kwargs):
        super().__init__(num_features, **kwargs)
        if num_splits < 1:
            raise ValueError(f"GhostBatchNorm: num_splits must be >= 1, got {num_splits}")
        self.num_splits = num_splits

    def construct(self, x, update_stats=True):
        if not self.training:
            return super().construct(x)
        n, c, h, w = x.shape
        s = self.num_splits
        xs = x.reshape(n // s, c * s, h, w)
        if update_stats:
            stats_n = (n // s) * h * w
            flat = xs.swapaxes(0, 1).reshape(c * s, -1)
            mean = flat.mean(1)
            unbiased_var = ((flat - mean.reshape(-1, 1)) ** 2).sum(1) / max(stats_n - 1, 1)
            _update_running_stats(self, mean.reshape(s, c).mean(0), unbiased_var.reshape(s, c).mean(0))
        y = ops.batch_norm(xs, ops.zeros(c * s, x.dtype), ops.ones(c * s, x.dtype), ops.tile(self.weight, (s,)),
                           ops.tile(self.bias, (s,)), True, self.momentum, self.eps)
        return y.reshape(n, c, h, w)

    def extend_repr(self):
        return super().extend_repr() + f", num_splits={self.num_splits}"


class FrozenBatchNorm(BatchNorm):
    """Batch norm whose statistics and affine parameters are fixed: always
    ``(x - running_mean) / sqrt(running_var + eps) * weight + bias`` (also in training mode), with ``weight`` and
    ``bias`` non-trainable. Gradients still flow to the input."""

    def __init__(self, num_features, eps=1e-5, **kwargs):
        kwargs.pop("weight_freeze", None)
        kwargs.pop("bias_freeze", None)
        super().__init__(num_features, eps=eps, weight_freeze=True, bias_freeze=True, **kwargs)

    def construct(self, x, update_stats=True):
        return ops.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, self.momentum,
                              self.eps)

    @classmethod
    def convert_frozen_batchnorm(cls, cell):
        """Replace every :class:`BatchNorm` (incl. sync/ghost) in ``cell`` by a FrozenBatchNorm with the same weight,
        bias, running statistics and eps; returns the new cell when ``cell`` itself is a batch norm, else converts
        in place and returns ``cell``. Parameter names keep their full paths."""
        converted = cls._convert(cell)
        for name, param in converted.parameters_and_names():
            param.name = name
        return converted

    @classmethod
    def _convert(cls, cell):
        if isinstance(cell, BatchNorm):
            frozen = cls(cell.num_features, eps=cell.eps)
            for attr in ("weight", "bias", "running_mean", "running_var"):
                getattr(frozen, attr).set_data(getattr(cell, attr).value().copy())
            return frozen
        for name, child in list(cell.name_cells().items()):
            new_child = cls._convert(child)
            if new_child is not child:
                if isinstance(cell, nn.SequentialCell):
                    cell[int(name)] = new_child
                else:
                    setattr(cell, name, new_child)
        return cell


class InstanceNorm(nn.Cell):
    """``nn.InstanceNorm2d(num_features, affine=True)`` (no running statistics: instance statistics in train and
    eval), Parameters ``weight`` (1) and ``bias`` (0). MindSpore's InstanceNorm has no CPU kernel; this is a batch
    norm over the (1, N*C, H, W) view, which is the same computation (and the fastest form compiled: 0.13 s forward +
    backward on (16, 256, 64, 32), against 0.33 s for ``ops.group_norm`` with C groups and 0.71 s by hand).

    ``zero_if_height_one=True`` reproduces a quirk of ACL-DGReID's ``MetaINNorm``: an input with ``H == 1`` is
    returned multiplied by 0 (the reference zeroes it in place) instead of normalised. ``update_stats`` is accepted
    and ignored (there are no running statistics).
    """

    is_norm = True

    def __init__(self, num_features, eps=1e-5, zero_if_height_one=False):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.zero_if_height_one = zero_if_height_one
        self.weight = Parameter(constant_tensor(1.0, num_features), name="weight")
        self.bias = Parameter(constant_tensor(0.0, num_features), name="bias")

    def construct(self, x, update_stats=True):
        if self.zero_if_height_one and x.shape[2] == 1:
            return x * 0.0
        n, c, h, w = x.shape
        nc = n * c
        y = ops.batch_norm(x.reshape(1, nc, h, w), ops.zeros(nc, x.dtype), ops.ones(nc, x.dtype),
                           ops.tile(self.weight, (n,)), ops.tile(self.bias, (n,)), True, 0.1, self.eps)
        return y.reshape(n, c, h, w)

    def extend_repr(self):
        return f"{self.num_features}, eps={self.eps}, affine=True, zero_if_height_one={self.zero_if_height_one}"


class GroupNorm(nn.Cell):
    """``nn.GroupNorm(num_groups, num_channels)`` (affine), Parameters ``weight`` (1) and ``bias`` (0)."""

    is_norm = True

    def __init__(self, num_groups, num_channels, eps=1e-5):
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels={num_channels} is not divisible by num_groups={num_groups}")
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        self.weight = Parameter(constant_tensor(1.0, num_channels), name="weight")
        self.bias = Parameter(constant_tensor(0.0, num_channels), name="bias")

    def construct(self, x, update_stats=True):
        return ops.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extend_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}"


class IBN(nn.Cell):
    """IBN-a: instance norm (``IN``) on the first ``int(planes / 2)`` channels, ``get_norm(bn_norm)`` (``BN``) on
    the rest, concatenated back. ``zero_if_height_one`` goes to the instance norm (ACL-DGReID's quirk, see
    :class:`InstanceNorm`), other keyword arguments to the batch norm."""

    is_norm = True

    def __init__(self, planes, bn_norm, zero_if_height_one=False, **kwargs):
        super().__init__()
        self.half = int(planes / 2)
        self.IN = InstanceNorm(self.half, zero_if_height_one=zero_if_height_one)
        self.BN = get_norm(bn_norm, planes - self.half, **kwargs)

    def construct(self, x, update_stats=True):
        return ops.cat((self.IN(x[:, :self.half]), self.BN(x[:, self.half:], update_stats)), 1)


def _group_norm_32(channels, **kwargs):
    return GroupNorm(32, channels)


def _instance_norm(channels, zero_if_height_one=False, **kwargs):
    return InstanceNorm(channels, zero_if_height_one=zero_if_height_one)


_NORMS = {
    "BN": BatchNorm,
    "IN": _instance_norm,
    "GhostBN": GhostBatchNorm,
    "FrozenBN": FrozenBatchNorm,
    "GN": _group_norm_32,
    "syncBN": SyncBatchNorm,
}


def get_norm(norm, out_channels, **kwargs):
    """The normalisation layer for ``out_channels`` channels.

    ``norm``: "BN", "syncBN", "GhostBN" (``num_splits`` kwarg), "FrozenBN", "GN" (32 groups; kwargs ignored as
    upstream), "IN" (affine instance norm; ``zero_if_height_one`` kwarg), "" (returns None), or a callable
    ``norm(out_channels, **kwargs)``. Every norm's ``construct`` is ``(x, update_stats=True)``.
    """
    if isinstance(norm, str):
        if len(norm) == 0:
            return None
        if norm not in _NORMS:
            raise ValueError(f"norm={norm!r} is not a known normalisation; expected one of {', '.join(_NORMS)} "
                             f"(or a callable)")
        norm = _NORMS[norm]
    return norm(out_channels, **kwargs)



def takes_update_stats(cell) -> bool:
    """Whether ``cell`` is called as ``cell(x, update_stats)``: norms (classes with ``is_norm = True``) and cells
    whose class sets ``takes_update_stats = True`` (:class:`NormSequential`, residual blocks)."""
    cls = type(cell)
    return bool(getattr(cls, "is_norm", False) or getattr(cls, "takes_update_stats", False))


class NormSequential(nn.SequentialCell):
    """``nn.SequentialCell`` (children named ``0``, ``1``, ... as PyTorch's ``nn.Sequential``) whose
    ``construct(x, update_stats=True)`` passes the flag on to the children that take it (:func:`takes_update_stats`:
    norms, residual blocks, nested NormSequentials), e.g. ResNet's ``downsample`` (conv, norm), a head's
    ``bottleneck`` (optional conv, BNNeck) or MGN's branches (residual blocks)."""
    takes_update_stats = True

    def __init__(self, cells):
        super().__init__(list(cells))
        self.takes_stats = tuple(takes_update_stats(c) for c in self.cell_list)

    def construct(self, x, update_stats=True):
        for cell, takes_stats in zip(self.cell_list, self.takes_stats):
            if takes_stats:
                x = cell(x, update_stats)
            else:
                x = cell(x)
        return x
