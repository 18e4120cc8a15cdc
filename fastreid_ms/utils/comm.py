"""Process-group helpers over ``mindspore.communication``; rank 0 of world size 1 when it is not initialised.

Each collective is one call whatever the number of values (the arrays are flattened into one buffer first)."""
import numpy as np
from mindspore import Tensor, ops
from mindspore import communication

from .params import assign_values


def _inited() -> bool:
    return bool(communication.GlobalComm.INITED)


def get_world_size() -> int:
    return communication.get_group_size() if _inited() else 1


def get_rank() -> int:
    return communication.get_rank() if _inited() else 0


def get_local_rank() -> int:
    return communication.get_local_rank() if _inited() else 0


def is_main_process() -> bool:
    return get_rank() == 0


def synchronize() -> None:
    """Barrier across all processes (no-op for a single process)."""
    if get_world_size() == 1:
        return
    ops.AllReduce()(Tensor(np.zeros(1, np.float32))).asnumpy()


def all_reduce_sum(array: np.ndarray) -> np.ndarray:
    """Sum a numpy array over all processes."""
    if get_world_size() == 1:
        return np.asarray(array)
    return ops.AllReduce()(Tensor(np.asarray(array))).asnumpy()


def broadcast_cell_state(cell) -> None:
    """Give every process rank 0's values of all of ``cell``'s Parameters (weights and BN running statistics), as
    PyTorch's DistributedDataParallel does when it wraps a model: each process seeds its RNG with ``SEED + rank``,
    so without this the replicas would start from different initialisations. One all-reduce of all values (rank 0
    contributes them, the others zeros), which reproduces rank 0's values exactly (x + 0 = x). No-op for one
    process."""
    if get_world_size() == 1:
        return
    params = [p for _, p in cell.parameters_and_names()]
    arrays = [p.asnumpy() for p in params]
    flat = np.concatenate([a.astype(np.float32).ravel() for a in arrays]) if arrays else np.zeros(0, np.float32)
    if get_rank() != 0:
        flat = np.zeros_like(flat)
    flat = all_reduce_sum(flat)
    offset, values = 0, []
    for array in arrays:
        values.append(flat[offset:offset + array.size].reshape(array.shape).astype(array.dtype))
        offset += array.size
    assign_values(params, values)
