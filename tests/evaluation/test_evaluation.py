"""Evaluation library: bad inputs, chunking, exactness against a straight port of the reference's python ranking
(ties included), CUHK03 single-shot, roc_curve, print_csv_format, inference_on_dataset, multi-process gathering."""
import logging
import re
import threading
from collections import OrderedDict

import numpy as np
import pytest

from fastreid_ms.config import get_cfg
from fastreid_ms.evaluation import (DatasetEvaluator, ReidEvaluator, aqe, evaluate_rank, inference_on_dataset,
                                    print_csv_format, query_has_match, rank_queries, re_ranking, roc_curve,
                                    write_results_json)
from fastreid_ms.evaluation import rank as rank_module
from fastreid_ms.utils import comm
from fastreid_ms.utils import compute_dist
from fastreid_ms.utils.compute_dist import (FeatureDistance, JaccardDistance, build_dist, normalize,
                                            rows_per_block)


# ----------------------------------------------------------------------------------------------------------------
# oracles: straight ports of the reference's python code (full argsort per row)

def reference_market(distmat, q_pids, g_pids, q_camids, g_camids, max_rank):
    """``eval_market1501`` of fastreid/evaluation/rank.py, unchanged in substance."""
    num_q, num_g = distmat.shape
    max_rank = min(max_rank, num_g)
    indices = np.argsort(distmat, axis=1)
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    all_cmc, all_ap, all_inp = [], [], []
    for q_idx in range(num_q):
        order = indices[q_idx]
        remove = (g_pids[order] == q_pids[q_idx]) & (g_camids[order] == q_camids[q_idx])
        raw_cmc = matches[q_idx][~remove]
        if not np.any(raw_cmc):
            continue
        cmc = raw_cmc.cumsum()
        max_pos_idx = np.max(np.where(raw_cmc == 1))
        all_inp.append(cmc[max_pos_idx] / (max_pos_idx + 1.0))
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        num_rel = raw_cmc.sum()
        tmp_cmc = np.asarray([x / (i + 1.) for i, x in enumerate(raw_cmc.cumsum())]) * raw_cmc
        all_ap.append(tmp_cmc.sum() / num_rel)
    all_cmc = np.asarray(all_cmc).astype(np.float32).sum(0) / float(len(all_ap))
    return all_cmc, np.asarray(all_ap), np.asarray(all_inp)


def random_problem(seed, num_q=40, num_g=300, num_ids=25, num_cams=4, ties=False):
    rng = np.random.default_rng(seed)
    q_pids = rng.integers(0, num_ids, num_q)
    g_pids = rng.integers(0, num_ids, num_g)
    q_cams = rng.integers(0, num_cams, num_q)
    g_cams = rng.integers(0, num_cams, num_g)
    dist = rng.random((num_q, num_g)).astype(np.float32)
    dist += 0.8 * (q_pids[:, None] != g_pids[None, :])  # matches tend to rank first
    if ties:
        dist = np.round(dist * 20) / 20  # many exact ties, also between matches and non-matches
    return dist.astype(np.float32), q_pids, g_pids, q_cams, g_cams


def features_problem(seed, num_q=30, num_g=200, num_ids=20, dim=16, num_cams=3):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((num_ids, dim))
    q_pids = rng.integers(0, num_ids, num_q)
    g_pids = np.concatenate([np.arange(num_ids), rng.integers(0, num_ids, num_g - num_ids)])
    q_feat = (centres[q_pids] + 0.9 * rng.standard_normal((num_q, dim))).astype(np.float32)
    g_feat = (centres[g_pids] + 0.9 * rng.standard_normal((num_g, dim))).astype(np.float32)
    return q_feat, g_feat, q_pids, g_pids, rng.integers(0, num_cams, num_q), rng.integers(0, num_cams, num_g)


def feed(evaluator, feats, pids, cams, batch=17, paths=None):
    evaluator.reset()
    for s in range(0, len(feats), batch):
        inputs = {"targets": pids[s:s + batch], "camids": cams[s:s + batch]}
        if paths is not None:
            inputs["img_paths"] = paths[s:s + batch]
        evaluator.process(inputs, feats[s:s + batch])
    return evaluator


