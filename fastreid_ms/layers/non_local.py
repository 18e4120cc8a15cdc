"""Non-local block (FastReID ``Non_local``, embedded-Gaussian-free "dot product" form)."""
from mindspore import nn, ops

from .batch_norm import NormSequential, get_norm
from .conv import Conv2d

__all__ = ["Non_local"]


class Non_local(nn.Cell):
    """``z = W(y) + x`` with ``y = (theta(x)^T phi(x) / (H*W)) g(x)``: ``g``, ``theta``, ``phi`` are 1x1 convs
    (with bias) to ``in_channels // reduc_ratio`` channels; ``W`` = SequentialCell(1x1 conv back to ``in_channels``,
    ``get_norm(bn_norm, in_channels)``) whose norm starts at weight 0, bias 0, so the block starts as the identity.
    Parameter names match PyTorch (``g.weight``, ``W.0.weight``, ``W.1.running_mean``, ...)."""

    def __init__(self, in_channels, bn_norm, reduc_ratio=2):
        super().__init__()
        self.in_channels = in_channels
        self.inter_channels = in_channels // reduc_ratio
        self.g = Conv2d(self.in_channels, self.inter_channels, kernel_size=1, stride=1, padding=0)
        self.W = NormSequential([Conv2d(self.inter_channels, self.in_channels, kernel_size=1, stride=1, padding=0),
                                 get_norm(bn_norm, self.in_channels)])
        norm = self.W[1]
        norm.weight.set_data(ops.zeros_like(norm.weight.value()))
        norm.bias.set_data(ops.zeros_like(norm.bias.value()))
        self.theta = Conv2d(self.in_channels, self.inter_channels, kernel_size=1, stride=1, padding=0)
        self.phi = Conv2d(self.in_channels, self.inter_channels, kernel_size=1, stride=1, padding=0)

    def construct(self, x, update_stats=True):
        n, _, h, w = x.shape
        g_x = self.g(x).reshape(n, self.inter_channels, -1).swapaxes(1, 2)          # (N, HW, C')
        theta_x = self.theta(x).reshape(n, self.inter_channels, -1).swapaxes(1, 2)  # (N, HW, C')
        phi_x = self.phi(x).reshape(n, self.inter_channels, -1)                     # (N, C', HW)
        f = ops.matmul(theta_x, phi_x)
        f_div_c = f / f.shape[-1]
        y = ops.matmul(f_div_c, g_x).swapaxes(1, 2).reshape(n, self.inter_channels, h, w)
        return self.W(y, update_stats) + x
