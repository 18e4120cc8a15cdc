"""Training state (nested dicts/lists/tuples of numbers, strings and arrays) as a JSON skeleton plus named arrays,
the form a MindSpore ``.ckpt`` can hold without pickle; and the RNG states as one checkpointable."""
import random
from typing import Any, Dict, Mapping

import mindspore
import numpy as np

__all__ = ["ARRAY_PREFIX", "RNGStates", "decode_state", "encode_state"]

ARRAY_PREFIX = "__state__/"


class RNGStates:
    """Python ``random``, numpy's global generator and MindSpore's default generator, as one checkpointable."""

    def state_dict(self) -> Dict[str, Any]:
        return {"python": random.getstate(), "numpy": np.random.get_state(),
                "mindspore": mindspore.get_rng_state().asnumpy()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        np.random.set_state(tuple(state["numpy"]))
        mindspore.set_rng_state(mindspore.Tensor(np.asarray(state["mindspore"], dtype=np.uint8)))


def encode_state(obj: Any, arrays: Dict[str, np.ndarray], path: str) -> Any:
    """JSON-able skeleton of ``obj``: arrays/Tensors go to ``arrays`` (under ``ARRAY_PREFIX<n>``, referenced by
    key), dict keys keep their types, tuples stay tuples. Zero-size arrays (MindSpore's checkpoint writer drops them)
    are stored inline. ``path`` names ``obj`` in the error for an unsupported type."""
    if obj is None or isinstance(obj, (bool, str, int, float)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "asnumpy"):
        obj = obj.asnumpy()
    if isinstance(obj, np.ndarray):
        if obj.size == 0:
            return {"__empty__": [list(obj.shape), obj.dtype.str]}
        key = f"{ARRAY_PREFIX}{len(arrays)}"
        arrays[key] = obj
        return {"__array__": key}
    if isinstance(obj, dict):
        return {"__map__": [[encode_state(k, arrays, path), encode_state(v, arrays, f"{path}.{k}")]
                            for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode_state(v, arrays, f"{path}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode_state(v, arrays, f"{path}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"checkpoint state {path}: cannot store a {type(obj).__name__} (allowed: numbers, strings, "
                    f"None, arrays/Tensors, and dicts/lists/tuples of them)")


def decode_state(obj: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    """Inverse of :func:`encode_state`."""
    if isinstance(obj, list):
        return [decode_state(v, arrays) for v in obj]
    if isinstance(obj, dict):
        if "__array__" in obj:
            return arrays[obj["__array__"]]
        if "__empty__" in obj:
            shape, dtype = obj["__empty__"]
            return np.zeros(tuple(shape), dtype=np.dtype(dtype))
        if "__tuple__" in obj:
            return tuple(decode_state(v, arrays) for v in obj["__tuple__"])
        if "__map__" in obj:
            return {_decode_key(decode_state(k, arrays)): decode_state(v, arrays) for k, v in obj["__map__"]}
        raise ValueError(f"unknown checkpoint state entry {sorted(obj)}")
    return obj


def _decode_key(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key
