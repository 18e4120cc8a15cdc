"""CMC / mAP / mINP of a query x gallery distance matrix (``fastreid/evaluation/rank.py``, after torchreid).

Market-1501 protocol, as the reference's python ``eval_market1501``: per query the gallery is ranked by ascending
distance, gallery items with the query's pid AND camera are removed, the remaining items matching the pid are the
true matches; a query without any is skipped (and counted). CMC is kept to ``max_rank``; AP is the mean precision at
each true match; INP = (number of true matches) / (position of the last one + 1).

No compile step and bounded memory: distances come a block of query rows at a time (never the whole matrix, never a
whole int64 argsort). Per query, the position of each true match is the number of non-matching gallery items closer
than it, counted against the sorted match distances, which only needs the items up to the farthest match. If a
non-match has exactly the distance of a match, the query's row is ranked with ``np.argsort`` (default quicksort, as
the reference) so that ties order exactly as in the reference.
"""
import logging
from typing import NamedTuple, Optional, Union

import numpy as np

from ..utils.compute_dist import DEFAULT_BLOCK_MB, ArrayDistance, DistanceRows

__all__ = ["evaluate_rank", "rank_queries", "RankResult", "query_has_match", "kept_ranking"]

logger = logging.getLogger(__name__)

#: Cost model (microseconds) choosing, per query, between sorting the candidates (about SORT_FIXED + SORT_PER_ITEM
#: per candidate) and two counting passes per true match (about COUNT_FIXED + COUNT_PER_ITEM per candidate, per
#: match). Both give exactly the same positions; only speed depends on it.
_SORT_FIXED, _SORT_PER_ITEM, _COUNT_FIXED, _COUNT_PER_ITEM = 5.0, 0.05, 2.0, 0.001
_CUHK03_REPEATS = 10


class RankResult(NamedTuple):
    """Outcome of :func:`rank_queries`.

    cmc: float32 (max_rank,) mean CMC over valid queries; all_AP / all_INP: float64, one per valid query in query
    order; valid: bool (num_query,) queries that have a true match; ap / inp: float64 (num_query,) with NaN for
    skipped queries; roc_pos / roc_neg: sorted distances of every kept match / non-match pair (all queries)
    when asked for.
    """
    cmc: np.ndarray
    all_AP: np.ndarray
    all_INP: np.ndarray
    valid: np.ndarray
    ap: np.ndarray
    inp: np.ndarray
    roc_pos: Optional[np.ndarray] = None
    roc_neg: Optional[np.ndarray] = None

    @property
    def mAP(self) -> float:
        return float(np.mean(self.all_AP))

    @property
    def mINP(self) -> float:
        return float(np.mean(self.all_INP))

    @property
    def num_skipped(self) -> int:
        return int(self.valid.size - self.valid.sum())


def _labels(x, what: str) -> np.ndarray:
    arr = np.asarray(x.asnumpy() if hasattr(x, "asnumpy") else x)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1-D, got shape {arr.shape}")
    return arr


def _group_by_pid(g_pids: np.ndarray):
    """pid -> sorted gallery indices with that pid."""
    order = np.argsort(g_pids, kind="stable")
    pids, starts = np.unique(g_pids[order], return_index=True)
    bounds = np.append(starts, order.size)
    return {pid: order[bounds[i]:bounds[i + 1]] for i, pid in enumerate(pids.tolist())}


def query_has_match(q_pids, g_pids, q_camids, g_camids) -> np.ndarray:
    """bool per query: some gallery item has the query's pid and another camera (else the query is skipped)."""
    q_pids, g_pids = _labels(q_pids, "q_pids"), _labels(g_pids, "g_pids")
    q_camids, g_camids = _labels(q_camids, "q_camids"), _labels(g_camids, "g_camids")
    groups = _group_by_pid(g_pids)
    cams = {pid: np.unique(g_camids[idx]) for pid, idx in groups.items()}
    out = np.zeros(q_pids.size, dtype=bool)
    for i, (pid, cam) in enumerate(zip(q_pids.tolist(), q_camids.tolist())):
        c = cams.get(pid)
        out[i] = c is not None and bool(np.any(c != cam))
    return out