def make_evaluator(q_feat, g_feat, q_pids, g_pids, q_cams, g_cams, opts=(), name="synthetic", paths=None):
    cfg = get_cfg()
    cfg.merge_from_list(list(opts))
    ev = ReidEvaluator(cfg, len(q_pids), dataset_name=name)
    return feed(ev, np.concatenate([q_feat, g_feat]), np.concatenate([q_pids, g_pids]),
                np.concatenate([q_cams, g_cams]), paths=paths)


# ----------------------------------------------------------------------------------------------------------------
# exactness and chunking

@pytest.mark.parametrize("ties", [False, True])
def test_rank_matches_reference_python(ties):
    dist, qp, gp, qc, gc = random_problem(3, ties=ties)
    cmc, ap, inp = evaluate_rank(dist, qp, gp, qc, gc, max_rank=50)
    ref_cmc, ref_ap, ref_inp = reference_market(dist, qp, gp, qc, gc, 50)
    np.testing.assert_array_equal(cmc, ref_cmc)
    np.testing.assert_allclose(ap, ref_ap, rtol=1e-12, atol=0)
    np.testing.assert_allclose(inp, ref_inp, rtol=1e-12, atol=0)


@pytest.mark.parametrize("ties", [False, True])
def test_sorting_and_counting_paths_agree(monkeypatch, ties):
    """Match positions by sorting the candidates or by counting passes (chosen per query by a cost model) are the
    same, many true matches per query included."""
    dist, qp, gp, qc, gc = random_problem(5, num_q=20, num_g=400, num_ids=3, ties=ties)
    assert min(int(((gp == p) & (gc != c)).sum()) for p, c in zip(qp, qc)) > 60
    ref = reference_market(dist, qp, gp, qc, gc, 50)
    for sort_fixed in (5.0, -1e9, 1e9):  # as configured, always sort, always count
        monkeypatch.setattr(rank_module, "_SORT_FIXED", sort_fixed)
        cmc, ap, inp = evaluate_rank(dist, qp, gp, qc, gc)
        np.testing.assert_array_equal(cmc, ref[0])
        np.testing.assert_allclose(ap, ref[1], rtol=1e-12, atol=0)
        np.testing.assert_allclose(inp, ref[2], rtol=1e-12, atol=0)


def test_float64_distances_are_ranked_in_float64():
    """Two distances equal in float32 but not in float64: the float64 order is kept, as the reference's argsort."""
    dist = np.array([[0.5 + 1e-12, 0.5, 0.9]], dtype=np.float64)
    assert np.float32(dist[0, 0]) == np.float32(dist[0, 1])
    args = (np.array([1]), np.array([1, 2, 3]), np.array([0]), np.array([1, 1, 1]))
    cmc, ap, _ = evaluate_rank(dist, *args)
    np.testing.assert_allclose(ap, [0.5])  # the match (0.5 + 1e-12) comes second
    rank = rank_queries(dist, *args, collect_roc=True)
    assert rank.roc_neg.dtype == np.float64 and rank.roc_pos[0] == dist[0, 0]


def test_ties_follow_the_reference_argsort():
    """A non-match at exactly a match's distance: the order is np.argsort's (quicksort), as in the reference."""
    dist = np.array([[0.5, 0.5, 0.2, 0.5, 0.9, 0.5]], dtype=np.float32)
    q_pids, g_pids = np.array([1]), np.array([2, 1, 3, 2, 1, 4])
    q_cams, g_cams = np.array([0]), np.array([1, 1, 1, 1, 1, 1])
    cmc, ap, inp = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams)
    order = np.argsort(dist[0])
    positions = np.flatnonzero(g_pids[order] == 1)
    np.testing.assert_allclose(ap, [np.mean(np.arange(1, 3) / (positions + 1.0))])
    np.testing.assert_allclose(inp, [2 / (positions[-1] + 1.0)])
    np.testing.assert_array_equal(cmc[:positions[0]], 0)
    np.testing.assert_array_equal(cmc[positions[0]:], 1)


