"""Focal loss (FastReID ``losses/focal_loss.py``, after kornia). Implemented and configurable through
``MODEL.LOSSES.FL``; FastReID's Baseline never calls it."""
import numpy as np
from mindspore import Tensor, ops

__all__ = ["focal_loss"]


def focal_loss(input: Tensor, target, alpha: float, gamma: float = 2.0, reduction: str = "mean") -> Tensor:
    """``sum_c onehot(target) * (-alpha (1 - p)^gamma log p)`` with ``p = softmax(input, axis=1)``, reduced by
    ``reduction`` ('none' | 'mean' | 'sum'). ``input`` is (N, C, *), ``target`` (N, *) integers in ``[0, C)``."""
    if not isinstance(input, Tensor):
        raise TypeError(f"focal_loss input must be a mindspore Tensor, got {type(input).__name__}")
    if input.ndim < 2:
        raise ValueError(f"focal_loss expects input of shape (N, C, *), got {tuple(input.shape)}")
    labels = target.asnumpy() if isinstance(target, Tensor) else np.asarray(target)
    if labels.shape[0] != input.shape[0]:
        raise ValueError(f"focal_loss: input batch size {input.shape[0]} != target batch size {labels.shape[0]}")
    if tuple(labels.shape[1:]) != tuple(input.shape[2:]):
        raise ValueError(f"focal_loss: expected target of shape {(input.shape[0],) + tuple(input.shape[2:])}, "
                         f"got {labels.shape}")
    num_classes = input.shape[1]
    if not np.issubdtype(labels.dtype, np.integer) or (labels.size and (labels.min() < 0 or labels.max() >= num_classes)):
        raise ValueError(f"focal_loss target must hold integers in [0, {num_classes}), got {labels.dtype} "
                         f"in [{labels.min() if labels.size else ''}, {labels.max() if labels.size else ''}]")
    one_hot = np.moveaxis(np.eye(num_classes, dtype=np.float32)[labels], -1, 1)
    input_soft = ops.softmax(input, axis=1)
    weight = ops.pow(-input_soft + 1.0, gamma)
    focal = -alpha * weight * ops.log(input_soft)
    loss_tmp = ops.sum(Tensor(one_hot, input.dtype) * focal, 1)
    if reduction == "none":
        return loss_tmp
    if reduction == "mean":
        return loss_tmp.mean()
    if reduction == "sum":
        return loss_tmp.sum()
    raise ValueError(f"focal_loss reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
