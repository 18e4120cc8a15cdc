"""Loading PyTorch-named state dicts into fastreid_ms models.

fastreid_ms names every parameter and running statistic exactly as PyTorch's ``state_dict()`` does
(``layer1.0.bn1.IN.weight``, ``bn1.running_mean``, ``heads.bottleneck.0.weight`` ...), so a PyTorch state dict maps
one to one onto ``model.parameters_and_names()``; only ``num_batches_tracked`` (unused: the BN momentum is fixed) and
a DataParallel ``module.`` prefix are dropped.
"""
from typing import Dict, List, Mapping, NamedTuple

import numpy as np

from .params import assign_values

__all__ = ["IncompatibleKeys", "load_torch_state_dict", "strip_prefix"]


class IncompatibleKeys(NamedTuple):
    missing_keys: List[str]
    unexpected_keys: List[str]
    shape_mismatch_keys: List[str]


def strip_prefix(state_dict: Mapping[str, np.ndarray], prefix: str = "module.") -> Dict[str, np.ndarray]:
    """``state_dict`` without ``prefix`` when every key has it (a DataParallel-wrapped model's state)."""
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def load_torch_state_dict(model, state_dict: Mapping[str, np.ndarray], *, skip_shape_mismatch: bool = False,
                          source: str = "state_dict") -> IncompatibleKeys:
    """Copy a PyTorch-named ``state_dict`` (name -> numpy array) into ``model``'s parameters and buffers.

    Returns the model names absent from ``state_dict`` (missing), the ``state_dict`` names the model does not have
    (unexpected; ``num_batches_tracked`` entries are ignored), and, with ``skip_shape_mismatch``, the names skipped
    because their shapes differ. Without ``skip_shape_mismatch`` a shape mismatch raises ``ValueError`` naming the
    key and both shapes, and nothing is loaded.
    """
    state = {k: v for k, v in strip_prefix(state_dict).items() if not k.endswith("num_batches_tracked")}
    params = dict(model.parameters_and_names())
    missing, mismatched, to_load = [], [], []
    for name, param in params.items():
        if name not in state:
            missing.append(name)
            continue
        value = np.asarray(state[name])
        if tuple(value.shape) != tuple(param.shape):
            if not skip_shape_mismatch:
                raise ValueError(f"{source}: shape mismatch for {name!r}: checkpoint has {tuple(value.shape)}, "
                                 f"the model expects {tuple(param.shape)}")
            mismatched.append(name)
            continue
        to_load.append((param, value))
    assign_values([param for param, _ in to_load], [value for _, value in to_load])
    unexpected = [k for k in state if k not in params]
    return IncompatibleKeys(missing, unexpected, mismatched)
