"""Distance and normalisation helpers shared by the loss functions (FastReID ``modeling/losses/utils.py``).

Two normalisations exist on purpose, because the reference uses both and they differ for tiny vectors:

* :func:`normalize` is the reference's ``losses/utils.normalize``: ``x / (||x|| + 1e-12)`` (eps *added* to the norm);
  used by ``triplet_loss_Meta(norm_feat=True)`` and ``domain_SCT_loss(norm_feat=True)``.
* :func:`~fastreid_ms.layers.helpers.l2_normalize` (shared with the layers) is ``torch.nn.functional.normalize``:
  ``x / max(||x||, 1e-12)`` (eps *clamps* the norm); used by ``cosine_dist``, the cluster losses and the pairwise
  circle/cosface losses. ``mindspore.ops.L2Normalize`` is not a substitute (its epsilon 1e-4 acts on the squared
  norm).

Graph-mode contract: every loss takes its integer labels as MindSpore Tensors (:func:`label_tensor`; a numpy array is
converted in PyNative) and builds its masks with tensor ops, so the losses compile under ``mindspore.jit`` with static
shapes. Masks derived from labels carry no gradient, like PyTorch's ``.eq()`` masks. Data-dependent input validation
(labels out of range, anchors without positives, ...) lives in host-side ``check_*`` functions on numpy arrays
(:func:`check_class_labels` here, the others next to their loss, and the batch-level entry points
``composition.check_acl_batch`` / ``check_reid_batch``). :func:`label_array` reads labels into numpy for such
host-side code (checks, accuracy logging); it must not be used inside a loss.
"""
from typing import Any

import numpy as np
import mindspore as ms
from mindspore import Tensor, ops

from fastreid_ms.layers.helpers import l2_norm, l2_normalize

__all__ = ["label_array", "label_tensor", "check_class_labels", "normalize", "l2_normalize", "euclidean_dist",
           "cosine_dist", "cosine_sim", "same_label_mask", "log_softmax", "l2_norm", "safe_count"]

# Integer dtypes accepted for labels (a static check: dtypes are compile-time constants in graph mode).
INT_DTYPES = (ms.int8, ms.int16, ms.int32, ms.int64, ms.uint8, ms.uint16, ms.uint32, ms.uint64)


def label_array(labels: Any, name: str = "labels") -> np.ndarray:
    """Integer labels (MindSpore Tensor, numpy array or sequence) as a 1-D int64 numpy array.

    Raises ``ValueError`` naming ``name`` when the labels are not a 1-D array of integers."""
    if isinstance(labels, Tensor):
        labels = labels.asnumpy()
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of integer labels, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def label_tensor(labels: Any, name: str = "labels", ndim: int = 1) -> Tensor:
    """Integer labels as a MindSpore Tensor, for use inside a loss (PyNative or ``mindspore.jit``).

    A Tensor is returned unchanged; anything else (numpy array, sequence; PyNative only) is converted with
    ``Tensor(np.asarray(labels))``. Raises ``ValueError`` naming ``name`` when the rank is not ``ndim`` or the dtype
    is not an integer type (both static properties, so the check also runs at graph compile time). The VALUES are
    not checked here: see :func:`check_class_labels` and the other host-side ``check_*`` functions."""
    if not isinstance(labels, Tensor):
        labels = Tensor(np.asarray(labels))
    if labels.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array of integer labels, got shape {labels.shape}")
    if labels.dtype not in INT_DTYPES:
        raise ValueError(f"{name} must hold integers, got dtype {labels.dtype}")
    return labels


def check_class_labels(labels: Any, num_classes: int, name: str = "labels") -> np.ndarray:
    """Host-side check that every integer label lies in ``[0, num_classes)``; returns the labels as int64 numpy.

    Raises ``ValueError`` naming ``name``, the offending rows and their labels. Labels of any rank are accepted
    (focal loss takes (N, *) targets); the rows are then flat indices."""
    if isinstance(labels, Tensor):
        labels = labels.asnumpy()
    arr = np.asarray(labels)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = np.flatnonzero((arr < 0) | (arr >= num_classes))
    if bad.size:
        flat = arr.reshape(-1)
        raise ValueError(f"{name} must lie in [0, {num_classes}) for {num_classes} classes, got {flat[bad].tolist()} "
                         f"at row(s) {bad.tolist()}")
    return arr


def same_label_mask(labels):
    """``mask[i, j] = labels[i] == labels[j]`` (bool, diagonal included), for 1-D Tensor or numpy labels."""
    return labels.reshape(-1, 1) == labels.reshape(1, -1)


def safe_count(count: Tensor) -> Tensor:
    """``max(count, 1)``: the divisor of a masked mean, so that an empty mask gives 0 instead of 0/0."""
    return ops.clamp(count, min=1.0)


def normalize(x: Tensor, axis: int = -1) -> Tensor:
    """Reference ``losses/utils.normalize``: ``x / (||x||_2 + 1e-12)`` along ``axis``."""
    return 1.0 * x / (l2_norm(x, axis, keepdim=True) + 1e-12)


def euclidean_dist(x: Tensor, y: Tensor) -> Tensor:
    """Pairwise euclidean distances ``sqrt(clamp(||x_i||^2 + ||y_j||^2 - 2 x_i.y_j, min=1e-12))``, shape (m, n)."""
    xx = ops.square(x).sum(1, keepdims=True)
    yy = ops.square(y).sum(1, keepdims=True).T
    dist = xx + yy - 2 * ops.matmul(x, y.T)
    return ops.sqrt(ops.clamp(dist, min=1e-12))


def cosine_dist(x: Tensor, y: Tensor) -> Tensor:
    """Pairwise ``2 - 2 cos(x_i, y_j)`` with torch ``F.normalize`` semantics, shape (m, n)."""
    x = l2_normalize(x, axis=1)
    y = l2_normalize(y, axis=1)
    return 2 - 2 * ops.matmul(x, y.T)


def cosine_sim(x: Tensor, y: Tensor) -> Tensor:
    """Reference ``cosine_sim``: ``x_i.y_j / (||x_i|| ||y_j||)`` without any epsilon, shape (m, n)."""
    frac_up = ops.matmul(x, y.T)
    frac_down = ops.sqrt(ops.square(x).sum(1)).reshape(-1, 1) * ops.sqrt(ops.square(y).sum(1)).reshape(1, -1)
    return frac_up / frac_down


def log_softmax(x: Tensor, axis: int = 1) -> Tensor:
    """``log_softmax`` as ``z - log(sum(exp(z)))`` with ``z = x - max(x)`` (the max is a constant shift, so it is
    taken without gradient). Same values as ``ops.log_softmax``; its gradient is about 10x closer to float64 than
    the CPU ``LogSoftmaxGrad`` kernel of MindSpore 2.10 (3.7e-6 relative error on the cross-entropy fixture)."""
    z = x - ops.stop_gradient(x.max(axis=axis, keepdims=True))
    return z - ops.log(ops.exp(z).sum(axis, keepdims=True))