def _match_positions(row: np.ndarray, same_pid: np.ndarray, good_sorted: np.ndarray) -> Optional[np.ndarray]:
    """0-based positions of the true matches (``good_sorted``: their distances, ascending) in the kept ranking:
    k + the number of non-matches closer than the k-th match, counted only among the items up to the farthest
    match, by sorting them or by counting passes (whichever the cost model finds cheaper). None if a non-match has
    exactly a match's distance (the caller then ranks the row with argsort, as the reference)."""
    below = row <= good_sorted[-1]
    below[same_pid] = False
    cand = row[below]
    m = good_sorted.size
    if _SORT_FIXED + _SORT_PER_ITEM * cand.size < m * (_COUNT_FIXED + _COUNT_PER_ITEM * cand.size):
        cand.sort()
        before = np.searchsorted(cand, good_sorted, side="left")
        if np.any(np.searchsorted(cand, good_sorted, side="right") != before):
            return None
    else:
        before = np.empty(m, dtype=np.int64)
        for k, v in enumerate(good_sorted):
            before[k] = np.count_nonzero(cand < v)
            if np.count_nonzero(cand == v):
                return None
    return before + np.arange(m)


def kept_ranking(row: np.ndarray, junk: np.ndarray) -> np.ndarray:
    """The reference's ranking of one query's distance row: gallery indices by ``np.argsort`` (default quicksort),
    with the ``junk`` indices (same pid and same camera as the query) removed."""
    order = np.argsort(row)
    return order[~np.isin(order, junk)]


class _Accumulator:
    """Per-query statistics, fed with consecutive blocks of distance rows."""

    def __init__(self, q_pids, g_pids, q_camids, g_camids, max_rank, use_metric_cuhk03, seed, collect_roc):
        self.q_pids, self.g_pids, self.q_camids, self.g_camids = q_pids, g_pids, q_camids, g_camids
        nq, ng = q_pids.size, g_pids.size
        self.max_rank, self.cuhk03, self.collect_roc = max_rank, use_metric_cuhk03, collect_roc
        self.groups = _group_by_pid(g_pids)
        self.empty = np.zeros(0, dtype=np.int64)
        self.valid = np.zeros(nq, dtype=bool)
        self.ap = np.full(nq, np.nan)
        self.inp = np.full(nq, np.nan)
        self.cmc_sum = np.zeros(max_rank, dtype=np.float32)
        if use_metric_cuhk03:
            self.choice = np.random.choice if seed is None else np.random.RandomState(seed).choice
        if collect_roc:
            same = np.array([self.groups.get(p, self.empty).size for p in q_pids.tolist()], dtype=np.int64)
            self.num_neg = int(nq * ng - same.sum())
            self.neg = None  # allocated with the dtype of the first block
            self.neg_fill = 0
            self.pos = []

    def update(self, start: int, block: np.ndarray) -> None:
        for r in range(block.shape[0]):
            self._row(start + r, block[r])

    def _row(self, qi: int, row: np.ndarray) -> None:
        same = self.groups.get(self.q_pids[qi].item(), self.empty)
        same_cam = self.g_camids[same] == self.q_camids[qi]
        junk, good = same[same_cam], same[~same_cam]
        if self.collect_roc:
            if self.neg is None:
                self.neg = np.empty(self.num_neg, dtype=row.dtype)
            self.pos.append(row[good])
            keep = np.ones(row.size, dtype=bool)
            keep[same] = False
            n = row.size - same.size
            self.neg[self.neg_fill:self.neg_fill + n] = row[keep]
            self.neg_fill += n
        if good.size == 0:
            return
        if self.cuhk03:
            kept = kept_ranking(row, junk)
            positions = np.flatnonzero(self.g_pids[kept] == self.q_pids[qi])
            self._cuhk03_cmc(kept, positions)
        else:
            positions = _match_positions(row, same, np.sort(row[good]))
            if positions is None:
                positions = np.flatnonzero(np.isin(kept_ranking(row, junk), good))
            if positions[0] < self.max_rank:
                self.cmc_sum[positions[0]:] += 1
        m = positions.size
        self.valid[qi] = True
        self.ap[qi] = np.sum(np.arange(1, m + 1) / (positions + 1.0)) / m
        self.inp[qi] = m / (positions[-1] + 1.0)

    def _cuhk03_cmc(self, kept: np.ndarray, positions: np.ndarray) -> None:
        """torchreid/FastReID ``eval_cuhk03``: 10 times, one randomly chosen kept image per gallery identity (in the
        order identities first appear in the ranking; ``choice(list_of_positions)`` per identity per repeat)."""
        raw = np.zeros(kept.size, dtype=np.int64)
        raw[positions] = 1
        kept_pids = self.g_pids[kept]
        per_pid = {}
        for pos, pid in enumerate(kept_pids.tolist()):
            per_pid.setdefault(pid, []).append(pos)
        cmc = np.zeros(self.max_rank, dtype=np.float32)
        for _ in range(_CUHK03_REPEATS):
            mask = np.zeros(kept.size, dtype=bool)
            for idxs in per_pid.values():
                mask[self.choice(idxs)] = True
            sampled = raw[mask].cumsum()
            sampled[sampled > 1] = 1
            sampled = sampled[:self.max_rank].astype(np.float32)
            if sampled.size < self.max_rank:
                sampled = np.concatenate([sampled, np.full(self.max_rank - sampled.size, sampled[-1], np.float32)])
            cmc += sampled
        cmc /= _CUHK03_REPEATS
        self.cmc_sum += cmc

    def result(self) -> RankResult:
        valid = self.valid
        n_valid = int(valid.sum())
        if n_valid == 0:
            raise ValueError(f"none of the {valid.size} queries has a true match in the gallery (a gallery image of "
                             f"the same person id taken by another camera); nothing to evaluate")
        cmc = self.cmc_sum / float(n_valid)
        roc_pos = roc_neg = None
        if self.collect_roc:
            roc_pos = np.sort(np.concatenate(self.pos))
            roc_neg = self.neg[:self.neg_fill]
            roc_neg.sort()
        return RankResult(cmc.astype(np.float32), self.ap[valid], self.inp[valid], valid, self.ap, self.inp,
                          roc_pos, roc_neg)


