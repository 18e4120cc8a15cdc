"""Focal loss (FastReID ``losses/focal_loss.py``, after kornia). Implemented and configurable through
``MODEL.LOSSES.FL``; FastReID's Baseline never calls it."""
import numpy as np
from mindspore import Tensor, ops

from .utils import check_class_labels, label_tensor

__all__ = ["focal_loss", "check_focal_targets"]


def check_focal_targets(target, num_classes: int) -> np.ndarray:
    """Host-side check for :func:`focal_loss`: integer targets in ``[0, num_classes)`` (``ValueError`` naming the
    offending flat positions and values otherwise)."""
    return check_class_labels(target, num_classes, "focal_loss target")


def focal_loss(input: Tensor, target, alpha: float, gamma: float = 2.0, reduction: str = "mean") -> Tensor:
    """``sum_c onehot(target) * (-alpha (1 - p)^gamma log p)`` with ``p = softmax(input, axis=1)``, reduced by
    ``reduction`` ('none' | 'mean' | 'sum'). ``input`` is (N, C, *), ``target`` (N, *) integers in ``[0, C)``
    (Tensor; numpy accepted in PyNative; validate the range on the host with :func:`check_focal_targets`).
    Graph-compilable."""
    if not isinstance(input, Tensor):
        raise TypeError(f"focal_loss input must be a mindspore Tensor, got {type(input).__name__}")
    if input.ndim < 2:
        raise ValueError(f"focal_loss expects input of shape (N, C, *), got {input.shape}")
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"focal_loss reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    labels = label_tensor(target, "focal_loss target", input.ndim - 1)
    if labels.shape[0] != input.shape[0]:
        raise ValueError(f"focal_loss: input batch size {input.shape[0]} != target batch size {labels.shape[0]}")
    if tuple(labels.shape[1:]) != tuple(input.shape[2:]):
        raise ValueError(f"focal_loss: expected target of shape {(input.shape[0],) + tuple(input.shape[2:])}, "
                         f"got {labels.shape}")
    num_classes = input.shape[1]
    classes = ops.arange(num_classes, dtype=labels.dtype).reshape((1, num_classes) + (1,) * (input.ndim - 2))
    one_hot = (ops.expand_dims(labels, 1) == classes).astype(input.dtype)
    input_soft = ops.softmax(input, axis=1)
    weight = ops.pow(-input_soft + 1.0, gamma)
    focal = -alpha * weight * ops.log(input_soft)
    loss_tmp = ops.sum(one_hot * focal, 1)
    if reduction == "none":
        return loss_tmp
    if reduction == "mean":
        return loss_tmp.mean()
    return loss_tmp.sum()