@pytest.mark.parametrize("block_rows", [1, 3, 16])
def test_chunking_gives_identical_results(block_rows):
    dist, qp, gp, qc, gc = random_problem(7, ties=True)
    whole = rank_queries(dist, qp, gp, qc, gc, collect_roc=True)
    part = rank_queries(dist, qp, gp, qc, gc, collect_roc=True, block_rows=block_rows)
    for name in ("cmc", "all_AP", "all_INP", "valid", "roc_pos", "roc_neg"):
        np.testing.assert_array_equal(getattr(part, name), getattr(whole, name), err_msg=name)


def test_evaluator_block_size_does_not_change_results():
    data = features_problem(11)
    base = make_evaluator(*data).evaluate()
    ng = len(data[3])
    for opts in (["TEST.DIST_BLOCK_MB", 2.0 * ng * 4 / 2 ** 20],
                 ["TEST.DIST_BLOCK_MB", 1.0 * ng * 4 / 2 ** 20, "TEST.METRIC", "euclidean"]):
        tiny = make_evaluator(*data, opts=opts).evaluate()
        ref = make_evaluator(*data, opts=opts[2:]).evaluate()
        assert tiny == ref
    assert base == make_evaluator(*data, opts=["TEST.DIST_BLOCK_MB", 1e-4]).evaluate()


