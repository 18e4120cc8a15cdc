"""Split-attention convolution of ResNeSt (FastReID ``layers/splat.py``, Zhang et al. 2020)."""
from mindspore import nn, ops

from .batch_norm import get_norm
from .conv import Conv2d
from .helpers import global_avg_pool

__all__ = ["SplAtConv2d", "radix_softmax"]


def radix_softmax(x, radix: int, cardinality: int):
    """FastReID's ``rSoftMax`` on (N, C, 1, 1) attention logits: softmax over the radix splits within each
    cardinal group (``view(N, cardinality, radix, -1).transpose(1, 2)``, softmax on axis 1), flattened back to
    (N, C); a sigmoid when ``radix`` is 1."""
    n = x.shape[0]
    if radix > 1:
        x = x.reshape(n, cardinality, radix, -1).swapaxes(1, 2)
        return ops.softmax(x, 1).reshape(n, -1)
    return ops.sigmoid(x).reshape(n, -1)


class SplAtConv2d(nn.Cell):
    """``conv`` (``channels * radix`` outputs in ``groups * radix`` groups) -> ``bn0`` -> ReLU, split into ``radix``
    parts whose sum is pooled globally -> ``fc1`` (1x1, ``max(in_channels * radix // reduction_factor, 32)``
    channels) -> ``bn1`` -> ReLU -> ``fc2`` -> :func:`radix_softmax`; the output is the attention-weighted sum of
    the parts (``channels`` channels). ``norm_layer`` None leaves out ``bn0`` / ``bn1``. Parameter names follow the
    PyTorch module (``conv.weight``, ``bn0.running_mean``, ``fc1.bias`` ...)."""

    def __init__(self, in_channels, channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 radix=2, reduction_factor=4, norm_layer=None):
        super().__init__()
        inter_channels = max(in_channels * radix // reduction_factor, 32)
        self.radix = radix
        self.cardinality = groups
        self.channels = channels
        self.conv = Conv2d(in_channels, channels * radix, kernel_size, stride, padding, dilation,
                           groups=groups * radix, bias=bias)
        self.use_bn = norm_layer is not None
        if self.use_bn:
            self.bn0 = get_norm(norm_layer, channels * radix)
        self.fc1 = Conv2d(channels, inter_channels, 1, groups=self.cardinality)
        if self.use_bn:
            self.bn1 = get_norm(norm_layer, inter_channels)
        self.fc2 = Conv2d(inter_channels, channels * radix, 1, groups=self.cardinality)

    def construct(self, x, update_stats=True):
        x = self.conv(x)
        if self.use_bn:
            x = self.bn0(x, update_stats)
        x = ops.relu(x)
        n = x.shape[0]
        if self.radix > 1:
            splits = ops.split(x, self.channels, 1)
            gap = splits[0]
            for part in splits[1:]:
                gap = gap + part
        else:
            splits = (x,)
            gap = x
        gap = global_avg_pool(gap).reshape(n, self.channels, 1, 1)
        gap = self.fc1(gap)
        if self.use_bn:
            gap = self.bn1(gap, update_stats)
        gap = ops.relu(gap)
        atten = radix_softmax(self.fc2(gap), self.radix, self.cardinality).reshape(n, -1, 1, 1)
        if self.radix > 1:
            attens = ops.split(atten, self.channels, 1)
            out = attens[0] * splits[0]
            for att, part in zip(attens[1:], splits[1:]):
                out = out + att * part
            return out
        return atten * x