def rank_queries(distmat: Union[np.ndarray, DistanceRows], q_pids, g_pids, q_camids, g_camids, max_rank: int = 50,
                 use_metric_cuhk03: bool = False, *, seed: Optional[int] = None, collect_roc: bool = False,
                 block_mb: float = DEFAULT_BLOCK_MB, block_rows: Optional[int] = None) -> RankResult:
    """Rank every query and return the full :class:`RankResult`.

    ``distmat`` is a (num_query, num_gallery) array or :class:`DistanceRows`; it is read ``block_rows`` query rows at
    a time (by default as many as fit in ``block_mb`` MiB). ``use_metric_cuhk03`` switches to the CUHK03 classic
    single-shot CMC (10 repeats of one random image per gallery identity, numpy's global RNG as the reference, or
    ``np.random.RandomState(seed)``); AP and INP stay those of the full ranking. ``collect_roc`` keeps every kept
    match / non-match distance of every query for the ROC curve (needs ~4 bytes per query x gallery pair).
    """
    dist = distmat if isinstance(distmat, DistanceRows) else ArrayDistance(distmat)
    q_pids, g_pids = _labels(q_pids, "q_pids"), _labels(g_pids, "g_pids")
    q_camids, g_camids = _labels(q_camids, "q_camids"), _labels(g_camids, "g_camids")
    num_q, num_g = dist.shape
    if num_q == 0 or num_g == 0:
        raise ValueError(f"cannot evaluate an empty query or gallery set (distance matrix {dist.shape})")
    for arr, n, what in ((q_pids, num_q, "q_pids"), (q_camids, num_q, "q_camids"),
                         (g_pids, num_g, "g_pids"), (g_camids, num_g, "g_camids")):
        if arr.size != n:
            raise ValueError(f"{what} has {arr.size} entries but the distance matrix is {num_q} x {num_g}")
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    if num_g < max_rank:
        logger.info("Note: number of gallery samples is quite small, got %d", num_g)
        max_rank = num_g
    acc = _Accumulator(q_pids, g_pids, q_camids, g_camids, max_rank, use_metric_cuhk03, seed, collect_roc)
    for start, block in dist.blocks(block_mb, block_rows):
        if not np.all(np.isfinite(block)):
            bad = start + int(np.flatnonzero(~np.all(np.isfinite(block), axis=1))[0])
            raise ValueError(f"the distance matrix has NaN or inf values (first in query row {bad})")
        acc.update(start, block)
    result = acc.result()
    if result.num_skipped:
        logger.info("%d of %d queries have no true match in the gallery and were skipped", result.num_skipped, num_q)
    return result


def evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank: int = 50, use_metric_cuhk03: bool = False,
                  use_cython: bool = False, *, seed: Optional[int] = None, block_mb: float = DEFAULT_BLOCK_MB,
                  block_rows: Optional[int] = None):
    """Reference signature: ``(cmc, all_AP, all_INP)`` = float32 (max_rank,) CMC averaged over valid queries and the
    float64 AP / INP of each valid query. ``use_cython`` is accepted for compatibility and ignored (no compile step).
    See :func:`rank_queries` for the other arguments."""
    res = rank_queries(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, use_metric_cuhk03, seed=seed,
                       block_mb=block_mb, block_rows=block_rows)
    return res.cmc, res.all_AP, res.all_INP
