"""Writing values into existing Parameters from the host, in place.

MindSpore 2.10 gives a compiled graph (``mindspore.jit``) its own reference to a Parameter's device memory when it
first runs: a later ``Parameter.set_data`` (or ``mindspore.load_param_into_net``, which uses it) replaces the host
tensor and the graph keeps computing with the old values, while an in-place ``ops.assign`` is seen by every graph.
Loading checkpoints, broadcasting weights between processes and restoring optimizer state therefore go through
:func:`assign_values`, which is correct whether or not a graph has run.
"""
from typing import Sequence

import numpy as np
from mindspore import Tensor, ops

__all__ = ["assign_values"]


def assign_values(params: Sequence, values: Sequence) -> None:
    """``params[i][...] = values[i]`` in place (``ops.assign``); ``values`` are numpy arrays or Tensors of the
    Parameters' shapes (cast to their dtypes)."""
    if len(params) != len(values):
        raise ValueError(f"assign_values: {len(params)} Parameters but {len(values)} values")
    for param, value in zip(params, values):
        if not isinstance(value, Tensor):
            value = Tensor(np.asarray(value))
        if tuple(value.shape) != tuple(param.shape):
            raise ValueError(f"assign_values: value of shape {tuple(value.shape)} for Parameter {param.name!r} of "
                             f"shape {tuple(param.shape)}")
        if value.dtype != param.dtype:
            value = value.astype(param.dtype)
        ops.assign(param, value)
