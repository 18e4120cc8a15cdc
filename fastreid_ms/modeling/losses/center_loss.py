"""Center loss on a precomputed sample-to-centre distance matrix (ACL-DGReID ``losses/center_loss.py``)."""
import numpy as np
from mindspore import Tensor, ops

from .utils import check_class_labels, label_tensor

__all__ = ["centerLoss", "check_center_labels"]


def check_center_labels(labels, num_classes: int) -> np.ndarray:
    """Host-side check for :func:`centerLoss`: every label in ``[0, num_classes)`` (the columns of ``distmat``,
    C1+C2+C3 in ACL-DGReID); ``ValueError`` naming the offending rows and labels otherwise. Inside the loss an
    out-of-range label selects no column (its row then contributes only the clamped 1e-12 entries)."""
    return check_class_labels(labels, num_classes, "centerLoss labels")


def centerLoss(distmat: Tensor, labels, *, clamp_masked_entries: bool = True) -> Tensor:
    """``(distmat * onehot(labels)).clamp(1e-12, 1e12).sum() / N``.

    Reference quirk, kept by default: the clamp runs on the masked matrix, so every
    non-target entry (0 after masking) becomes 1e-12 and adds ``(C - 1) * 1e-12`` per row. With
    ``clamp_masked_entries=False`` only the target entries are clamped and summed. ``distmat`` is (N, C) (the
    ``center_distmat`` of MetaEmbeddingHead), ``labels`` (N,) in ``[0, C)`` (Tensor; numpy accepted in PyNative;
    validate the range on the host with :func:`check_center_labels`). Graph-compilable.
    """
    y = label_tensor(labels, "labels")
    if distmat.ndim != 2 or distmat.shape[0] != y.shape[0]:
        raise ValueError(f"centerLoss expects a distance matrix of shape (N, C) matching {y.shape[0]} labels, "
                         f"got {distmat.shape}")
    batch_size, num_classes = distmat.shape
    mask = (y.reshape(-1, 1) == ops.arange(num_classes, dtype=y.dtype).reshape(1, -1)).astype(distmat.dtype)
    dist = ops.clamp(distmat * mask, 1e-12, 1e12)
    if not clamp_masked_entries:
        dist = dist * mask
    return dist.sum() / batch_size
