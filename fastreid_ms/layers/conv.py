"""Functional 2-D convolution used by every convolution of fastreid_ms models."""
from mindspore import ops


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """PyTorch ``F.conv2d`` semantics (NCHW input, (out, in/groups, kh, kw) weight, symmetric integer padding)."""
    y = ops.conv2d(x, weight, None, stride, "pad", padding, dilation, groups)
    if bias is not None:
        y = y + bias.reshape(1, -1, 1, 1)
    return y
