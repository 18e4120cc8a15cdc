"""Distances between re-id feature sets: cosine, squared euclidean and k-reciprocal Jaccard.

Port of ``fastreid/utils/compute_dist.py`` (ACL-DGReID fork) in numpy/faiss-cpu. A query x gallery matrix is a
:class:`DistanceRows`: it is produced a block of query rows at a time, so that evaluating MSMT17 (11,659 x 82,161) never
holds the whole 3.8 GB float32 matrix. ``build_dist`` returns the whole matrix, as the reference does.

The k-reciprocal machinery (expansion sets, sparse weight rows, query expansion, Jaccard rows) is shared with
``fastreid_ms.evaluation.rerank.re_ranking``; the weight rows are kept sparse (the reference's dense N x N ``V`` needs
35 GB on MSMT17) and accumulated in the reference's float32 order.
"""
import logging
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "DistanceRows",
    "ArrayDistance",
    "FeatureDistance",
    "JaccardDistance",
    "BlendedDistance",
    "build_dist",
    "build_dist_rows",
    "compute_cosine_distance",
    "compute_euclidean_distance",
    "compute_jaccard_distance",
    "normalize",
    "rows_per_block",
    "matmul_rows",
    "DEFAULT_BLOCK_MB",
    "MATMUL_TILE",
]

logger = logging.getLogger(__name__)

#: Default size of one block of distance rows (float32 values), in MiB.
DEFAULT_BLOCK_MB = 256
#: Rows of one matmul tile. BLAS may sum a dot product differently for different numbers of rows (1-ulp
#: differences), so rows are always multiplied in tiles at fixed positions: a row's distances then do not depend on
#: how the matrix is cut into blocks.
MATMUL_TILE = 256
_METRICS = ("cosine", "euclidean", "jaccard")


