"""2-D convolution with PyTorch's layout, defaults and initialisation, on MindSpore's native kernel on every device.

On CPUs with AVX-512, oneDNN (which MindSpore's CPU convolution calls) runs MindSpore's plain-NCHW convolutions with
its naive reference kernel unless its ISA is capped at AVX2 (``ONEDNN_MAX_CPU_ISA``); fastreid_ms sets that cap when
it is imported (:mod:`fastreid_ms.utils.onednn`), so the native kernel is the fast path everywhere.
"""
import math
from typing import Tuple

import numpy as np
from mindspore import Parameter, nn, ops
from mindspore.common.initializer import Normal

from .weight_init import init_tensor, torch_default_bias, torch_default_weight

__all__ = ["conv2d", "Conv2d"]


def _pair(value, what: str) -> Tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, (int, np.integer)) for v in value):
        return int(value[0]), int(value[1])
    raise ValueError(f"conv2d: {what}={value!r}; expected an int or a pair of ints")


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """PyTorch ``F.conv2d`` semantics: NCHW input, (out, in/groups, kh, kw) weight, symmetric integer padding
    (an int or (pad_h, pad_w))."""
    y = ops.conv2d(x, weight, None, _pair(stride, "stride"), "pad", _pair(padding, "padding"),
                   _pair(dilation, "dilation"), groups)
    if bias is not None:
        y = ops.bias_add(y, bias)
    return y


class Conv2d(nn.Cell):
    """``nn.Conv2d`` with PyTorch's layout, defaults (``bias=True``) and initialisation.

    Parameters ``weight`` (out, in/groups, kh, kw) and ``bias`` (out) when ``bias=True``.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True):
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: in_channels={in_channels} and out_channels={out_channels} must be divisible "
                             f"by groups={groups}")
        kh, kw = _pair(kernel_size, "kernel_size")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, (kh, kw)
        self.stride, self.padding = _pair(stride, "stride"), _pair(padding, "padding")
        self.dilation, self.groups = _pair(dilation, "dilation"), groups
        self.weight = Parameter(torch_default_weight((out_channels, in_channels // groups, kh, kw)), name="weight")
        fan_in = in_channels // groups * kh * kw
        self.bias = Parameter(torch_default_bias(out_channels, fan_in), name="bias") if bias else None

    def construct(self, x):
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extend_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, "
                f"bias={self.bias is not None}")


def random_init_convs(model) -> None:
    """Upstream FastReID's backbone ``random_init``: every ``Conv2d`` weight of ``model`` ~ N(0, sqrt(2 / (kh * kw *
    out_channels))); norms keep 1 / 0."""
    for _, cell in model.cells_and_names():
        if isinstance(cell, Conv2d):
            n = cell.kernel_size[0] * cell.kernel_size[1] * cell.out_channels
            cell.weight.set_data(init_tensor(Normal(sigma=math.sqrt(2.0 / n)), cell.weight.shape))
