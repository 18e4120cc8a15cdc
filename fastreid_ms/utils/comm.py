"""Process-group helpers over ``mindspore.communication``; rank 0 of world size 1 when it is not initialised."""
import numpy as np


def _inited() -> bool:
    try:
        from mindspore.communication import GlobalComm
    except ImportError:
        return False
    return bool(GlobalComm.INITED)


def get_world_size() -> int:
    if not _inited():
        return 1
    from mindspore.communication import get_group_size

    return get_group_size()


def get_rank() -> int:
    if not _inited():
        return 0
    from mindspore.communication import get_rank as _get_rank

    return _get_rank()


def get_local_rank() -> int:
    if not _inited():
        return 0
    from mindspore.communication import get_local_rank as _get_local_rank

    return _get_local_rank()


def is_main_process() -> bool:
    return get_rank() == 0


def synchronize() -> None:
    """Barrier across all processes (no-op for a single process)."""
    if get_world_size() == 1:
        return
    import mindspore
    from mindspore import ops

    ops.AllReduce()(mindspore.Tensor(np.zeros(1, np.float32))).asnumpy()


def all_reduce_sum(array: np.ndarray) -> np.ndarray:
    """Sum a numpy array over all processes."""
    if get_world_size() == 1:
        return np.asarray(array)
    import mindspore
    from mindspore import ops

    return ops.AllReduce()(mindspore.Tensor(np.asarray(array))).asnumpy()


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
    from .params import assign_values

    offset, values = 0, []
    for array in arrays:
        values.append(flat[offset:offset + array.size].reshape(array.shape).astype(array.dtype))
        offset += array.size
    assign_values(params, values)
