"""Evaluation against the reference: ``eval_rank.npz`` (distances, CMC/AP/INP/mAP/mINP, AQE, rerank.py re-ranking,
ReidEvaluator's Jaccard re-ranking, ROC). Every size and setting comes from the fixture and its MANIFEST info."""
import numpy as np
import pytest
from golden import Fixture, assert_close

from fastreid_ms.config import get_cfg
from fastreid_ms.evaluation import (ROC_FPRS, ReidEvaluator, aqe, evaluate_rank, evaluate_roc, rank_queries,
                                    re_ranking, roc_curve, roc_curve_from_sorted, tpr_at_fpr)
from fastreid_ms.utils.compute_dist import build_dist, normalize

# golden README, eval_rank "Tolerances": distances and AQE features max|port - ref| <= 1e-5 * max|ref|; metrics to
# float32 rounding (rtol 1e-6); ROC scores/labels exactly, the curve arrays with rtol 1e-6.
DIST_TOL = 1e-5
RTOL = 1e-6

VARIANTS = ("cos", "euc", "aqe", "aqe10", "rr", "jac")
EVALUATOR_VARIANTS = ("cos", "euc", "aqe", "aqe10", "jac")  # rr_ (rerank.py) is not on ReidEvaluator's path


@pytest.fixture(scope="module")
def fx():
    return Fixture("eval_rank")


def _labels(fx):
    return fx["q_pid"], fx["g_pid"], fx["q_cam"], fx["g_cam"]


def _aqe_args(fx, variant):
    info = fx.info[variant]
    return dict(qe_times=info["qe_times"], qe_k=info["qe_k"], alpha=info["alpha"])


def _port_distances(fx, variant):
    """{key: array} of the port's distances (and AQE features / Jaccard) for one variant, from the stored features."""
    q, g = fx["q_feat"], fx["g_feat"]
    if variant == "cos":
        return {"cos_dist": build_dist(q, g, "cosine")}
    if variant == "euc":
        return {"euc_dist": build_dist(q, g, "euclidean")}
    if variant in ("aqe", "aqe10"):
        aq, ag = aqe(q, g, **_aqe_args(fx, variant))
        out = {f"{variant}_dist": build_dist(aq, ag, "cosine")}
        head = f"{variant}_feat_head"
        if head in fx:
            out[head] = np.concatenate([aq, ag])[:fx[head].shape[0]]
        return out
    rr = fx.info["rerank"]
    if variant == "rr":
        return {"rr_dist": re_ranking(build_dist(q, g, "cosine"), build_dist(q, q, "cosine"),
                                      build_dist(g, g, "cosine"), rr["k1"], rr["k2"], rr["lambda_value"])}
    jaccard = build_dist(normalize(q), normalize(g), "jaccard", k1=rr["k1"], k2=rr["k2"])
    lam = rr["lambda_value"]
    return {"jac_jaccard": jaccard, "jac_dist": jaccard * (1 - lam) + build_dist(q, g, "cosine") * lam}


def _check_rank(fx, variant, cmc, all_ap, all_inp):
    np.testing.assert_allclose(cmc, fx[f"{variant}_cmc"], rtol=RTOL, atol=0, err_msg=f"{variant}_cmc")
    np.testing.assert_allclose(all_ap, fx[f"{variant}_AP"], rtol=RTOL, atol=0, err_msg=f"{variant}_AP")
    np.testing.assert_allclose(all_inp, fx[f"{variant}_INP"], rtol=RTOL, atol=0, err_msg=f"{variant}_INP")
    np.testing.assert_allclose(np.mean(all_ap), fx[f"{variant}_mAP"], rtol=RTOL, err_msg=f"{variant}_mAP")
    np.testing.assert_allclose(np.mean(all_inp), fx[f"{variant}_mINP"], rtol=RTOL, err_msg=f"{variant}_mINP")


def _check_results(fx, variant, results):
    for suffix, name in fx.info["results_keys"].items():
        np.testing.assert_allclose(results[name], fx[f"{variant}_res_{suffix}"], rtol=RTOL,
                                   err_msg=f"{variant}_res_{suffix} ({name})")


@pytest.mark.parametrize("variant", VARIANTS)
def test_distances_from_features(fx, variant):
    for key, value in _port_distances(fx, variant).items():
        assert_close(value, fx[key], DIST_TOL, key)


@pytest.mark.parametrize("variant", VARIANTS)
def test_metrics_from_stored_distances(fx, variant):
    dist = fx[f"{variant}_dist"]
    cmc, all_ap, all_inp = evaluate_rank(dist, *_labels(fx), max_rank=fx.info["max_rank"],
                                         use_metric_cuhk03=fx.info["use_metric_cuhk03"])
    assert cmc.shape == fx[f"{variant}_cmc"].shape
    _check_rank(fx, variant, cmc, all_ap, all_inp)
    rank = rank_queries(dist, *_labels(fx), fx.info["max_rank"], fx.info["use_metric_cuhk03"])
    np.testing.assert_array_equal(rank.valid, fx["q_valid"].astype(bool))
    assert np.flatnonzero(~rank.valid).tolist() == fx.info["skipped_query_index"]
    assert int(rank.valid.sum()) == fx.info["n_valid_query"]
    cfg = get_cfg()
    _check_results(fx, variant, ReidEvaluator(cfg, dist.shape[0]).results_from_rank(rank))


