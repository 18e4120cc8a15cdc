"""Weight initialisation: PyTorch's layer defaults and FastReID's ``weights_init_kaiming`` /
``weights_init_classifier`` (use them as ``cell.apply(weights_init_kaiming)``, like ``module.apply`` upstream).

Random draws use MindSpore's initializers, seeded by ``mindspore.set_seed``.
"""
import math

import numpy as np
from mindspore import Tensor
from mindspore import dtype as mstype
from mindspore.common.initializer import Normal, Uniform, initializer

__all__ = [
    "constant_tensor",
    "init_tensor",
    "torch_default_weight",
    "torch_default_bias",
    "weights_init_kaiming",
    "weights_init_classifier",
]


def constant_tensor(value, size) -> Tensor:
    """A float32 Tensor of shape ``size`` (int or tuple) filled with ``value``."""
    return Tensor(np.full(size, value, dtype=np.float32))


def _fans(shape):
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def init_tensor(init, shape) -> Tensor:
    """``initializer(init, shape, float32)`` as a Tensor; an empty Tensor when a dimension is 0 (e.g. a classifier
    built with NUM_CLASSES 0 for evaluation), which MindSpore's initializer rejects."""
    shape = tuple(int(d) for d in shape)
    if 0 in shape:
        return Tensor(np.zeros(shape, dtype=np.float32))
    return initializer(init, shape, mstype.float32).init_data()


def torch_default_weight(shape) -> Tensor:
    """PyTorch's default ``nn.Linear`` / ``nn.Conv2d`` weight: ``kaiming_uniform_(a=sqrt(5))``, i.e.
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with fan_in = prod(shape[1:])."""
    fan_in, _ = _fans(tuple(shape))
    return init_tensor(Uniform(scale=1.0 / math.sqrt(fan_in)) if fan_in > 0 else "zeros", shape)


def torch_default_bias(size, fan_in) -> Tensor:
    """PyTorch's default bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return init_tensor(Uniform(scale=1.0 / math.sqrt(fan_in)) if fan_in > 0 else "zeros", (size,))


def _set(param, tensor):
    param.set_data(tensor.astype(param.dtype))


def _class_name(cell) -> str:
    return type(cell).__name__


def _is_linear(cell) -> bool:
    name = _class_name(cell)
    return ("Linear" in name or "Dense" in name) and hasattr(cell, "weight")


def weights_init_kaiming(cell) -> None:
    """Linear/Dense: weight N(0, 0.01), bias 0; Conv: ``kaiming_normal_(mode='fan_out')`` (std sqrt(2 / fan_out)),
    bias 0; BatchNorm (class name contains "BatchNorm" or "BNNorm", affine): weight 1, bias 0. Other cells are left
    alone (matching is by class name, as upstream)."""
    name = _class_name(cell)
    bias = getattr(cell, "bias", None)
    if _is_linear(cell):
        _set(cell.weight, init_tensor(Normal(sigma=0.01), cell.weight.shape))
        if bias is not None:
            _set(bias, constant_tensor(0.0, bias.shape))
    elif "Conv" in name and hasattr(cell, "weight"):
        _, fan_out = _fans(tuple(cell.weight.shape))
        _set(cell.weight, init_tensor(Normal(sigma=math.sqrt(2.0 / fan_out)), cell.weight.shape))
        if bias is not None:
            _set(bias, constant_tensor(0.0, bias.shape))
    elif ("BatchNorm" in name or "BNNorm" in name) and getattr(cell, "affine", True) and hasattr(cell, "weight"):
        _set(cell.weight, constant_tensor(1.0, cell.weight.shape))
        _set(bias, constant_tensor(0.0, bias.shape))


def weights_init_classifier(cell) -> None:
    """Linear/Dense: weight N(0, 0.001), bias 0."""
    if _is_linear(cell):
        _set(cell.weight, init_tensor(Normal(sigma=0.001), cell.weight.shape))
        bias = getattr(cell, "bias", None)
        if bias is not None:
            _set(bias, constant_tensor(0.0, bias.shape))

