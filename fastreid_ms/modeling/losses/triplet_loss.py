"""Batch-hard / softmax-weighted triplet loss (FastReID ``losses/triplet_loss.py``)."""
from typing import Tuple

from mindspore import Tensor, ops

from .utils import cosine_dist, euclidean_dist, label_tensor, same_label_mask

__all__ = ["triplet_loss", "hard_example_mining", "weighted_example_mining", "softmax_weights",
           "margin_ranking_loss", "soft_margin_loss", "ranking_or_soft_margin"]

# The reference falls back to a margin ranking loss with this margin when the soft-margin loss overflows to inf.
SOFT_MARGIN_FALLBACK_MARGIN = 0.3


def softmax_weights(dist: Tensor, mask: Tensor) -> Tensor:
    """Row-wise softmax of ``dist`` restricted to ``mask`` (the row maximum is not detached, as in the reference)."""
    max_v = ops.max(dist * mask, 1, keepdims=True)[0]
    diff = dist - max_v
    z = ops.sum(ops.exp(diff) * mask, 1, keepdim=True) + 1e-6  # avoid division by zero
    return ops.exp(diff) * mask / z


def hard_example_mining(dist_mat: Tensor, is_pos: Tensor, is_neg: Tensor) -> Tuple[Tensor, Tensor]:
    """Hardest positive ``max(dist * is_pos)`` and hardest negative ``min(dist * is_neg + is_pos * 1e9)`` per row.

    ``is_pos``/``is_neg`` are float masks. Multiplying instead of indexing is the reference's formula: an entry that
    is neither positive nor negative counts as distance 0 for the negatives. The gradient goes to the selected
    entry only (``torch.max(dim=1)`` semantics)."""
    dist_ap = ops.max(dist_mat * is_pos, 1)[0]
    dist_an = ops.min(dist_mat * is_neg + is_pos * 1e9, 1)[0]
    return dist_ap, dist_an


def weighted_example_mining(dist_mat: Tensor, is_pos: Tensor, is_neg: Tensor) -> Tuple[Tensor, Tensor]:
    """Softmax-weighted positive and negative distance per row (float masks)."""
    dist_ap = dist_mat * is_pos
    dist_an = dist_mat * is_neg
    weights_ap = softmax_weights(dist_ap, is_pos)
    weights_an = softmax_weights(-dist_an, is_neg)
    return ops.sum(dist_ap * weights_ap, 1), ops.sum(dist_an * weights_an, 1)


def margin_ranking_loss(dist_an: Tensor, dist_ap: Tensor, margin: float) -> Tensor:
    """``F.margin_ranking_loss(dist_an, dist_ap, y=1, margin)`` = ``mean(max(0, dist_ap - dist_an + margin))``.

    ``clamp(min=0)`` passes the gradient at exactly 0 like torch's ``clamp_min``."""
    return ops.clamp(-(dist_an - dist_ap) + margin, min=0.0).mean()


def soft_margin_loss(x: Tensor) -> Tensor:
    """``F.soft_margin_loss(x, y=1)`` = ``mean(log1p(exp(-x)))``; overflows to inf for very negative ``x`` like torch."""
    return ops.log1p(ops.exp(-x)).mean()


def ranking_or_soft_margin(dist_ap: Tensor, dist_an: Tensor, margin: float) -> Tensor:
    """``margin > 0``: margin ranking loss. Otherwise the soft-margin loss, and if that is +inf the margin ranking
    loss with margin 0.3 (the reference's fallback).

    Graph-compilable: both candidates are computed and selected with ``ops.where`` on ``isinf`` of the soft-margin
    loss. The decision is taken on detached inputs, and when it selects the fallback the soft-margin branch is
    evaluated at ``x = 0`` instead of the overflowing ``x``, so no ``inf``/``NaN`` from the unselected branch reaches
    the gradient: the value and gradient are exactly those of the selected branch (as the reference's Python ``if``
    gives)."""
    if margin > 0:
        return margin_ranking_loss(dist_an, dist_ap, margin)
    x = dist_an - dist_ap
    overflow = ops.isinf(soft_margin_loss(ops.stop_gradient(x)))
    soft = soft_margin_loss(ops.where(overflow, ops.zeros_like(x), x))
    fallback = margin_ranking_loss(dist_an, dist_ap, SOFT_MARGIN_FALLBACK_MARGIN)
    return ops.where(overflow, fallback, soft)


def triplet_loss(embedding: Tensor, targets, margin: float, norm_feat: bool, hard_mining: bool) -> Tensor:
    """Triplet loss of FastReID / ACL-DGReID ``triplet_loss.py``.

    Distances: ``cosine_dist`` if ``norm_feat`` else ``euclidean_dist`` (``sqrt(clamp(., 1e-12))``). Positives are
    same-label pairs (self included), negatives different-label pairs. ``hard_mining``: batch-hard with the
    reference's mask-multiply formula (:func:`hard_example_mining`); otherwise softmax-weighted mining.
    ``margin > 0``: margin ranking loss; else soft margin with the inf fallback (:func:`ranking_or_soft_margin`).
    No cross-process gathering (the reference has it commented out). Graph-compilable (``targets`` a Tensor; numpy
    accepted in PyNative).
    """
    labels = label_tensor(targets, "targets")
    if embedding.ndim != 2 or embedding.shape[0] != labels.shape[0]:
        raise ValueError(f"triplet_loss expects embeddings of shape (N, D) matching {labels.shape[0]} targets, "
                         f"got {embedding.shape}")
    dist_mat = cosine_dist(embedding, embedding) if norm_feat else euclidean_dist(embedding, embedding)
    same = same_label_mask(labels)
    is_pos = same.astype(dist_mat.dtype)
    is_neg = ops.logical_not(same).astype(dist_mat.dtype)
    if hard_mining:
        dist_ap, dist_an = hard_example_mining(dist_mat, is_pos, is_neg)
    else:
        dist_ap, dist_an = weighted_example_mining(dist_mat, is_pos, is_neg)
    return ranking_or_soft_margin(dist_ap, dist_an, margin)
