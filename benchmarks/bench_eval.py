"""Speed and memory of fastreid_ms's evaluator on synthetic features of Market-1501 and MSMT17 size.

Each case runs in its own subprocess (so its peak RSS is its own): synthetic float32 features (identity centres plus
Gaussian noise, so that rankings look like a trained model's) are fed to ReidEvaluator batch by batch as
inference_on_dataset would, then ``evaluate()`` is timed (cosine distances + CMC/mAP/mINP, the default config), with
the part spent computing distances (the BLAS matmul) reported separately. Peak RSS includes MindSpore's import (as in a real run) and the features.
The last line of the output is one JSON object with all figures.

    python benchmarks/bench_eval.py                 # both cases
    python benchmarks/bench_eval.py --cases market  # one case
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

CASES = {
    # name: (num_query, num_gallery, num_ids, num_cams)
    "market": (3368, 15913, 751, 6),
    "msmt17": (11659, 82161, 3060, 15),
}
DIM = 2048
BATCH = 512
# per-image noise std against unit-variance identity centres: at Market size this gives about Rank-1 99%,
# mAP 85%, mINP 35% (a trained model's range)
NOISE = 3.2


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _synthetic_batches(num_query, num_gallery, num_ids, num_cams, seed):
    """Yield (features, pids, camids) batches: queries first, then gallery. Every id has gallery images."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((num_ids, DIM), dtype=np.float32)
    q_pids = rng.integers(0, num_ids, num_query)
    g_pids = np.concatenate([np.arange(num_ids), rng.integers(0, num_ids, num_gallery - num_ids)])
    rng.shuffle(g_pids)
    pids = np.concatenate([q_pids, g_pids])
    cams = rng.integers(0, num_cams, pids.size)
    for s in range(0, pids.size, BATCH):
        p = pids[s:s + BATCH]
        noise = rng.standard_normal((p.size, DIM), dtype=np.float32)
        noise *= np.float32(NOISE)
        yield centres[p] + noise, p.astype(np.int64), cams[s:s + BATCH].astype(np.int64)


def run_case(name: str, seed: int) -> dict:
    from fastreid_ms.config import get_cfg
    from fastreid_ms.evaluation import ReidEvaluator
    from fastreid_ms.utils import comm
    from fastreid_ms.utils.compute_dist import FeatureDistance

    comm.get_world_size()  # imports MindSpore, as in a real run, so that evaluate() is timed without that import

    nq, ng, n_ids, n_cams = CASES[name]
    cfg = get_cfg()
    evaluator = ReidEvaluator(cfg, nq, dataset_name=f"synthetic-{name}")
    t = time.perf_counter()
    for feats, pids, cams in _synthetic_batches(nq, ng, n_ids, n_cams, seed):
        evaluator.process({"targets": pids, "camids": cams}, feats)
    gen_s = time.perf_counter() - t
    rss_features = _peak_rss_mb()

    spent = [0.0]
    rows = FeatureDistance.rows

    def timed_rows(self, start, stop):  # time spent computing distances inside evaluate()
        t0 = time.perf_counter()
        out = rows(self, start, stop)
        spent[0] += time.perf_counter() - t0
        return out

    FeatureDistance.rows = timed_rows
    t = time.perf_counter()
    results = evaluator.evaluate()
    eval_s = time.perf_counter() - t
    FeatureDistance.rows = rows
    rss_eval = _peak_rss_mb()
    return {
        "case": name, "num_query": nq, "num_gallery": ng, "dim": DIM,
        "features_mb": round((nq + ng) * DIM * 4 / 2 ** 20, 1),
        "evaluate_s": round(eval_s, 2), "distance_s": round(spent[0], 2),
        "ranking_and_rest_s": round(eval_s - spent[0], 2),
        "peak_rss_mb": round(rss_eval, 1), "peak_rss_before_evaluate_mb": round(rss_features, 1),
        "feature_generation_s": round(gen_s, 2),
        "Rank-1": round(results["Rank-1"], 2), "mAP": round(results["mAP"], 2), "mINP": round(results["mINP"], 2),
        "block_mb": cfg.TEST.DIST_BLOCK_MB,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=list(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(args.child, args.seed)))
        return
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=repo + os.pathsep + os.environ.get("PYTHONPATH", ""))
    figures = {"cpu_count": os.cpu_count(), "load_avg_1min_before": round(os.getloadavg()[0], 2)}
    for case in args.cases:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", case, "--seed", str(args.seed)],
                              env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stderr)
            raise SystemExit(f"benchmark case {case} failed with exit code {proc.returncode}")
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{case}: {result}")
        figures[case] = result
    figures["load_avg_1min_after"] = round(os.getloadavg()[0], 2)  # other processes sharing the CPUs skew timings
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
