"""Domain-aware triplet loss of ACL-DGReID (``losses/triplet_loss_MetaIBN.py``: ``triplet_loss_Meta``)."""
from typing import Optional, Sequence, Tuple

import numpy as np
import mindspore as ms
from mindspore import Tensor, ops

from .triplet_loss import margin_ranking_loss, ranking_or_soft_margin, weighted_example_mining
from .utils import cosine_dist, euclidean_dist, label_array, label_tensor, normalize, same_label_mask

__all__ = ["triplet_loss_Meta", "meta_triplet_masks", "masked_hard_example_mining", "check_triplet_meta_rows"]

_STANDARD_FLAGS = ((1, 0, 0), (0, 1, 1))


def _check_flags(pos_flag: Sequence[int], neg_flag: Sequence[int]) -> Tuple[Tuple[int, ...], Tuple[int, ...]]:
    """The flags as tuples of ints; ``ValueError`` unless each is three 0/1 flags (static check)."""
    flags = []
    for name, flag in (("pos_flag", pos_flag), ("neg_flag", neg_flag)):
        values = tuple([int(v) for v in flag])
        bad = [v for v in values if v not in (0, 1)]
        if len(values) != 3 or bad:
            raise ValueError(f"triplet_loss_Meta {name} must be three 0/1 flags for the sets "
                             f"(same id, other id same domain, other domain), got {list(values)}")
        flags.append(values)
    return flags[0], flags[1]


def _flag_masks(same_id, same_domain, same_img, pos_flag, neg_flag, logical_and, logical_or, logical_not):
    """``is_pos = self OR flagged sets``, ``is_neg = OR of flagged sets`` from bool (N, N) masks, written once for
    numpy (host-side checks) and MindSpore (graph) by passing the logical functions."""
    sets = (logical_and(same_id, logical_not(same_img)), logical_and(logical_not(same_id), same_domain),
            logical_not(same_domain))
    is_pos = same_img
    is_neg = logical_and(same_img, logical_not(same_img))  # all False
    for flag, member in zip(pos_flag, sets):
        if flag:
            is_pos = logical_or(is_pos, member)
    for flag, member in zip(neg_flag, sets):
        if flag:
            is_neg = logical_or(is_neg, member)
    return is_pos, is_neg


def meta_triplet_masks(targets, domain_labels, pos_flag: Sequence[int], neg_flag: Sequence[int]):
    """Boolean (N, N) positive/negative masks of ``triplet_loss_Meta``, as Tensors (graph-compilable; numpy labels
    are converted in PyNative).

    With ``(pos_flag, neg_flag) == ([1,0,0], [0,1,1])`` or no domain labels: positives = same id (self included),
    negatives = other id. Otherwise, with the sets S0 = same id and not self, S1 = other id and same domain,
    S2 = other domain: ``is_pos = self OR the S_i flagged in pos_flag``, ``is_neg = OR of the S_i flagged in
    neg_flag``. A pair can be in neither mask (e.g. S0 for ``loss_triplet_add``), or in both."""
    pos_flag, neg_flag = _check_flags(pos_flag, neg_flag)
    labels = label_tensor(targets, "targets")
    same_id = same_label_mask(labels)
    if (pos_flag, neg_flag) == _STANDARD_FLAGS or domain_labels is None:
        return same_id, ops.logical_not(same_id)
    domains = label_tensor(domain_labels, "domain_labels")
    if domains.shape != labels.shape:
        raise ValueError(f"triplet_loss_Meta domain_labels shape {domains.shape} does not match targets "
                         f"shape {labels.shape}")
    n = labels.shape[0]
    return _flag_masks(same_id, same_label_mask(domains), ops.eye(n, n, ms.bool_), pos_flag, neg_flag,
                       ops.logical_and, ops.logical_or, ops.logical_not)


def _meta_triplet_masks_np(targets: np.ndarray, domain_labels: Optional[np.ndarray], pos_flag, neg_flag):
    """numpy twin of :func:`meta_triplet_masks` for host-side checks."""
    pos_flag, neg_flag = _check_flags(pos_flag, neg_flag)
    same_id = same_label_mask(targets)
    if (pos_flag, neg_flag) == _STANDARD_FLAGS or domain_labels is None:
        return same_id, ~same_id
    if domain_labels.shape != targets.shape:
        raise ValueError(f"triplet_loss_Meta domain_labels shape {domain_labels.shape} does not match targets "
                         f"shape {targets.shape}")
    return _flag_masks(same_id, same_label_mask(domain_labels), np.eye(targets.shape[0], dtype=bool), pos_flag,
                       neg_flag, np.logical_and, np.logical_or, np.logical_not)