def rows_per_block(num_cols: int, block_mb: float = DEFAULT_BLOCK_MB, bytes_per_value: int = 4) -> int:
    """How many rows of ``num_cols`` values of ``bytes_per_value`` bytes fit in ``block_mb`` MiB (at least 1)."""
    if block_mb <= 0:
        raise ValueError(f"block size must be positive, got {block_mb} MiB")
    return max(1, int(block_mb * 2 ** 20 // max(1, num_cols * bytes_per_value)))


def _as_features(x, what: str) -> np.ndarray:
    if hasattr(x, "asnumpy"):
        x = x.asnumpy()
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D (num_images, dim) feature matrix, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def matmul_rows(a: np.ndarray, b: np.ndarray, start: int, stop: int) -> np.ndarray:
    """``a[start:stop] @ b.T`` (float32), computed in tiles of ``MATMUL_TILE`` rows of ``a`` at multiples of
    ``MATMUL_TILE``, so every row's values are the same whatever ``start`` and ``stop`` are."""
    out = np.empty((stop - start, b.shape[0]), dtype=np.result_type(a, b))
    for t in range((start // MATMUL_TILE) * MATMUL_TILE, stop, MATMUL_TILE):
        lo, hi = max(t, start), min(t + MATMUL_TILE, stop)
        if lo == t and hi == min(t + MATMUL_TILE, a.shape[0]):
            np.matmul(a[t:hi], b.T, out=out[lo - start:hi - start])
        else:
            out[lo - start:hi - start] = (a[t:t + MATMUL_TILE] @ b.T)[lo - t:hi - t]
    return out


def normalize(features, eps: float = 1e-12) -> np.ndarray:
    """Row-wise L2 normalisation in float32, like ``torch.nn.functional.normalize(x, p=2, dim=1)``:
    ``x / max(||x||, eps)``. Returns a new array."""
    x = _as_features(features, "features")
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    return x / np.maximum(norms, np.float32(eps))[:, None]


class DistanceRows:
    """A (num_rows, num_cols) distance matrix (float32 unless given otherwise) produced a block of rows at a time.

    ``rows(start, stop)`` returns rows ``start:stop`` (a new array or a read-only view; callers do not modify it),
    ``blocks()`` iterates over consecutive blocks sized by ``block_mb``, ``full()`` assembles the whole matrix.
    """

    shape: Tuple[int, int] = (0, 0)
    #: bytes of working memory per value of a block (the block itself plus temporaries)
    bytes_per_value: int = 4

    def rows(self, start: int, stop: int) -> np.ndarray:
        raise NotImplementedError

    def block_rows(self, block_mb: float = DEFAULT_BLOCK_MB) -> int:
        """Rows per block for ``block_mb`` MiB, a multiple of ``MATMUL_TILE`` when at least one tile fits."""
        rows = rows_per_block(self.shape[1], block_mb, self.bytes_per_value)
        return rows - rows % MATMUL_TILE if rows >= MATMUL_TILE else rows

    def blocks(self, block_mb: float = DEFAULT_BLOCK_MB, block_rows: Optional[int] = None
               ) -> Iterator[Tuple[int, np.ndarray]]:
        step = int(block_rows) if block_rows else self.block_rows(block_mb)
        if step <= 0:
            raise ValueError(f"block_rows must be positive, got {block_rows}")
        for start in range(0, self.shape[0], step):
            yield start, self.rows(start, min(start + step, self.shape[0]))

    def full(self) -> np.ndarray:
        parts = [block for _, block in self.blocks()]
        return np.concatenate(parts) if parts else np.zeros(self.shape, dtype=np.float32)


class ArrayDistance(DistanceRows):
    """An existing distance matrix; rows keep its float dtype (float64 distances are ranked in float64, as the
    reference would), other dtypes are read as float64."""

    def __init__(self, distmat):
        if hasattr(distmat, "asnumpy"):
            distmat = distmat.asnumpy()
        arr = np.asarray(distmat)
        if arr.ndim != 2:
            raise ValueError(f"distance matrix must be 2-D (num_query, num_gallery), got shape {arr.shape}")
        self.array = arr
        self.shape = arr.shape

    def rows(self, start, stop):
        block = self.array[start:stop]
        return block if np.issubdtype(block.dtype, np.floating) else block.astype(np.float64)


class FeatureDistance(DistanceRows):
    """Cosine (``1 - normalize(q) normalize(g)^T``) or squared euclidean (``|q|^2 + |g|^2 - 2 q g^T``, no square
    root, as the reference) distances, float32, computed per block of query rows with one BLAS matmul."""

    def __init__(self, query, gallery, metric: str):
        if metric not in ("cosine", "euclidean"):
            raise ValueError(f"metric must be 'cosine' or 'euclidean' for feature distances, got {metric!r}")
        q = _as_features(query, "query features")
        g = _as_features(gallery, "gallery features")
        if q.shape[1] != g.shape[1]:
            raise ValueError(f"query features are {q.shape[1]}-d but gallery features are {g.shape[1]}-d")
        self.metric = metric
        self.shape = (q.shape[0], g.shape[0])
        if metric == "cosine":
            self._q, self._g = normalize(q), normalize(g)
        else:
            self._q, self._g = q, g
            self._qq = np.einsum("ij,ij->i", q, q)
            self._gg = np.einsum("ij,ij->i", g, g)
            self.bytes_per_value = 8

    @property
    def query(self) -> np.ndarray:
        """The query features the matmul uses (L2-normalised for cosine)."""
        return self._q

    @property
    def gallery(self) -> np.ndarray:
        """The gallery features the matmul uses (L2-normalised for cosine)."""
        return self._g

    def rows(self, start, stop):
        prod = matmul_rows(self._q, self._g, start, stop)
        if self.metric == "cosine":
            return np.subtract(np.float32(1), prod, out=prod)
        out = self._qq[start:stop, None] + self._gg[None, :]
        prod *= np.float32(-2)
        out += prod
        return out


def check_k(k1: int, k2: int, num: int) -> None:
    if int(k1) != k1 or k1 < 1:
        raise ValueError(f"re-ranking k1 must be a positive integer, got {k1}")
    if int(k2) != k2 or k2 < 1:
        raise ValueError(f"re-ranking k2 must be a positive integer, got {k2}")
    if k1 > num or k2 > num:
        raise ValueError(f"re-ranking needs k1 and k2 <= the number of images; got k1={k1}, k2={k2} for {num} "
                         f"images")


def _knn_l2(features: np.ndarray, k: int) -> np.ndarray:
    """The reference's CPU search (``faiss.IndexFlatL2``): the k nearest rows of every row, itself included."""
    import faiss

    index = faiss.IndexFlatL2(features.shape[1])
    index.add(features)
    _, rank = index.search(features, int(k))
    return rank


def _k_reciprocal(initial_rank: np.ndarray, k: int, chunk: int = 4096) -> List[np.ndarray]:
    """``k_reciprocal_neigh`` of the reference for every row: the entries of ``initial_rank[i, :k+1]`` whose own
    first k+1 neighbours contain i, in forward order."""
    n = initial_rank.shape[0]
    fwd_all = initial_rank[:, :k + 1]
    out = []
    for s in range(0, n, chunk):
        fwd = fwd_all[s:s + chunk]
        back = initial_rank[fwd, :k + 1]
        hit = (back == np.arange(s, s + fwd.shape[0])[:, None, None]).any(axis=2)
        out.extend(fwd[r][hit[r]] for r in range(fwd.shape[0]))
    return out


def expansion_sets(initial_rank: np.ndarray, k1: int) -> List[np.ndarray]:
    """The reference's ``k_reciprocal_expansion_index`` for every row: the k1-reciprocal set, extended by the
    round(k1/2)-reciprocal set of each member that shares more than 2/3 of it, sorted and unique."""
    recip = _k_reciprocal(initial_rank, k1)
    half = _k_reciprocal(initial_rank, int(np.around(k1 / 2)))
    sets = []
    for r in recip:
        if r.size == 0:
            sets.append(r)
            continue
        parts = [half[c] for c in r]
        lens = np.fromiter((p.size for p in parts), dtype=np.int64, count=len(parts))
        cat = np.concatenate(parts)
        owner = np.repeat(np.arange(len(parts)), lens)
        shared = np.bincount(owner, weights=np.isin(cat, r), minlength=len(parts))
        accepted = [p for p, ok in zip(parts, shared > 2 / 3 * lens) if ok]
        sets.append(np.unique(np.concatenate([r] + accepted)))
    return sets


def _ragged_gather(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(starts[i], starts[i] + counts[i])`` over i."""
    total = int(counts.sum())
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + offsets


class SparseRows:
    """Sparse float32 rows (CSR, columns ascending per row) of the k-reciprocal weight matrix ``V``."""

    def __init__(self, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, num_cols: int):
        self.indptr, self.indices, self.data, self.num_cols = indptr, indices, data, num_cols
        self.num_rows = len(indptr) - 1
        self._csc = None
        self._row_pairs = None

    @classmethod
    def from_sets(cls, sets: Sequence[np.ndarray], weights: Callable[[int, np.ndarray], np.ndarray],
                  num_cols: int) -> "SparseRows":
        lens = np.fromiter((s.size for s in sets), dtype=np.int64, count=len(sets))
        indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        indices = np.concatenate(sets).astype(np.int64) if len(sets) else np.zeros(0, np.int64)
        data = np.empty(indices.size, dtype=np.float32)
        for i, s in enumerate(sets):
            if s.size:
                data[indptr[i]:indptr[i + 1]] = weights(i, s)
        return cls(indptr, indices, data, num_cols)

    def query_expansion(self, neighbours: np.ndarray, chunk: int = 8192) -> "SparseRows":
        """Row i becomes the mean of the rows ``neighbours[i]``, summed in float32 in that order and divided by
        their number, as ``np.mean(V[neighbours[i], :], axis=0)`` does; exact zeros are dropped."""
        k = neighbours.shape[1]
        row_nnz = np.diff(self.indptr)
        ptrs, cols_out, vals_out, row_counts = [], [], [], []
        for s in range(0, self.num_rows, chunk):
            nb = neighbours[s:s + chunk]
            counts = row_nnz[nb].ravel()
            pos = _ragged_gather(self.indptr[nb].ravel(), counts)
            owner = np.repeat(np.arange(nb.shape[0]), row_nnz[nb].sum(axis=1))
            key = owner * self.num_cols + self.indices[pos]
            ukey, inv = np.unique(key, return_inverse=True)
            acc = np.zeros(ukey.size, dtype=np.float32)
            np.add.at(acc, inv, self.data[pos])
            np.true_divide(acc, k, out=acc)
            keep = acc != 0
            ukey, acc = ukey[keep], acc[keep]
            row_counts.append(np.bincount(ukey // self.num_cols, minlength=nb.shape[0]))
            cols_out.append(ukey % self.num_cols)
            vals_out.append(acc)
        counts = np.concatenate(row_counts) if row_counts else np.zeros(0, np.int64)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        cat = (lambda parts, dt: np.concatenate(parts) if parts else np.zeros(0, dt))
        return SparseRows(indptr, cat(cols_out, np.int64), cat(vals_out, np.float32), self.num_cols)

    def _columns(self):
        """CSC view (column pointers, row of each entry, value) and, per row, how many (k, j) pairs its Jaccard row
        visits."""
        if self._csc is None:
            order = np.argsort(self.indices, kind="stable")
            row_of = np.repeat(np.arange(self.num_rows), np.diff(self.indptr))
            colptr = np.concatenate([[0], np.cumsum(np.bincount(self.indices, minlength=self.num_cols))])
            self._csc = (colptr.astype(np.int64), row_of[order], self.data[order])
            visits = np.concatenate([[0], np.cumsum(np.diff(colptr)[self.indices])])
            self._row_pairs = visits[self.indptr[1:]] - visits[self.indptr[:-1]]
        return self._csc

    def jaccard_rows(self, start: int, stop: int, col_start: int = 0, clip_negative: bool = False,
                     max_pairs: int = 1 << 23) -> np.ndarray:
        """Rows ``start:stop``, columns ``col_start:`` of the Jaccard distance ``1 - m / (2 - m)`` with
        ``m[i, j] = sum_k min(V[i, k], V[j, k])`` accumulated in float32 in ascending k (the reference's order)."""
        colptr, csc_rows, csc_vals = self._columns()
        width = self.num_rows - col_start
        out = np.empty((stop - start, width), dtype=np.float32)
        i = start
        while i < stop:
            visits = np.cumsum(self._row_pairs[i:stop])
            j = i + max(1, int(np.searchsorted(visits, max_pairs, side="right")))
            out[i - start:j - start] = self._jaccard_block(i, j, col_start, width, colptr, csc_rows, csc_vals)
            i = j
        if clip_negative:
            out[out < 0] = 0.0
        return out

    def _jaccard_block(self, start, stop, col_start, width, colptr, csc_rows, csc_vals):
        entries = np.arange(self.indptr[start], self.indptr[stop])
        owner = np.repeat(np.arange(stop - start), np.diff(self.indptr[start:stop + 1]))
        ks = self.indices[entries]
        counts = colptr[ks + 1] - colptr[ks]
        pos = _ragged_gather(colptr[ks], counts)
        pair_entry = np.repeat(np.arange(entries.size), counts)
        js = csc_rows[pos]
        mins = np.minimum(self.data[entries][pair_entry], csc_vals[pos])
        sel = js >= col_start
        target = owner[pair_entry[sel]] * width + (js[sel] - col_start)
        temp = np.zeros((stop - start) * width, dtype=np.float32)
        np.add.at(temp, target, mins[sel])
        temp = temp.reshape(stop - start, width)
        return np.float32(1) - temp / (np.float32(2) - temp)


def _jaccard_weights(features: np.ndarray, k1: int, k2: int) -> SparseRows:
    """``V`` of ``compute_jaccard_distance``: faiss k1-NN ranks, k-reciprocal expansion sets, softmax of minus the
    squared L2 distance over each set, then query expansion over the k2 nearest neighbours."""
    n = features.shape[0]
    check_k(k1, k2, n)
    initial_rank = _knn_l2(features, k1)
    sets = expansion_sets(initial_rank, k1)
    sq = np.einsum("ij,ij->i", features, features)

    def softmax_weights(i, idx):
        dist = (sq[i] + sq[idx]) + np.float32(-2) * (features[idx] @ features[i])
        e = np.exp(-dist - np.max(-dist))
        return e / np.sum(e)

    v = SparseRows.from_sets(sets, softmax_weights, n)
    if k2 != 1:
        v = v.query_expansion(initial_rank[:, :k2])
    return v


def compute_jaccard_distance(features, k1: int = 20, k2: int = 6) -> np.ndarray:
    """The reference's ``compute_jaccard_distance(features, k1, k2, search_option=3)``: the N x N k-reciprocal
    Jaccard distance of every feature row to every other (k1 nearest neighbours from faiss ``IndexFlatL2``, which
    returns k1 columns with the point itself, so the ``[:k1+1]`` slices hold k1 entries; negatives clipped to 0).
    Needs N^2 float32 values; ``JaccardDistance`` gives query x gallery blocks instead."""
    feats = _as_features(features, "features")
    return _jaccard_weights(feats, int(k1), int(k2)).jaccard_rows(0, feats.shape[0], 0, clip_negative=True)


class JaccardDistance(DistanceRows):
    """Query x gallery block of ``compute_jaccard_distance([query; gallery], k1, k2)`` (what ReidEvaluator's
    TEST.RERANK path uses), computed per block of query rows from sparse weight rows."""

    def __init__(self, query, gallery, k1: int = 20, k2: int = 6):
        q = _as_features(query, "query features")
        g = _as_features(gallery, "gallery features")
        if q.shape[1] != g.shape[1]:
            raise ValueError(f"query features are {q.shape[1]}-d but gallery features are {g.shape[1]}-d")
        self.shape = (q.shape[0], g.shape[0])
        self.bytes_per_value = 8
        self._v = _jaccard_weights(np.concatenate([q, g]), int(k1), int(k2))

    def rows(self, start, stop):
        return self._v.jaccard_rows(start, stop, col_start=self.shape[0], clip_negative=True)


class BlendedDistance(DistanceRows):
    """``first * (1 - weight) + second * weight`` row by row, e.g. ``jaccard * (1 - lambda) + dist * lambda``."""

    def __init__(self, first: DistanceRows, second: DistanceRows, weight: float):
        if first.shape != second.shape:
            raise ValueError(f"cannot blend distance matrices of shapes {first.shape} and {second.shape}")
        self.first, self.second, self.weight = first, second, float(weight)
        self.shape = first.shape
        self.bytes_per_value = first.bytes_per_value + second.bytes_per_value

    def rows(self, start, stop):
        return self.first.rows(start, stop) * (1 - self.weight) + self.second.rows(start, stop) * self.weight


def build_dist_rows(feat_1, feat_2, metric: str = "euclidean", **kwargs) -> DistanceRows:
    """Like :func:`build_dist`, but returns the matrix as :class:`DistanceRows` (computed when its rows are read).
    ``jaccard`` takes ``k1`` and ``k2`` keyword arguments."""
    if metric not in _METRICS:
        raise ValueError(f"Expected metrics are cosine, euclidean and jaccard, but got {metric!r}")
    if metric == "jaccard":
        missing = [k for k in ("k1", "k2") if k not in kwargs]
        if missing:
            raise ValueError(f"the jaccard metric needs keyword arguments {missing}")
        return JaccardDistance(feat_1, feat_2, k1=kwargs["k1"], k2=kwargs["k2"])
    return FeatureDistance(feat_1, feat_2, metric)


def build_dist(feat_1, feat_2, metric: str = "euclidean", **kwargs) -> np.ndarray:
    """Distance matrix between two feature sets (reference ``build_dist``): ``cosine`` = 1 - cosine similarity,
    ``euclidean`` = SQUARED euclidean distance, ``jaccard`` = the query x gallery block of the k-reciprocal Jaccard
    distance of the concatenation (``k1``, ``k2`` keywords). float32 numpy (N1, N2)."""
    return build_dist_rows(feat_1, feat_2, metric, **kwargs).full()


def compute_cosine_distance(features, others) -> np.ndarray:
    """``1 - normalize(features) normalize(others)^T`` (float32)."""
    return FeatureDistance(features, others, "cosine").full()


def compute_euclidean_distance(features, others) -> np.ndarray:
    """Squared euclidean distance ``|f|^2 + |o|^2 - 2 f o^T`` (float32, no square root, as the reference)."""
    return FeatureDistance(features, others, "euclidean").full()