@pytest.mark.parametrize("tile", [compute_dist.MATMUL_TILE, 8])
def test_feature_distance_blocks_equal_full_matrix(monkeypatch, tile):
    """Rows are multiplied in tiles at fixed positions: any cut into blocks gives bit-identical distances."""
    monkeypatch.setattr(compute_dist, "MATMUL_TILE", tile)
    q, g = features_problem(2)[:2]
    for metric in ("cosine", "euclidean"):
        rows = FeatureDistance(q, g, metric)
        full = rows.full()
        for block_rows in (1, 3, 5, 30):
            stacked = np.concatenate([b for _, b in rows.blocks(block_rows=block_rows)])
            np.testing.assert_array_equal(stacked, full)
        np.testing.assert_array_equal(rows.rows(9, 13), full[9:13])
    qn, gn = normalize(q), normalize(g)
    np.testing.assert_allclose(build_dist(q, g, "cosine"), 1 - qn @ gn.T, atol=1e-6)
    sq = ((q[:, None, :].astype(np.float64) - g[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(build_dist(q, g, "euclidean"), sq, rtol=1e-4, atol=1e-4)


def test_jaccard_rows_independent_of_pair_budget():
    q, g = features_problem(4)[:2]
    jac = JaccardDistance(normalize(q), normalize(g), k1=6, k2=3)
    full = jac.rows(0, q.shape[0])
    for budget in (1, 50, 1000):
        small = jac._v.jaccard_rows(0, q.shape[0], col_start=q.shape[0], clip_negative=True, max_pairs=budget)
        np.testing.assert_array_equal(small, full)
    assert full.min() >= 0 and full.max() <= 1


def test_rows_per_block_bounds_memory():
    assert rows_per_block(82161, 256) * 82161 * 4 <= 256 * 2 ** 20
    assert rows_per_block(10 ** 9, 1) == 1
    with pytest.raises(ValueError, match="positive"):
        rows_per_block(10, 0)


# ----------------------------------------------------------------------------------------------------------------
# CUHK03 classic single-shot

def test_cuhk03_single_shot_by_hand():
    """Query pid 1 (cam 0). Kept ranking: pid2@0.1, pid1@0.5, pid3@0.7, pid2@0.9 (pid1@0.05 in cam 0 is junk).
    Per repeat one image per identity is drawn, in first-appearance order pid2 ([0, 3]), pid1 ([1]), pid3 ([2]):
    if pid2's draw is position 3 the true match is first (CMC@1 = 1), otherwise second."""
    dist = np.array([[0.1, 0.5, 0.7, 0.9, 0.05]], dtype=np.float32)
    g_pids, g_cams = np.array([2, 1, 3, 2, 1]), np.array([0, 1, 1, 1, 0])
    seed = 1234
    cmc, ap, inp = evaluate_rank(dist, np.array([1]), g_pids, np.array([0]), g_cams, use_metric_cuhk03=True,
                                 seed=seed)
    rng = np.random.RandomState(seed)
    first = 0
    for _ in range(10):
        first += rng.choice([0, 3]) == 3
        rng.choice([1])
        rng.choice([2])
    assert cmc.shape == (5,)  # max_rank = gallery size (5); 3 identities sampled, padded with the last value
    np.testing.assert_allclose(cmc, np.array([first / 10, 1, 1, 1, 1], dtype=np.float32))
    assert 0 < first < 10  # this seed exercises both outcomes
    np.testing.assert_allclose(ap, [0.5])  # full ranking: the only true match is second
    np.testing.assert_allclose(inp, [0.5])


def test_cuhk03_equals_market_when_every_identity_has_one_kept_image():
    rng = np.random.default_rng(0)
    g_pids = np.arange(30)
    g_cams = np.ones(30, dtype=np.int64)
    q_pids = rng.permutation(30)[:10]
    q_cams = np.zeros(10, dtype=np.int64)
    dist = rng.random((10, 30)).astype(np.float32)
    market = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams)
    cuhk = evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, use_metric_cuhk03=True, seed=5)
    for a, b in zip(market, cuhk):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_cuhk03_without_seed_uses_numpy_global_rng():
    dist, qp, gp, qc, gc = random_problem(8, num_q=10, num_g=60, num_ids=6)
    seeded = evaluate_rank(dist, qp, gp, qc, gc, use_metric_cuhk03=True, seed=77)
    state = np.random.get_state()
    try:
        np.random.seed(77)
        unseeded = evaluate_rank(dist, qp, gp, qc, gc, use_metric_cuhk03=True)
    finally:
        np.random.set_state(state)
    np.testing.assert_array_equal(seeded[0], unseeded[0])
    other = evaluate_rank(dist, qp, gp, qc, gc, use_metric_cuhk03=True, seed=78)
    assert not np.array_equal(seeded[0], other[0])


# ----------------------------------------------------------------------------------------------------------------
# ROC curve (sklearn semantics, checked against its algorithm written out)

def sklearn_roc(y_true, y_score, drop_intermediate=True):
    order = np.argsort(y_score, kind="mergesort")[::-1]
    y_score, y_true = y_score[order], (y_true[order] == 1)
    distinct = np.where(np.diff(y_score))[0]
    idx = np.r_[distinct, y_true.size - 1]
    tps = np.cumsum(y_true, dtype=np.float64)[idx]
    fps = 1 + idx - tps
    thresholds = y_score[idx]
    if drop_intermediate and len(fps) > 2:
        keep = np.where(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])[0]
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    tps, fps = np.r_[0, tps], np.r_[0, fps]
    return fps / fps[-1], tps / tps[-1], np.r_[np.inf, thresholds]


@pytest.mark.parametrize("drop", [True, False])
def test_roc_curve_matches_sklearn_algorithm(drop):
    rng = np.random.default_rng(9)
    labels = rng.integers(0, 2, 500)
    scores = (np.round(rng.random(500) * 30) / 30 + 0.2 * labels).astype(np.float32)
    for got, want in zip(roc_curve(labels, scores, drop), sklearn_roc(labels, scores, drop)):
        np.testing.assert_array_equal(got, want)