def check_triplet_meta_rows(targets, domain_labels, pos_flag: Sequence[int], neg_flag: Sequence[int]) -> None:
    """Host-side check for :func:`triplet_loss_Meta` with hard mining: every anchor row must have at least one
    positive and one negative under ``pos_flag``/``neg_flag`` (the reference crashes there with an opaque reduction
    error; the compiled loss would return inf/NaN). Raises ``ValueError`` naming the rows."""
    labels = label_array(targets, "targets")
    domains = None if domain_labels is None else label_array(domain_labels, "domain_labels")
    is_pos, is_neg = _meta_triplet_masks_np(labels, domains, pos_flag, neg_flag)
    for what, mask in (("positive", is_pos), ("negative", is_neg)):
        empty = np.flatnonzero(~mask.any(axis=1))
        if empty.size:
            raise ValueError(f"triplet_loss_Meta hard mining (pos_flag={list(pos_flag)}, neg_flag={list(neg_flag)}): "
                             f"anchor row(s) {empty.tolist()} have no {what} sample in the batch; the batch must "
                             f"contain, for every anchor, at least one {what} under those flags (targets "
                             f"{labels.tolist()}, domains {None if domains is None else domains.tolist()})")


def masked_hard_example_mining(dist_mat: Tensor, is_pos: Tensor, is_neg: Tensor) -> Tuple[Tensor, Tensor]:
    """Per row, the maximum distance over the positives and the minimum over the negatives (bool Tensor masks), the
    vectorised form of the reference's per-row ``torch.max(dist[i][is_pos[i]])`` / ``torch.min(dist[i][is_neg[i]])``.

    Ties share the gradient equally, as torch's full reduction does. A row without positive/negative gives -inf/+inf
    (no exception: validate on the host with :func:`check_triplet_meta_rows`)."""
    dist_ap = ops.amax(ops.where(is_pos, dist_mat, ops.full_like(dist_mat, float("-inf"))), 1)
    dist_an = ops.amin(ops.where(is_neg, dist_mat, ops.full_like(dist_mat, float("inf"))), 1)
    return dist_ap, dist_an


def triplet_loss_Meta(embedding: Tensor, targets, margin: float, norm_feat: bool, hard_mining: bool,
                      dist_type: str, loss_type: str, domain_labels=None, pos_flag: Sequence[int] = (1, 0, 0),
                      neg_flag: Sequence[int] = (0, 0, 1)) -> Tensor:
    """ACL-DGReID ``triplet_loss_Meta``.

    ``norm_feat`` L2-normalises with the reference's ``normalize`` (``x / (||x|| + 1e-12)``); ``dist_type`` is
    ``'euclidean'`` or ``'cosine'``; masks from :func:`meta_triplet_masks`. Hard mining takes the max/min over the
    boolean-masked row (:func:`masked_hard_example_mining`); otherwise softmax-weighted mining. ``margin > 0``:
    margin ranking loss; ``margin <= 0`` with ``loss_type='logistic'``: soft margin (inf fallback to margin 0.3),
    with ``'hinge'``: margin ranking with that margin.

    Graph-compilable (``targets``/``domain_labels`` Tensors; numpy accepted in PyNative). An anchor without
    positive or negative under the flags is not detected here: validate on the host with
    :func:`check_triplet_meta_rows`.

    Deviation: the reference's multi-process gather branch (``comm.get_world_size() > 1``) is not reproduced; the
    loss is computed on the local batch. The MindSpore port this project replaces appended ``(value, index)`` tuples
    here; this implementation reduces values only.
    """
    labels = label_tensor(targets, "targets")
    if embedding.ndim != 2 or embedding.shape[0] != labels.shape[0]:
        raise ValueError(f"triplet_loss_Meta expects embeddings of shape (N, D) matching {labels.shape[0]} targets, "
                         f"got {embedding.shape}")
    if margin <= 0 and loss_type not in ("logistic", "hinge"):
        raise ValueError(f"triplet_loss_Meta loss_type must be 'logistic' or 'hinge' when margin <= 0, "
                         f"got {loss_type!r}")
    if dist_type not in ("euclidean", "cosine"):
        raise ValueError(f"triplet_loss_Meta dist_type must be 'euclidean' or 'cosine', got {dist_type!r}")
    if norm_feat:
        embedding = normalize(embedding, axis=-1)
    if dist_type == "euclidean":
        dist_mat = euclidean_dist(embedding, embedding)
    else:
        dist_mat = cosine_dist(embedding, embedding)

    is_pos, is_neg = meta_triplet_masks(labels, domain_labels, pos_flag, neg_flag)
    if hard_mining:
        dist_ap, dist_an = masked_hard_example_mining(dist_mat, is_pos, is_neg)
    else:
        dist_ap, dist_an = weighted_example_mining(dist_mat, is_pos.astype(dist_mat.dtype),
                                                   is_neg.astype(dist_mat.dtype))
    if margin <= 0 and loss_type == "hinge":
        return margin_ranking_loss(dist_an, dist_ap, margin)
    return ranking_or_soft_margin(dist_ap, dist_an, margin)
