"""Classic k-reciprocal re-ranking (Zhong et al. 2017), ``fastreid/evaluation/rerank.py``.

Note: ReidEvaluator's TEST.RERANK path does not use this function (neither does the reference's); it uses the
faiss-based Jaccard distance of ``fastreid_ms.utils.compute_dist``. Both share the same k-reciprocal code here.
"""
import numpy as np

from ..utils.compute_dist import SparseRows, check_k, expansion_sets

__all__ = ["re_ranking"]


def re_ranking(q_g_dist, q_q_dist, g_g_dist, k1: int = 20, k2: int = 6, lambda_value: float = 0.3) -> np.ndarray:
    """Re-ranked query x gallery distance, computed as the reference does.

    The distances are squared, each column of the (q+g) x (q+g) matrix is divided by its maximum and the result is
    transposed; neighbours come from a full ``np.argsort`` of its rows (k1+1 of them, the point itself included);
    weights are ``exp(-d)`` normalised over each k-reciprocal expansion set; query expansion averages the rows of the
    k2 nearest neighbours; the result is ``jaccard * (1 - lambda) + d * lambda`` (Jaccard not clipped at 0).
    Needs the full (q+g)^2 matrices it is given, so it does not scale to MSMT17-size sets.
    """
    q_g = np.asarray(q_g_dist)
    q_q = np.asarray(q_q_dist)
    g_g = np.asarray(g_g_dist)
    nq, ng = q_g.shape
    if q_q.shape != (nq, nq) or g_g.shape != (ng, ng):
        raise ValueError(f"re_ranking expects q_q_dist ({nq}, {nq}) and g_g_dist ({ng}, {ng}) for q_g_dist "
                         f"{q_g.shape}; got {q_q.shape} and {g_g.shape}")
    all_num = nq + ng
    check_k(k1, k2, all_num)
    original_dist = np.concatenate([np.concatenate([q_q, q_g], axis=1),
                                    np.concatenate([q_g.T, g_g], axis=1)], axis=0)
    original_dist = np.power(original_dist, 2).astype(np.float32)
    original_dist = np.transpose(1.0 * original_dist / np.max(original_dist, axis=0))
    initial_rank = np.empty((all_num, all_num), dtype=np.int32)
    step = max(1, (1 << 22) // all_num)
    for s in range(0, all_num, step):
        initial_rank[s:s + step] = np.argsort(original_dist[s:s + step])

    def exp_weights(i, idx):
        weight = np.exp(-original_dist[i, idx])
        return 1.0 * weight / np.sum(weight)

    v = SparseRows.from_sets(expansion_sets(initial_rank, k1), exp_weights, all_num)
    if k2 != 1:
        v = v.query_expansion(initial_rank[:, :k2])
    jaccard_dist = v.jaccard_rows(0, nq, col_start=nq)
    return jaccard_dist * (1 - lambda_value) + original_dist[:nq, nq:] * lambda_value
