"""ROC of a re-id ranking (``fastreid/evaluation/roc.py``) and a numpy ``roc_curve`` with sklearn's semantics.

The reference scores every kept (query, gallery) pair by its distance and labels matches 0 and non-matches 1, then
calls ``sklearn.metrics.roc_curve(labels, scores)``: the ROC's "positive" class is the non-match. ReidEvaluator
reports ``TPR@FPR=1e-04/1e-03/1e-02`` = ``tpr[argmin |fpr - FPR|]`` (first index on ties) of that curve.
"""
from typing import Sequence, Tuple

import numpy as np

from ..utils.compute_dist import DEFAULT_BLOCK_MB, ArrayDistance, DistanceRows

__all__ = ["evaluate_roc", "roc_curve", "roc_curve_from_sorted", "tpr_at_fpr", "ROC_FPRS"]

#: The false positive rates at which ReidEvaluator reports the true positive rate.
ROC_FPRS = (1e-4, 1e-3, 1e-2)


def evaluate_roc(distmat, q_pids, g_pids, q_camids, g_camids, block_mb: float = DEFAULT_BLOCK_MB
                 ) -> Tuple[np.ndarray, np.ndarray]:
    """``(scores, labels)`` exactly as the reference builds them, over ALL queries: per query (in order) the gallery
    ranked by ``np.argsort``, same-pid-same-camera items removed, then the distances of the matches, in ranked
    order, go to ``pos`` and those of the non-matches to ``neg``; ``scores = concat(pos, neg)`` (distance dtype),
    ``labels`` = 0 for pos, 1 for neg (int8; the reference has float64 0/1). Needs ~5 bytes per pair; the evaluator
    itself uses :func:`roc_curve_from_sorted` on the sorted distances instead."""
    dist = distmat if isinstance(distmat, DistanceRows) else ArrayDistance(distmat)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    pos, neg = [], []
    for start, block in dist.blocks(block_mb):
        for r in range(block.shape[0]):
            qi = start + r
            order = np.argsort(block[r])
            same_pid = g_pids[order] == q_pids[qi]
            keep = ~(same_pid & (g_camids[order] == q_camids[qi]))
            ranked = block[r][order[keep]]
            match = same_pid[keep]
            pos.append(ranked[match])
            neg.append(ranked[~match])
    pos_all, neg_all = np.concatenate(pos), np.concatenate(neg)
    scores = np.concatenate([pos_all, neg_all])
    labels = np.concatenate([np.zeros(pos_all.size, np.int8), np.ones(neg_all.size, np.int8)])
    return scores, labels


def roc_curve(y_true, y_score, drop_intermediate: bool = True) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``sklearn.metrics.roc_curve(y_true, y_score)`` for binary labels {0, 1} (pos_label 1, no sample weights):
    ``(fpr, tpr, thresholds)`` over the distinct scores in decreasing order, thresholds[0] = inf (sklearn >= 1.3),
    and with ``drop_intermediate`` the points whose second differences of both fps and tps are 0 are dropped."""
    y_true = np.asarray(y_true).ravel()
    y_score = np.asarray(y_score).ravel()
    if y_true.shape != y_score.shape:
        raise ValueError(f"y_true has {y_true.size} entries but y_score has {y_score.size}")
    classes = np.unique(y_true)
    if not np.all(np.isin(classes, [0, 1])):
        raise ValueError(f"roc_curve expects binary labels 0/1, got classes {classes[:10].tolist()}")
    if not np.all(np.isfinite(y_score)):
        raise ValueError("roc_curve: the scores contain NaN or inf")
    positive = y_true == 1
    return roc_curve_from_sorted(np.sort(y_score[~positive]), np.sort(y_score[positive]), drop_intermediate)


def _merged_unique(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sorted distinct values of two sorted arrays."""
    ua = a[np.concatenate([[True], a[1:] != a[:-1]])] if a.size else a
    ub = b[np.concatenate([[True], b[1:] != b[:-1]])] if b.size else b
    if ua.size == 0:
        return ub
    pos = np.searchsorted(ua, ub)
    new = (pos == ua.size) | (ua[np.minimum(pos, ua.size - 1)] != ub)
    return np.insert(ua, pos[new], ub[new])


def roc_curve_from_sorted(neg_scores: np.ndarray, pos_scores: np.ndarray, drop_intermediate: bool = True,
                          chunk: int = 1 << 22) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`roc_curve` from the ascending-sorted scores of the label-0 (``neg_scores``) and label-1
    (``pos_scores``) samples, without an index sort; the threshold points are processed ``chunk`` at a time."""
    values = _merged_unique(neg_scores, pos_scores)[::-1]
    n = values.size
    thresholds, fps_kept, tps_kept = [], [], []
    for a in range(0, n, chunk):
        lo, hi = max(a - 1, 0), min(a + chunk + 1, n)
        v = values[lo:hi]
        tps = (pos_scores.size - np.searchsorted(pos_scores, v, side="left")).astype(np.float64)
        fps = (neg_scores.size - np.searchsorted(neg_scores, v, side="left")).astype(np.float64)
        idx = np.arange(a, min(a + chunk, n))
        if drop_intermediate and n > 2:
            keep = (idx == 0) | (idx == n - 1)
            inner = ~keep
            loc = idx[inner] - lo
            keep[inner] = ((fps[loc + 1] - 2 * fps[loc] + fps[loc - 1]) != 0) | \
                          ((tps[loc + 1] - 2 * tps[loc] + tps[loc - 1]) != 0)
            idx = idx[keep]
        thresholds.append(values[idx])
        fps_kept.append(fps[idx - lo])
        tps_kept.append(tps[idx - lo])
    fps = np.concatenate([[0.0]] + fps_kept)
    tps = np.concatenate([[0.0]] + tps_kept)
    thresholds = np.concatenate([[np.inf]] + [t.astype(np.float64) for t in thresholds])
    fpr = fps / fps[-1] if fps[-1] > 0 else np.full(fps.shape, np.nan)
    tpr = tps / tps[-1] if tps[-1] > 0 else np.full(tps.shape, np.nan)
    return fpr, tpr, thresholds


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, targets: Sequence[float] = ROC_FPRS
               ) -> Tuple[np.ndarray, np.ndarray]:
    """``(tpr[i], i)`` with ``i = argmin |fpr - target|`` (first on ties) for each target, as ReidEvaluator."""
    idx = np.array([int(np.argmin(np.abs(fpr - t))) for t in targets], dtype=np.int64)
    return tpr[idx], idx
