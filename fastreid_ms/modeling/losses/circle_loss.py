"""Pairwise circle loss (FastReID ``losses/circle_loss.py``: ``pairwise_circleloss``)."""
from mindspore import Tensor, ops

from .utils import l2_normalize, label_tensor, same_label_mask

__all__ = ["pairwise_circleloss", "pairwise_masks"]

# FastReID adds this to the logits of pairs outside a mask so that logsumexp ignores them.
MASKED_LOGIT = -99999999.0


def pairwise_masks(targets, n: int, dtype):
    """FastReID's float masks: ``is_pos`` = same id minus the diagonal, ``is_neg`` = other id (tensor ops, so
    graph-compilable; ``targets`` a Tensor, numpy accepted in PyNative)."""
    labels = label_tensor(targets, "targets")
    if labels.shape[0] != n:
        raise ValueError(f"expected {n} targets to match the embeddings, got {labels.shape[0]}")
    same = same_label_mask(labels)
    is_pos = same.astype(dtype) - ops.eye(n, n, dtype)
    return is_pos, ops.logical_not(same).astype(dtype)


def pairwise_circleloss(embedding: Tensor, targets, margin: float, gamma: float) -> Tensor:
    """Circle loss over all pairs of the batch (cosine similarities of ``F.normalize``-d embeddings):
    ``mean_i softplus(logsumexp_j(-gamma a_p (s_p - (1 - m))) + logsumexp_j(gamma a_n (s_n - m)))`` with
    ``a_p = clamp_min(1 + m - s_p, 0)``, ``a_n = clamp_min(s_n + m, 0)`` detached, and masked-out pairs pushed to
    ``-99999999`` before the logsumexp."""
    embedding = l2_normalize(embedding, axis=1)
    dist_mat = ops.matmul(embedding, embedding.T)
    is_pos, is_neg = pairwise_masks(targets, dist_mat.shape[0], dist_mat.dtype)
    s_p = dist_mat * is_pos
    s_n = dist_mat * is_neg
    alpha_p = ops.clamp(-ops.stop_gradient(s_p) + 1 + margin, min=0.0)
    alpha_n = ops.clamp(ops.stop_gradient(s_n) + margin, min=0.0)
    delta_p = 1 - margin
    delta_n = margin
    logit_p = -gamma * alpha_p * (s_p - delta_p) + MASKED_LOGIT * (1 - is_pos)
    logit_n = gamma * alpha_n * (s_n - delta_n) + MASKED_LOGIT * (1 - is_neg)
    return ops.softplus(ops.logsumexp(logit_p, 1) + ops.logsumexp(logit_n, 1)).mean()
