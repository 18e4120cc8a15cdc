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
