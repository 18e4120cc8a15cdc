"""Re-id evaluator: query/gallery split, optional AQE and re-ranking, CMC/mAP/mINP, optional ROC
(``fastreid/evaluation/reid_evaluation.py``)."""
import copy
import logging
from collections import OrderedDict
from typing import NamedTuple, Optional

import numpy as np

from ..utils import comm
from ..utils.compute_dist import BlendedDistance, DistanceRows, FeatureDistance, JaccardDistance
from .evaluator import DatasetEvaluator
from .query_expansion import aqe
from .rank import RankResult, query_has_match, rank_queries
from .roc import ROC_FPRS, roc_curve_from_sorted, tpr_at_fpr

__all__ = ["ReidEvaluator", "EvalData"]

logger = logging.getLogger(__name__)

_MAX_RANK = 50
_LIST_AT_MOST = 20


class EvalData(NamedTuple):
    """What the metrics are computed from: the query x gallery distances (after AQE / re-ranking) and the labels."""
    dist: DistanceRows
    q_pids: np.ndarray
    g_pids: np.ndarray
    q_camids: np.ndarray
    g_camids: np.ndarray
    q_paths: Optional[np.ndarray]
    g_paths: Optional[np.ndarray]


def _gather_rows(array: np.ndarray) -> np.ndarray:
    """Rows of every process concatenated in rank order (every process gets all), through ``comm.all_reduce_sum``
    of a zero-padded float32 buffer (exact: each entry is a sum of one value and zeros)."""
    world, rank = comm.get_world_size(), comm.get_rank()
    counts = np.zeros(world, dtype=np.float32)
    counts[rank] = array.shape[0]
    counts = comm.all_reduce_sum(counts).astype(np.int64)
    buf = np.zeros((int(counts.sum()),) + array.shape[1:], dtype=np.float32)
    offset = int(counts[:rank].sum())
    buf[offset:offset + array.shape[0]] = array
    return comm.all_reduce_sum(buf)


def _gather_labels(labels: np.ndarray, what: str) -> np.ndarray:
    if labels.size and (not np.issubdtype(labels.dtype, np.integer) or np.abs(labels).max() >= 2 ** 24):
        raise ValueError(f"{what} must be integers below 2**24 to be gathered across processes")
    return _gather_rows(labels.astype(np.float32)).astype(np.int64)


