"""Pairwise CosFace loss (FastReID ``losses/circle_loss.py``: ``pairwise_cosface``)."""
from mindspore import Tensor, ops

from .circle_loss import MASKED_LOGIT, pairwise_masks
from .utils import l2_normalize

__all__ = ["pairwise_cosface"]


def pairwise_cosface(embedding: Tensor, targets, margin: float, gamma: float) -> Tensor:
    """``mean_i softplus(logsumexp_j(-gamma s_p) + logsumexp_j(gamma (s_n + m)))`` over cosine similarities of
    ``F.normalize``-d embeddings, masked-out pairs pushed to ``-99999999`` before the logsumexp."""
    embedding = l2_normalize(embedding, axis=1)
    dist_mat = ops.matmul(embedding, embedding.T)
    is_pos, is_neg = pairwise_masks(targets, dist_mat.shape[0], dist_mat.dtype)
    s_p = dist_mat * is_pos
    s_n = dist_mat * is_neg
    logit_p = -gamma * s_p + MASKED_LOGIT * (1 - is_pos)
    logit_n = gamma * (s_n + margin) + MASKED_LOGIT * (1 - is_neg)
    return ops.softplus(ops.logsumexp(logit_p, 1) + ops.logsumexp(logit_n, 1)).mean()
