"""Alpha-weighted query expansion (``fastreid/evaluation/query_expansion.py``, after PyRetri)."""
import numpy as np

from ..utils.compute_dist import DEFAULT_BLOCK_MB, MATMUL_TILE, matmul_rows, normalize, rows_per_block

__all__ = ["aqe"]


def aqe(query_feat, gallery_feat, qe_times: int = 1, qe_k: int = 10, alpha: float = 3.0,
        block_mb: float = DEFAULT_BLOCK_MB):
    """Average query expansion over the concatenation [query; gallery], as the reference computes it.

    Each round: cosine similarities of the L2-normalised features; for every row the ``qe_k`` most similar rows
    (itself included) are chosen with ``np.argpartition(-sim, range(1, qe_k + 1))[:qe_k]``; the new feature is the
    plain mean over them of ``raw_feature * sim ** alpha`` (not normalised by the weights). Similarities are computed
    a block of rows at a time (the reference builds the whole N x N matrix). Returns float32 (query, gallery).
    Note: ReidEvaluator passes cfg.TEST.AQE.QE_K (default 5); this function's own default qe_k is 10.
    """
    q = np.asarray(query_feat.asnumpy() if hasattr(query_feat, "asnumpy") else query_feat, dtype=np.float32)
    g = np.asarray(gallery_feat.asnumpy() if hasattr(gallery_feat, "asnumpy") else gallery_feat, dtype=np.float32)
    num_query = q.shape[0]
    all_feat = np.concatenate([q, g], axis=0)
    n = all_feat.shape[0]
    if not 1 <= qe_k <= n:
        raise ValueError(f"AQE qe_k must be between 1 and the number of images ({n}), got {qe_k}")
    if qe_times < 0:
        raise ValueError(f"AQE qe_times must be >= 0, got {qe_times}")
    kth = range(1, qe_k + 1) if qe_k < n else range(1, n)
    step = max(MATMUL_TILE, rows_per_block(n, block_mb, bytes_per_value=8) // MATMUL_TILE * MATMUL_TILE)
    for _ in range(qe_times):
        norm_feat = normalize(all_feat)
        expanded = np.empty_like(all_feat)
        for s in range(0, n, step):
            sims = matmul_rows(norm_feat, norm_feat, s, min(s + step, n))
            top = np.argpartition(-sims, kth, axis=1)[:, :qe_k]
            weights = np.power(np.take_along_axis(sims, top, axis=1), alpha)
            expanded[s:s + step] = np.mean(all_feat[top] * weights[:, :, None], axis=1)
        all_feat = expanded
    return all_feat[:num_query], all_feat[num_query:]
