"""Squeeze-and-excitation block (FastReID ``SELayer``)."""
from mindspore import nn

from .helpers import channel_scale, spatial_mean
from .weight_init import torch_default_weight

__all__ = ["SELayer"]


class SELayer(nn.Cell):
    """``x * sigmoid(fc2(relu(fc1(GAP(x)))))`` per sample and channel; ``fc`` = SequentialCell(Dense(C, int(C/r),
    no bias), ReLU, Dense(int(C/r), C, no bias), Sigmoid), so the Parameters are ``fc.0.weight`` and
    ``fc.2.weight`` as in PyTorch (default PyTorch Linear initialisation)."""

    def __init__(self, channel, reduction=16):
        super().__init__()
        hidden = int(channel / reduction)
        self.fc = nn.SequentialCell([
            nn.Dense(channel, hidden, weight_init=torch_default_weight((hidden, channel)), has_bias=False),
            nn.ReLU(),
            nn.Dense(hidden, channel, weight_init=torch_default_weight((channel, hidden)), has_bias=False),
            nn.Sigmoid(),
        ])

    def construct(self, x):
        return channel_scale(x, self.fc(spatial_mean(x)))