@pytest.mark.parametrize("variant", VARIANTS)
def test_metrics_end_to_end(fx, variant):
    dist = _port_distances(fx, variant)[f"{variant}_dist"]
    cmc, all_ap, all_inp = evaluate_rank(dist, *_labels(fx), max_rank=fx.info["max_rank"],
                                         use_metric_cuhk03=fx.info["use_metric_cuhk03"])
    _check_rank(fx, variant, cmc, all_ap, all_inp)


def _evaluator_cfg(fx, variant, roc=False):
    cfg = get_cfg()
    opts = ["TEST.METRIC", "euclidean" if variant == "euc" else "cosine", "TEST.ROC.ENABLED", roc,
            # blocks of a few query rows, so that the chunked path is what is checked
            "TEST.DIST_BLOCK_MB", 8.0 * fx["g_feat"].shape[0] * 4 / 2 ** 20]
    if variant in ("aqe", "aqe10"):
        a = _aqe_args(fx, variant)
        opts += ["TEST.AQE.ENABLED", True, "TEST.AQE.QE_TIME", a["qe_times"], "TEST.AQE.QE_K", a["qe_k"],
                 "TEST.AQE.ALPHA", float(a["alpha"])]
    if variant == "jac":
        rr = fx.info["rerank"]
        opts += ["TEST.RERANK.ENABLED", True, "TEST.RERANK.K1", rr["k1"], "TEST.RERANK.K2", rr["k2"],
                 "TEST.RERANK.LAMBDA", float(rr["lambda_value"])]
    cfg.merge_from_list(opts)
    return cfg


def _run_evaluator(fx, cfg):
    feats = np.concatenate([fx["q_feat"], fx["g_feat"]])
    pids = np.concatenate([fx["q_pid"], fx["g_pid"]])
    cams = np.concatenate([fx["q_cam"], fx["g_cam"]])
    evaluator = ReidEvaluator(cfg, fx["q_feat"].shape[0], dataset_name="eval_rank")
    evaluator.reset()
    batch = max(1, feats.shape[0] // 7)
    for s in range(0, feats.shape[0], batch):
        evaluator.process({"targets": pids[s:s + batch], "camids": cams[s:s + batch]}, feats[s:s + batch])
    return evaluator.evaluate(), evaluator


@pytest.mark.parametrize("variant", EVALUATOR_VARIANTS)
def test_reid_evaluator(fx, variant):
    results, evaluator = _run_evaluator(fx, _evaluator_cfg(fx, variant))
    assert list(results) == list(fx.info["results_keys"].values())
    _check_results(fx, variant, results)
    assert evaluator.summary["num_valid_query"] == fx.info["n_valid_query"]
    assert evaluator.summary["skipped_query_indices"] == fx.info["skipped_query_index"]


def _check_curve(fx, fpr, tpr, thresholds):
    for name, value in (("roc_fpr", fpr), ("roc_tpr", tpr), ("roc_thresholds", thresholds)):
        ref = fx[name]
        assert value.shape == ref.shape, f"{name}: shape {value.shape} != {ref.shape}"
        finite = np.isfinite(ref)
        np.testing.assert_array_equal(np.isfinite(value), finite, err_msg=name)
        np.testing.assert_array_equal(value[~finite], ref[~finite], err_msg=name)
        np.testing.assert_allclose(value[finite], ref[finite], rtol=RTOL, atol=0, err_msg=name)


def test_roc_scores_and_curve(fx):
    scores, labels = evaluate_roc(fx["cos_dist"], *_labels(fx))
    np.testing.assert_array_equal(scores, fx["roc_scores"])
    np.testing.assert_array_equal(labels, fx["roc_labels"])
    fpr, tpr, thresholds = roc_curve(labels, scores)
    _check_curve(fx, fpr, tpr, thresholds)
    assert list(ROC_FPRS) == fx.info["roc_fprs"]
    values, index = tpr_at_fpr(fpr, tpr, fx.info["roc_fprs"])
    np.testing.assert_array_equal(index, fx["roc_index_at_fpr"])
    np.testing.assert_allclose(values, fx["roc_tpr_at_fpr"], rtol=RTOL, atol=0)


def test_roc_from_sorted_distances(fx):
    """The evaluator's path: sorted match / non-match distances collected block by block, no index sort. The curve
    is compared with the reference on the stored distances (the README's exactness statement); on the port's own
    distances (float32 noise can merge or split threshold points) it must equal sklearn's algorithm on them."""
    rank = rank_queries(fx["cos_dist"], *_labels(fx), fx.info["max_rank"], collect_roc=True, block_rows=7)
    _check_curve(fx, *roc_curve_from_sorted(rank.roc_pos, rank.roc_neg))
    _check_curve(fx, *roc_curve_from_sorted(rank.roc_pos, rank.roc_neg, chunk=5))
    dist = _port_distances(fx, "cos")["cos_dist"]
    rank = rank_queries(dist, *_labels(fx), fx.info["max_rank"], collect_roc=True, block_rows=7)
    expected = roc_curve(*evaluate_roc(dist, *_labels(fx))[::-1])
    for got, want in zip(roc_curve_from_sorted(rank.roc_pos, rank.roc_neg), expected):
        np.testing.assert_array_equal(got, want)


def test_reid_evaluator_roc(fx):
    results, _ = _run_evaluator(fx, _evaluator_cfg(fx, "cos", roc=True))
    _check_results(fx, "cos", results)
    for target, value in zip(fx.info["roc_fprs"], fx["roc_tpr_at_fpr"]):
        np.testing.assert_allclose(results[f"TPR@FPR={target:.0e}"], value, rtol=RTOL, atol=0)
