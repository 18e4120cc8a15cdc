"""Label-smoothed cross entropy and the accuracy helper (FastReID ``losses/cross_entroy_loss.py``, upstream
spelling kept)."""
from typing import List, Optional, Sequence

import numpy as np
from mindspore import Tensor, ops

from .utils import check_class_labels, label_array, label_tensor, log_softmax, safe_count

__all__ = ["cross_entropy_loss", "cross_entropy_per_sample", "masked_cross_entropy_loss", "check_cross_entropy_labels",
           "log_accuracy"]


def check_cross_entropy_labels(gt_classes, num_classes: int, name: str = "gt_classes") -> np.ndarray:
    """Host-side check for :func:`cross_entropy_loss`: every label in ``[0, num_classes)`` (``ValueError`` naming the
    offending rows and labels otherwise). Inside the loss an out-of-range label simply matches no class."""
    return check_class_labels(gt_classes, num_classes, name)


def cross_entropy_per_sample(pred_class_outputs: Tensor, gt_classes, eps: float, alpha: float = 0.2) -> Tensor:
    """Per-sample label-smoothed cross entropy ``-sum_c t_ic log_softmax(pred)_ic``, shape (N,); see
    :func:`cross_entropy_loss` for the targets. Graph-compilable (labels as a Tensor, masks by tensor ops)."""
    labels = label_tensor(gt_classes, "gt_classes")
    if pred_class_outputs.ndim != 2 or pred_class_outputs.shape[0] != labels.shape[0]:
        raise ValueError(f"cross_entropy_loss expects logits of shape (N, C) matching {labels.shape[0]} labels, "
                         f"got {pred_class_outputs.shape}")
    num_classes = pred_class_outputs.shape[1]
    if num_classes < 2:
        raise ValueError(f"cross_entropy_loss needs at least 2 classes (smoothing divides by C - 1), got C={num_classes}")
    dtype = pred_class_outputs.dtype
    is_target = labels.reshape(-1, 1) == ops.arange(num_classes, dtype=labels.dtype).reshape(1, -1)

    log_probs = log_softmax(pred_class_outputs, axis=1)
    if eps >= 0:
        targets = ops.where(is_target, ops.full_like(log_probs, 1 - eps),
                            ops.full_like(log_probs, eps / (num_classes - 1)))
    else:
        soft_label = ops.stop_gradient(ops.softmax(pred_class_outputs, axis=1))
        smooth_param = alpha * (soft_label * is_target.astype(dtype)).sum(1, keepdims=True)
        targets = ops.where(is_target, 1 - smooth_param, smooth_param / (num_classes - 1))
        targets = ops.stop_gradient(targets)
    return (-targets * log_probs).sum(1)


def masked_cross_entropy_loss(pred_class_outputs: Tensor, gt_classes, row_mask: Optional[Tensor], eps: float,
                              alpha: float = 0.2) -> Tensor:
    """:func:`cross_entropy_loss` restricted to the rows where ``row_mask`` (bool (N,)) is True, with static shapes:
    the per-sample losses of the other rows are replaced by 0 (no gradient reaches them) and the normaliser counts
    the non-zero per-sample losses of the selected rows only (at least 1), as the reference does on the gathered
    rows. Every row must carry a label in ``[0, C)`` (clip the labels of unselected rows). ``row_mask=None``: all
    rows."""
    loss = cross_entropy_per_sample(pred_class_outputs, gt_classes, eps, alpha)
    dtype = pred_class_outputs.dtype
    non_zero = loss != 0
    if row_mask is not None:
        loss = ops.where(row_mask, loss, ops.zeros_like(loss))
        non_zero = ops.logical_and(non_zero, row_mask)
    non_zero_cnt = ops.stop_gradient(safe_count(non_zero.astype(dtype).sum()))
    return loss.sum() / non_zero_cnt


def cross_entropy_loss(pred_class_outputs: Tensor, gt_classes, eps: float, alpha: float = 0.2) -> Tensor:
    """Cross entropy with label smoothing, exactly as FastReID computes it.

    Targets are ``1 - eps`` on the true class and ``eps / (C - 1)`` on every other class; per-sample losses
    ``-sum(t * log_softmax)`` are summed and divided by the number of NON-ZERO per-sample losses (at least 1), not
    by the batch size. ``eps < 0`` switches to adaptive smoothing: the smoothing of
    row ``i`` is ``alpha * softmax(pred)[i, y_i]``, taken without gradient like the reference's ``torch.no_grad``.

    Graph-compilable. Labels outside ``[0, C)`` are not detected here (they match no class); validate them on the
    host with :func:`check_cross_entropy_labels`.

    Args:
        pred_class_outputs: logits (N, C).
        gt_classes: integer labels (N,) in ``[0, C)`` (Tensor; numpy accepted in PyNative).
        eps: smoothing (0 = plain cross entropy, < 0 = adaptive).
        alpha: factor of the adaptive smoothing (only used when ``eps < 0``).
    """
    return masked_cross_entropy_loss(pred_class_outputs, gt_classes, None, eps, alpha)


def log_accuracy(pred_class_logits: Tensor, gt_classes, topk: Sequence[int] = (1,)) -> List[float]:
    """Top-k accuracies (fractions of the batch) of ``pred_class_logits`` against ``gt_classes``, for logging only.

    FastReID's ``log_accuracy`` writes the top-1 value to the event storage as ``cls_accuracy``; here the values are
    returned (top-1 first when ``topk=(1,)``) and the caller logs them. Labels are compared as given: a label outside
    ``[0, C)`` simply never matches (the reference's per-domain accuracy quirk, see ``composition.acl_cls_accuracy``).
    """
    labels = label_array(gt_classes, "gt_classes")
    logits = pred_class_logits.asnumpy() if isinstance(pred_class_logits, Tensor) else np.asarray(pred_class_logits)
    if logits.ndim != 2 or logits.shape[0] != labels.shape[0]:
        raise ValueError(f"log_accuracy expects logits of shape (N, C) matching {labels.shape[0]} labels, "
                         f"got {logits.shape}")
    bsz = max(logits.shape[0], 1)
    order = np.argsort(-logits, axis=1, kind="stable")
    return [float((order[:, :k] == labels[:, None]).any(axis=1).sum()) / bsz for k in topk]
