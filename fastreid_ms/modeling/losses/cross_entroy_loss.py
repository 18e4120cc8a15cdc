"""Label-smoothed cross entropy and the accuracy helper (FastReID ``losses/cross_entroy_loss.py``, upstream
spelling kept)."""
from typing import List, Sequence

import numpy as np
from mindspore import Tensor, ops

from .utils import label_array, log_softmax

__all__ = ["cross_entropy_loss", "log_accuracy"]


def _check_class_labels(labels: np.ndarray, num_classes: int, name: str) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)]
        raise ValueError(f"{name} must lie in [0, {num_classes}) for {num_classes} classes, got {bad.tolist()}")


def cross_entropy_loss(pred_class_outputs: Tensor, gt_classes, eps: float, alpha: float = 0.2) -> Tensor:
    """Cross entropy with label smoothing, exactly as FastReID computes it.

    Targets are ``1 - eps`` on the true class and ``eps / (C - 1)`` on every other class; per-sample losses
    ``-sum(t * log_softmax)`` are summed and divided by the number of NON-ZERO per-sample losses (at least 1), not
    by the batch size (REFERENCE.md section 9, item 19). ``eps < 0`` switches to adaptive smoothing: the smoothing of
    row ``i`` is ``alpha * softmax(pred)[i, y_i]``, taken without gradient like the reference's ``torch.no_grad``.

    Args:
        pred_class_outputs: logits (N, C).
        gt_classes: integer labels (N,) in ``[0, C)``.
        eps: smoothing (0 = plain cross entropy, < 0 = adaptive).
        alpha: factor of the adaptive smoothing (only used when ``eps < 0``).
    """
    labels = label_array(gt_classes, "gt_classes")
    if pred_class_outputs.ndim != 2 or pred_class_outputs.shape[0] != labels.shape[0]:
        raise ValueError(f"cross_entropy_loss expects logits of shape (N, C) matching {labels.shape[0]} labels, "
                         f"got {tuple(pred_class_outputs.shape)}")
    num_classes = pred_class_outputs.shape[1]
    if num_classes < 2:
        raise ValueError(f"cross_entropy_loss needs at least 2 classes (smoothing divides by C - 1), got C={num_classes}")
    _check_class_labels(labels, num_classes, "gt_classes")
    dtype = pred_class_outputs.dtype
    is_target = np.eye(num_classes, dtype=bool)[labels]

    log_probs = log_softmax(pred_class_outputs, axis=1)
    if eps >= 0:
        targets = Tensor(np.where(is_target, np.float32(1 - eps), np.float32(eps / (num_classes - 1))), dtype)
    else:
        soft_label = ops.stop_gradient(ops.softmax(pred_class_outputs, axis=1))
        target_mask = Tensor(is_target, dtype)
        smooth_param = alpha * (soft_label * target_mask).sum(1, keepdims=True)
        targets = ops.where(Tensor(is_target), 1 - smooth_param, smooth_param / (num_classes - 1))
        targets = ops.stop_gradient(targets)

    loss = (-targets * log_probs).sum(1)
    non_zero_cnt = ops.stop_gradient(ops.clamp((loss != 0).astype(dtype).sum(), min=1.0))
    return loss.sum() / non_zero_cnt


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
