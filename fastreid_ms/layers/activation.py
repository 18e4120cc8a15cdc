"""FastReID's extra activations."""
import math

from mindspore import nn, ops

__all__ = ["Mish", "Swish", "GELU"]


class Mish(nn.Cell):
    """``x * tanh(softplus(x))``."""

    def construct(self, x):
        return x * ops.tanh(ops.softplus(x))


class Swish(nn.Cell):
    """``x * sigmoid(x)``."""

    def construct(self, x):
        return x * ops.sigmoid(x)


class GELU(nn.Cell):
    """The tanh approximation ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`` (FastReID's GELU)."""

    def construct(self, x):
        return 0.5 * x * (1 + ops.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * ops.pow(x, 3))))