def test_roc_curve_rejects_bad_labels():
    with pytest.raises(ValueError, match="binary labels"):
        roc_curve(np.array([0, 2]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="NaN"):
        roc_curve(np.array([0, 1]), np.array([0.1, np.nan]))


# ----------------------------------------------------------------------------------------------------------------
# bad input

def test_empty_query_or_gallery_is_an_error():
    q, g, qp, gp, qc, gc = features_problem(1)
    feats, pids, cams = np.concatenate([q, g]), np.concatenate([qp, gp]), np.concatenate([qc, gc])
    cfg = get_cfg()
    with pytest.raises(ValueError, match=r"'market'.*query set is empty"):
        feed(ReidEvaluator(cfg, 0, dataset_name="market"), feats, pids, cams).evaluate()
    with pytest.raises(ValueError, match=r"'market'.*gallery set is empty"):
        feed(ReidEvaluator(cfg, len(feats), dataset_name="market"), feats, pids, cams).evaluate()
    with pytest.raises(ValueError, match="no features were processed"):
        ReidEvaluator(cfg, 3, dataset_name="market").evaluate()
    with pytest.raises(ValueError, match="empty query or gallery"):
        evaluate_rank(np.zeros((0, 5), np.float32), qp[:0], gp[:5], qc[:0], gc[:5])
    with pytest.raises(ValueError, match="empty query or gallery"):
        evaluate_rank(np.zeros((3, 0), np.float32), qp[:3], gp[:0], qc[:3], gc[:0])


def test_all_queries_without_match_is_an_error():
    q, g, qp, gp, qc, gc = features_problem(1)
    absent = qp + 1000
    with pytest.raises(ValueError, match=r"'duke'.*none of the 30 queries"):
        make_evaluator(q, g, absent, gp, qc, gc, name="duke").evaluate()
    with pytest.raises(ValueError, match="none of the 30 queries"):
        evaluate_rank(build_dist(q, g, "cosine"), absent, gp, qc, gc)


def test_queries_without_match_are_skipped_and_counted(caplog):
    q, g, qp, gp, qc, gc = features_problem(6)
    qp = qp.copy()
    absent = [2, 7, 8]
    qp[absent] = 999
    same_cam_only = 11  # the only gallery images of its pid share its camera
    gp, gc = gp.copy(), gc.copy()
    qp[same_cam_only] = 555
    gp[:2], gc[:2] = 555, qc[same_cam_only]
    skipped = sorted(absent + [same_cam_only])
    with caplog.at_level(logging.WARNING):
        ev = make_evaluator(q, g, qp, gp, qc, gc, name="msmt")
        results = ev.evaluate()
    assert ev.summary["num_skipped_query"] == len(skipped)
    assert ev.summary["skipped_query_indices"] == skipped
    assert ev.summary["num_valid_query"] == len(qp) - len(skipped)
    assert any(f"{len(skipped)} of {len(qp)} queries" in r.getMessage() and "msmt" in r.getMessage()
               for r in caplog.records)
    keep = np.setdiff1d(np.arange(len(qp)), skipped)
    assert np.array_equal(query_has_match(qp, gp, qc, gc), np.isin(np.arange(len(qp)), keep))
    only_valid = make_evaluator(q[keep], g, qp[keep], gp, qc[keep], gc).evaluate()
    assert results == only_valid


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features_name_the_dataset(bad):
    q, g, qp, gp, qc, gc = features_problem(1)
    feats = np.concatenate([q, g])
    feats[20, 3] = bad
    paths = np.array([f"/data/img_{i:03d}.jpg" for i in range(len(feats))])
    cfg = get_cfg()
    with pytest.raises(ValueError, match=r"'cuhk03'.*NaN or inf.*img_020\.jpg"):
        feed(ReidEvaluator(cfg, len(qp), dataset_name="cuhk03"), feats, np.concatenate([qp, gp]),
             np.concatenate([qc, gc]), paths=paths)
    with pytest.raises(ValueError, match="NaN or inf"):
        evaluate_rank(np.full((2, 3), bad, np.float32), qp[:2], gp[:3], qc[:2], gc[:3])


def test_inconsistent_inputs_are_rejected():
    q, g, qp, gp, qc, gc = features_problem(1)
    dist = build_dist(q, g, "cosine")
    with pytest.raises(ValueError, match="g_pids has 199 entries"):
        evaluate_rank(dist, qp, gp[:-1], qc, gc)
    with pytest.raises(ValueError, match="TEST.METRIC"):
        make_evaluator(q, g, qp, gp, qc, gc, opts=["TEST.METRIC", "jaccard"]).evaluate()
    with pytest.raises(ValueError, match="Expected metrics"):
        build_dist(q, g, "manhattan")
    with pytest.raises(ValueError, match="k1"):
        build_dist(q, g, "jaccard")
    with pytest.raises(ValueError, match="k1 and k2"):
        build_dist(q, g, "jaccard", k1=10 ** 6, k2=6)
    with pytest.raises(ValueError, match="qe_k"):
        aqe(q, g, qe_k=0)
    with pytest.raises(ValueError, match="q_q_dist"):
        re_ranking(dist, dist, dist)
    cfg = get_cfg()
    with pytest.raises(ValueError, match=r"'viper'.*features of shape"):
        ReidEvaluator(cfg, 1, dataset_name="viper").process({"targets": qp[:3], "camids": qc[:3]}, q[:2])
    ev = ReidEvaluator(cfg, 1, dataset_name="grid")
    ev.process({"targets": qp[:2], "camids": qc[:2]}, q[:2])
    with pytest.raises(ValueError, match=r"'grid'.*8-d features, earlier batches 16-d"):
        ev.process({"targets": qp[:2], "camids": qc[:2]}, q[:2, :8])


# ----------------------------------------------------------------------------------------------------------------
# results printing / saving

def test_print_csv_format_pipe_table(caplog):
    results = OrderedDict([("Rank-1", 94.2134), ("Rank-5", 98.1), ("Rank-10", 98.8456), ("mAP", 85.9449),
                           ("mINP", 59.8), ("metric", 90.0791), ("dataset", "Market1501")])
    with caplog.at_level(logging.INFO):
        table = print_csv_format(results)
    assert "dataset" not in results  # popped, as FastReID's printer does
    lines = table.splitlines()
    assert len(lines) == 3
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    assert cells[0] == ["Dataset", "Rank-1", "Rank-5", "Rank-10", "mAP", "mINP", "metric"]
    assert all(re.fullmatch(r":-+", c) for c in cells[1])  # left-aligned columns
    assert cells[2] == ["Market1501"] + [f"{v:.2f}" for v in results.values()]
    assert any(table in r.getMessage() for r in caplog.records)


def test_print_csv_format_one_row_per_dataset():
    a = OrderedDict([("Rank-1", 1.0), ("mAP", 2.0)])
    b = OrderedDict([("Rank-1", 3.0), ("mAP", 4.5)])
    rows = print_csv_format(OrderedDict([("A", a), ("B", b)])).splitlines()
    assert [r.split("|")[1].strip() for r in rows[2:]] == ["A", "B"]
    assert rows[3].split("|")[3].strip() == "4.50"
    with pytest.raises(ValueError, match="metrics"):
        print_csv_format(OrderedDict([("A", a), ("B", OrderedDict([("mAP", 1.0)]))]))
    with pytest.raises(ValueError, match="non-empty"):
        print_csv_format({})


def test_write_results_json(tmp_path):
    import json
    path = write_results_json({"Market1501": {"mAP": np.float64(85.5), "Rank-1": np.float32(94.0)}},
                              str(tmp_path), extra={"summary": {"num_skipped_query": np.int64(3)}})
    with open(path) as f:
        data = json.load(f)
    assert data == {"Market1501": {"mAP": 85.5, "Rank-1": 94.0}, "summary": {"num_skipped_query": 3}}


# ----------------------------------------------------------------------------------------------------------------
# inference loop

class _RecordingEvaluator(DatasetEvaluator):
    def reset(self):
        self.inputs, self.outputs = [], []

    def process(self, inputs, outputs):
        self.inputs.append(inputs)
        self.outputs.append(outputs)

    def evaluate(self):
        return {"batches": len(self.outputs)}


def _make_model():
    import mindspore as ms
    from mindspore import nn

    class ColumnMeans(nn.Cell):
        """Normalised images' per-column means (not flip invariant); records its training mode at every op-by-op
        call."""

        def __init__(self):
            super().__init__()
            self.modes = []

        def construct(self, images):
            self.modes.append(self.training)
            x = (images - 100.0) / 50.0
            return x.mean(axis=2).reshape(x.shape[0], -1)

    return ColumnMeans()


def _expected_features(images):
    x = (images - 100.0) / 50.0
    return x.mean(axis=2).reshape(images.shape[0], -1)


@pytest.mark.parametrize("initially_training", [True, False])
@pytest.mark.parametrize("flip,compile", [(False, False), (True, False), (True, True)])
def test_inference_on_dataset_mode_and_flip(initially_training, flip, compile):
    rng = np.random.default_rng(0)
    batches = [{"images": rng.integers(0, 256, (n, 3, 4, 5)).astype(np.float32),
                "targets": np.arange(n), "camids": np.zeros(n, np.int64)} for n in (3, 2, 4)]
    originals = [b["images"].copy() for b in batches]
    model = _make_model()
    model.set_train(initially_training)
    evaluator = _RecordingEvaluator()
    results = inference_on_dataset(model, batches, evaluator, flip_test=flip, compile=compile)
    assert results == {"batches": 3}
    assert model.training is initially_training
    if not compile:
        assert model.modes and not any(model.modes)
        assert len(model.modes) == 3 * (2 if flip else 1)
    for batch, original, out in zip(batches, originals, evaluator.outputs):
        np.testing.assert_array_equal(batch["images"], original)  # the loader's batch is left untouched
        expected = _expected_features(original)
        if flip:
            expected = (expected + _expected_features(original[..., ::-1])) / 2
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_inference_logs_progress_with_eta(monkeypatch, caplog):
    from fastreid_ms.evaluation import evaluator as evaluator_module

    monkeypatch.setattr(evaluator_module, "_LOG_PERIOD_S", 0.0)
    batches = [{"images": np.full((2, 3, 4, 5), 7.0, np.float32)} for _ in range(8)]
    with caplog.at_level(logging.INFO):
        inference_on_dataset(_make_model(), batches, _RecordingEvaluator(), compile=False)
    progress = [r.getMessage() for r in caplog.records if "Inference done" in r.getMessage()]
    assert progress and progress[-1].startswith("Inference done 8/8.") and "ETA=0:00:00" in progress[-1]
    assert any("16 images in 8 batches" in r.getMessage() for r in caplog.records)


def test_inference_restores_mode_when_the_model_fails():
    class Broken:
        training = True

        def set_train(self, mode=True):
            self.training = mode

        def __call__(self, images):
            raise RuntimeError("boom")

    model = Broken()
    with pytest.raises(RuntimeError, match="boom"):
        inference_on_dataset(model, [{"images": np.zeros((1, 3, 2, 2), np.float32)}], _RecordingEvaluator(),
                             compile=False)
    assert model.training is True


# ----------------------------------------------------------------------------------------------------------------
# several processes: features gathered in rank order, only the main process evaluates

def test_multi_process_gather(monkeypatch):
    q, g, qp, gp, qc, gc = features_problem(12)
    feats, pids, cams = np.concatenate([q, g]), np.concatenate([qp, gp]), np.concatenate([qc, gc])
    expected = make_evaluator(q, g, qp, gp, qc, gc).evaluate()
    world = 2
    local = threading.local()
    barrier = threading.Barrier(world)
    slots = [None] * world

    def all_reduce_sum(array):
        slots[local.rank] = np.asarray(array)
        barrier.wait()
        total = sum(slots)
        barrier.wait()
        return total

    monkeypatch.setattr(comm, "get_world_size", lambda: world)
    monkeypatch.setattr(comm, "get_rank", lambda: local.rank)
    monkeypatch.setattr(comm, "all_reduce_sum", all_reduce_sum)
    cut = 101  # contiguous shards, as the test sampler gives them
    shards = [slice(0, cut), slice(cut, len(feats))]
    outcome = [None] * world

    def run(rank):
        local.rank = rank
        ev = ReidEvaluator(get_cfg(), len(qp), dataset_name="dist")
        sl = shards[rank]
        feed(ev, feats[sl], pids[sl], cams[sl], batch=23)
        outcome[rank] = ev.evaluate()

    threads = [threading.Thread(target=run, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert outcome[0] == expected
    assert outcome[1] == {}
