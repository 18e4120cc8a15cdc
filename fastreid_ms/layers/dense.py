"""Fully connected layer with PyTorch's ``nn.Linear`` layout, defaults and initialisation."""
from mindspore import nn

from .weight_init import torch_default_bias, torch_default_weight

__all__ = ["Dense"]


class Dense(nn.Dense):
    """``x @ weight.T (+ bias)``: Parameters ``weight`` (out, in) and, with ``bias=True`` (PyTorch's default),
    ``bias`` (out), initialised as PyTorch's ``nn.Linear`` (``kaiming_uniform_(a=sqrt(5))``)."""

    def __init__(self, in_features, out_features, bias=True):
        bias_init = torch_default_bias(out_features, in_features) if bias else "zeros"
        super().__init__(in_features, out_features, weight_init=torch_default_weight((out_features, in_features)),
                         bias_init=bias_init, has_bias=bias)
