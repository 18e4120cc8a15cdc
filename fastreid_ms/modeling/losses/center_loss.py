"""Center loss on a precomputed sample-to-centre distance matrix (ACL-DGReID ``losses/center_loss.py``)."""
import numpy as np
from mindspore import Tensor, ops

from .utils import label_array

__all__ = ["centerLoss"]


def centerLoss(distmat: Tensor, labels, *, clamp_masked_entries: bool = True) -> Tensor:
    """``(distmat * onehot(labels)).clamp(1e-12, 1e12).sum() / N``.

    Reference quirk (REFERENCE.md section 9, item 19), kept by default: the clamp runs on the masked matrix, so every
    non-target entry (0 after masking) becomes 1e-12 and adds ``(C - 1) * 1e-12`` per row. With
    ``clamp_masked_entries=False`` only the target entries are clamped and summed. ``distmat`` is (N, C) (the
    ``center_distmat`` of MetaEmbeddingHead), ``labels`` (N,) in ``[0, C)``.
    """
    y = label_array(labels, "labels")
    if distmat.ndim != 2 or distmat.shape[0] != y.shape[0]:
        raise ValueError(f"centerLoss expects a distance matrix of shape (N, C) matching {y.shape[0]} labels, "
                         f"got {tuple(distmat.shape)}")
    batch_size, num_classes = distmat.shape
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"centerLoss labels must lie in [0, {num_classes}) (columns of distmat), "
                         f"got {y[(y < 0) | (y >= num_classes)].tolist()}")
    mask = Tensor((y[:, None] == np.arange(num_classes)[None, :]).astype(np.float32), distmat.dtype)
    dist = ops.clamp(distmat * mask, 1e-12, 1e12)
    if not clamp_masked_entries:
        dist = dist * mask
    return dist.sum() / batch_size

