"""Domain-aware triplet loss of ACL-DGReID (``losses/triplet_loss_MetaIBN.py``: ``triplet_loss_Meta``)."""
from typing import Optional, Sequence, Tuple

import numpy as np
from mindspore import Tensor, ops

from .triplet_loss import margin_ranking_loss, ranking_or_soft_margin, weighted_example_mining
from .utils import cosine_dist, euclidean_dist, label_array, normalize, same_label_mask

__all__ = ["triplet_loss_Meta", "meta_triplet_masks", "masked_hard_example_mining"]

_STANDARD_FLAGS = ([1, 0, 0], [0, 1, 1])


def meta_triplet_masks(targets: np.ndarray, domain_labels: Optional[np.ndarray], pos_flag: Sequence[int],
                       neg_flag: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """Boolean (N, N) positive/negative masks of ``triplet_loss_Meta``.

    With ``(pos_flag, neg_flag) == ([1,0,0], [0,1,1])`` or no domain labels: positives = same id (self included),
    negatives = other id. Otherwise, with the sets S0 = same id and not self, S1 = other id and same domain,
    S2 = other domain: ``is_pos = self OR the S_i flagged in pos_flag``, ``is_neg = OR of the S_i flagged in
    neg_flag``. A pair can be in neither mask (e.g. S0 for ``loss_triplet_add``), or in both."""
    pos_flag, neg_flag = [int(v) for v in pos_flag], [int(v) for v in neg_flag]
    for name, flag in (("pos_flag", pos_flag), ("neg_flag", neg_flag)):
        if len(flag) != 3 or any(v not in (0, 1) for v in flag):
            raise ValueError(f"triplet_loss_Meta {name} must be three 0/1 flags for the sets "
                             f"(same id, other id same domain, other domain), got {flag}")
    same_id = same_label_mask(targets)
    if (pos_flag, neg_flag) == _STANDARD_FLAGS or domain_labels is None:
        return same_id, ~same_id
    if domain_labels.shape != targets.shape:
        raise ValueError(f"triplet_loss_Meta domain_labels shape {domain_labels.shape} does not match targets "
                         f"shape {targets.shape}")
    n = targets.shape[0]
    same_img = np.eye(n, dtype=bool)
    same_domain = same_label_mask(domain_labels)
    sets = (same_id & ~same_img, ~same_id & same_domain, ~same_domain)
    is_pos = same_img.copy()
    is_neg = np.zeros((n, n), dtype=bool)
    for flag, member in zip(pos_flag, sets):
        if flag:
            is_pos |= member
    for flag, member in zip(neg_flag, sets):
        if flag:
            is_neg |= member
    return is_pos, is_neg


def masked_hard_example_mining(dist_mat: Tensor, is_pos: np.ndarray, is_neg: np.ndarray) -> Tuple[Tensor, Tensor]:
    """Per row, the maximum distance over the positives and the minimum over the negatives (boolean masks), the
    vectorised form of the reference's per-row ``torch.max(dist[i][is_pos[i]])`` / ``torch.min(dist[i][is_neg[i]])``.

    Ties share the gradient equally, as torch's full reduction does. Raises ``ValueError`` when a row has no
    positive or no negative (the reference crashes there with an opaque reduction error)."""
    for what, mask in (("positive", is_pos), ("negative", is_neg)):
        empty = np.flatnonzero(~mask.any(axis=1))
        if empty.size:
            raise ValueError(f"triplet_loss_Meta hard mining: anchor row(s) {empty.tolist()} have no {what} sample "
                             f"in the batch for the given pos_flag/neg_flag; the batch must contain, for every "
                             f"anchor, at least one {what} under those flags")
    inf = Tensor(np.inf, dist_mat.dtype)
    dist_ap = ops.amax(ops.where(Tensor(is_pos), dist_mat, -inf), 1)
    dist_an = ops.amin(ops.where(Tensor(is_neg), dist_mat, inf), 1)
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

    Deviation: the reference's multi-process gather branch (``comm.get_world_size() > 1``) is not reproduced; the
    loss is computed on the local batch. The MindSpore port this project replaces appended ``(value, index)`` tuples
    here (MINDSPORE_NOTES.md section 4b, defect 8); this implementation reduces values only.
    """
    labels = label_array(targets, "targets")
    domains = None if domain_labels is None else label_array(domain_labels, "domain_labels")
    if embedding.ndim != 2 or embedding.shape[0] != labels.shape[0]:
        raise ValueError(f"triplet_loss_Meta expects embeddings of shape (N, D) matching {labels.shape[0]} targets, "
                         f"got {tuple(embedding.shape)}")
    if margin <= 0 and loss_type not in ("logistic", "hinge"):
        raise ValueError(f"triplet_loss_Meta loss_type must be 'logistic' or 'hinge' when margin <= 0, "
                         f"got {loss_type!r}")
    if norm_feat:
        embedding = normalize(embedding, axis=-1)
    if dist_type == "euclidean":
        dist_mat = euclidean_dist(embedding, embedding)
    elif dist_type == "cosine":
        dist_mat = cosine_dist(embedding, embedding)
    else:
        raise ValueError(f"triplet_loss_Meta dist_type must be 'euclidean' or 'cosine', got {dist_type!r}")

    is_pos, is_neg = meta_triplet_masks(labels, domains, pos_flag, neg_flag)
    if hard_mining:
        dist_ap, dist_an = masked_hard_example_mining(dist_mat, is_pos, is_neg)
    else:
        dist_ap, dist_an = weighted_example_mining(dist_mat, Tensor(is_pos.astype(np.float32), dist_mat.dtype),
                                                   Tensor(is_neg.astype(np.float32), dist_mat.dtype))
    if margin <= 0 and loss_type == "hinge":
        return margin_ranking_loss(dist_an, dist_ap, margin)
    return ranking_or_soft_margin(dist_ap, dist_an, margin)