class ReidEvaluator(DatasetEvaluator):
    """Collects features, person ids and camera ids batch by batch; the first ``num_query`` images are the query
    set, the rest the gallery. ``evaluate()`` returns an OrderedDict (all x100): Rank-1, Rank-5, Rank-10, mAP, mINP,
    metric = (mAP + Rank-1) / 2, and with TEST.ROC.ENABLED ``TPR@FPR=1e-04/1e-03/1e-02`` (a fraction, as the
    reference, unless TEST.ROC.PERCENT).

    Config: TEST.METRIC (cosine | euclidean = squared), TEST.AQE (features expanded before the distance),
    TEST.RERANK (``jaccard * (1 - LAMBDA) + dist * LAMBDA``, Jaccard from L2-normalised features when the metric is
    cosine), TEST.ROC, TEST.USE_METRIC_CUHK03, TEST.DIST_BLOCK_MB. Queries without a true match (a gallery image of
    their person id from another camera) are skipped and counted (``summary``), as the reference does; if all are,
    ``evaluate`` raises. NaN/inf features raise, naming the dataset (and the image when paths are given).
    With several processes, the features are gathered in rank order (the test sampler gives each process a
    contiguous shard) and only the main process evaluates. ``output_dir`` is kept for FastReID compatibility
    (unused, as there); ``dataset_name`` names the set in messages.
    """

    def __init__(self, cfg, num_query: int, output_dir: Optional[str] = None, *, dataset_name: str = ""):
        self.cfg = cfg
        self._num_query = int(num_query)
        self._output_dir = output_dir
        self._dataset_name = dataset_name
        self._predictions = []
        self.summary = {}

    @property
    def _name(self) -> str:
        return f"dataset {self._dataset_name!r}" if self._dataset_name else "the test set"

    def reset(self):
        self._predictions = []
        self.summary = {}

    def process(self, inputs, outputs):
        feats = np.array(outputs.asnumpy() if hasattr(outputs, "asnumpy") else outputs, dtype=np.float32)
        pids = np.asarray(inputs["targets"]).reshape(-1)
        camids = np.asarray(inputs["camids"]).reshape(-1)
        paths = inputs.get("img_paths")
        if feats.ndim != 2 or feats.shape[0] != pids.size or camids.size != pids.size:
            raise ValueError(f"{self._name}: a batch has features of shape {feats.shape}, {pids.size} targets and "
                             f"{camids.size} camids; expected (N, D) features with N targets and N camids")
        if self._predictions and feats.shape[1] != self._predictions[0]["feats"].shape[1]:
            raise ValueError(f"{self._name}: a batch has {feats.shape[1]}-d features, earlier batches "
                             f"{self._predictions[0]['feats'].shape[1]}-d")
        finite = np.isfinite(feats).all(axis=1)
        if not finite.all():
            row = int(np.flatnonzero(~finite)[0])
            where = f"image {np.asarray(paths)[row]!s}" if paths is not None else f"batch row {row}"
            raise ValueError(f"{self._name}: the model produced NaN or inf features ({int((~finite).sum())} of "
                             f"{feats.shape[0]} images of this batch, first: {where})")
        self._predictions.append({"feats": feats, "pids": pids, "camids": camids,
                                  "img_paths": None if paths is None else np.asarray(paths)})

    def _collect(self):
        """All processed rows, merged into one entry (so that the per-batch arrays are freed)."""
        if not self._predictions:
            raise ValueError(f"{self._name}: no features were processed; the test loader yielded no batch")
        if len(self._predictions) > 1:
            preds = self._predictions
            paths = [p["img_paths"] for p in preds]
            merged = {key: np.concatenate([p[key] for p in preds]) for key in ("pids", "camids")}
            merged["img_paths"] = None if any(p is None for p in paths) else np.concatenate(paths)
            total = sum(p["feats"].shape[0] for p in preds)
            feats = np.empty((total, preds[0]["feats"].shape[1]), dtype=np.float32)
            offset = 0
            for i, p in enumerate(preds):  # copy batch by batch, dropping each batch once copied
                feats[offset:offset + p["feats"].shape[0]] = p["feats"]
                offset += p["feats"].shape[0]
                preds[i] = None
            merged["feats"] = feats
            self._predictions = [merged]
        return self._predictions[0]

    def eval_data(self) -> Optional[EvalData]:
        """The distances (after TEST.AQE / TEST.RERANK) and labels the metrics are computed from; None on
        non-main processes. Checks the query/gallery split."""
        pred = self._collect()
        feats, pids, camids, paths = pred["feats"], pred["pids"], pred["camids"], pred["img_paths"]
        if comm.get_world_size() > 1:
            feats = _gather_rows(feats)
            pids, camids = _gather_labels(pids, "person ids"), _gather_labels(camids, "camera ids")
            paths = None
            if not comm.is_main_process():
                return None
        nq, total = self._num_query, feats.shape[0]
        if nq <= 0:
            raise ValueError(f"{self._name}: the query set is empty (num_query={nq}, {total} images)")
        if nq >= total:
            raise ValueError(f"{self._name}: the gallery set is empty (num_query={nq} but only {total} images were "
                             f"evaluated)")
        q_pids, g_pids, q_camids, g_camids = pids[:nq], pids[nq:], camids[:nq], camids[nq:]
        valid = query_has_match(q_pids, g_pids, q_camids, g_camids)
        skipped = np.flatnonzero(~valid)
        self.summary = {"dataset": self._dataset_name, "num_query": nq, "num_gallery": total - nq,
                        "num_valid_query": int(valid.sum()), "num_skipped_query": int(skipped.size),
                        "skipped_query_indices": skipped.tolist()}
        if skipped.size == nq:
            raise ValueError(f"{self._name}: none of the {nq} queries has a true match in the gallery (a gallery "
                             f"image with the query's person id from another camera); check the query/gallery "
                             f"person and camera ids")
        if skipped.size:
            shown = ", ".join(map(str, skipped[:_LIST_AT_MOST].tolist())) + (" ..." if skipped.size > _LIST_AT_MOST
                                                                             else "")
            logger.warning("%s: %d of %d queries have no true match in the gallery and are skipped, as the "
                           "reference does (query indices: %s)", self._name, skipped.size, nq, shown)

        test = self.cfg.TEST
        if test.METRIC not in ("cosine", "euclidean"):
            raise ValueError(f"TEST.METRIC must be 'cosine' or 'euclidean', got {test.METRIC!r}")
        q_feat, g_feat = feats[:nq], feats[nq:]
        if test.AQE.ENABLED:
            logger.info("Test with AQE setting")
            q_feat, g_feat = aqe(q_feat, g_feat, test.AQE.QE_TIME, test.AQE.QE_K, test.AQE.ALPHA,
                                 block_mb=test.DIST_BLOCK_MB)
        dist = FeatureDistance(q_feat, g_feat, test.METRIC)
        if test.RERANK.ENABLED:
            logger.info("Test with rerank setting")
            if test.METRIC == "cosine":  # the L2-normalised features the cosine distance multiplies
                q_feat, g_feat = dist.query, dist.gallery
            jaccard = JaccardDistance(q_feat, g_feat, k1=test.RERANK.K1, k2=test.RERANK.K2)
            dist = BlendedDistance(jaccard, dist, test.RERANK.LAMBDA)
        q_paths = g_paths = None
        if paths is not None:
            q_paths, g_paths = paths[:nq], paths[nq:]
        return EvalData(dist, q_pids, g_pids, q_camids, g_camids, q_paths, g_paths)

    def evaluate(self):
        return self.evaluate_detailed()[0]

    def evaluate_detailed(self):
        """``(results, eval_data, rank_result)`` (the visualisation tool uses all three); ``({}, None, None)`` on
        non-main processes."""
        data = self.eval_data()
        if data is None:
            return {}, None, None
        test = self.cfg.TEST
        logger.info("Evaluating %s: %d queries, %d gallery images", self._name, data.dist.shape[0],
                    data.dist.shape[1])
        seed = int(self.cfg.SEED) if int(self.cfg.SEED) >= 0 else None
        rank = rank_queries(data.dist, data.q_pids, data.g_pids, data.q_camids, data.g_camids, _MAX_RANK,
                            bool(test.USE_METRIC_CUHK03), seed=seed, collect_roc=bool(test.ROC.ENABLED),
                            block_mb=test.DIST_BLOCK_MB)
        return self.results_from_rank(rank), data, rank

    def results_from_rank(self, rank: RankResult) -> OrderedDict:
        """The FastReID results dict of a :class:`RankResult` (values x100, python floats)."""
        cmc = rank.cmc
        results = OrderedDict()
        for r in (1, 5, 10):
            # a gallery smaller than r: Rank-r is the CMC at the last gallery position
            results[f"Rank-{r}"] = float(cmc[min(r, cmc.size) - 1]) * 100
        m_ap = np.mean(rank.all_AP)
        results["mAP"] = float(m_ap) * 100
        results["mINP"] = float(np.mean(rank.all_INP)) * 100
        results["metric"] = float((m_ap + float(cmc[0])) / 2 * 100)
        if rank.roc_pos is not None:
            fpr, tpr, _ = roc_curve_from_sorted(rank.roc_pos, rank.roc_neg)
            tprs, _ = tpr_at_fpr(fpr, tpr, ROC_FPRS)
            scale = 100 if self.cfg.TEST.ROC.PERCENT else 1
            for target, value in zip(ROC_FPRS, tprs):
                results[f"TPR@FPR={target:.0e}"] = float(value) * scale
        return copy.deepcopy(results)
