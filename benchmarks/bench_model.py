"""Speed of the DR50 Baseline (bagtricks_DR50_mix) through the code path users run, on the current MindSpore device.

Builds the model, optimizers and ``MetaLearningTrainer`` exactly as ``DefaultTrainer`` does (project optimizers,
compiled passes unless ``MODEL.COMPILE False``) and feeds the trainer fixed synthetic batches (no data loading):

* ``eval_forward_s``: one evaluation forward of ``--batch`` images (the compiled eval pass);
* ``basic_step_s``: one basic training step (mixed batch of ``--batch``: losses, gradients, main SGD update);
* ``meta_iteration_s``: one full meta-learning iteration = a basic step + a meta step (meta-train on two domains of
  ``--batch / 2`` images each, fast weights, meta-test on ``--batch / 2`` images, meta SGD update);

medians of ``--runs`` timed runs after the first (compiling) call of each, whose extra time is reported as
``compile_s`` (the sum over the passes). Default setting: 3x256x128 images, batch 16, the real class counts of the mix
setting (11934, 751, 1041), one replica (``SOLVER.DP_REPLICAS 1``: the recipe's 4 replicas cut its batch of 64 into
4 chunks of 16, each one the work of a batch-16 step timed here; ``SOLVER.DP_REPLICAS R`` times R chunks of
``--batch / R``); ``INPUT.SIZE_TRAIN "[64, 32]"`` gives the demo's image size. It then profiles one meta
iteration by parts (each pass, the fast-weight writes, each optimizer update) and prints them sorted by time, runs
one more meta iteration under ``mindspore.Profiler`` and prints the operator types that took the most time (on CPU,
from the profiler's ``cpu_op_type_info`` table; ``--profile-dir`` keeps the raw profile), and ends with one JSON
line: ``eval_forward_s``, ``basic_step_s``, ``meta_iteration_s``, ``peak_rss_mb``, ``compile_s``, ``mode``.

Usage: python benchmarks/bench_model.py [--batch 16] [--runs 3] [--classes 11934,751,1041] [--profile-dir DIR]
       [KEY VALUE ...]
"""
import argparse
import csv
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import mindspore  # noqa: E402

from fastreid_ms.config import get_cfg  # noqa: E402
from fastreid_ms.engine.meta_train_loop import MetaLearningTrainer, meta_step_sizes, sum_gradients  # noqa: E402
from fastreid_ms.modeling import build_model  # noqa: E402
from fastreid_ms.modeling.passes import EvalPass  # noqa: E402
from fastreid_ms.solver import build_optimizer  # noqa: E402
from fastreid_ms.utils.env import set_device  # noqa: E402
from fastreid_ms.utils.events import EventStorage, max_memory_mb  # noqa: E402
from fastreid_ms.utils.onednn import onednn_isa_decision  # noqa: E402


def make_batch(batch, height, width, num_classes, domains, rng):
    """A PK batch of ``batch`` images (2 per id, ``batch // 2`` ids dealt to the given source domains in turn, each
    id drawn from its domain's label range)."""
    bounds = np.cumsum((0,) + tuple(num_classes))
    pair_domains = [domains[i % len(domains)] for i in range(batch // 2)]
    ids = {d: iter(rng.choice(np.arange(bounds[d], bounds[d + 1]), size=pair_domains.count(d), replace=False))
           for d in domains}
    targets = np.repeat([next(ids[d]) for d in pair_domains], 2)
    domain_ids = np.repeat(pair_domains, 2)
    n = len(targets)
    return {"images": rng.integers(0, 256, size=(n, 3, height, width)).astype(np.float32),
            "targets": targets.astype(np.int64), "camids": np.zeros(n, dtype=np.int64),
            "domainids": domain_ids.astype(np.int64)}


def timed(fn, runs):
    """(seconds of the first call, median of ``runs`` further calls)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16, help="basic-step batch (meta-test batch: half of it)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--classes", default="11934,751,1041", help="NUM_CLASSES1,2,3")
    parser.add_argument("--profile-dir", default="", help="keep the operator profile here (default: a temporary "
                                                          "folder, removed at the end)")
    parser.add_argument("--top", type=int, default=15, help="operator types to print")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    args = parser.parse_args()
    if args.batch % 4:
        parser.error("--batch must be a multiple of 4 (two domains of PK pairs in the meta-train batch)")

    cfg = get_cfg()
    cfg.merge_from_file(str(REPO_ROOT / "configs" / "bagtricks_DR50_mix.yml"))
    cfg.MODEL.BACKBONE.PRETRAIN = False
    num_classes = tuple(int(c) for c in args.classes.split(","))
    cfg.MODEL.HEADS.NUM_CLASSES1, cfg.MODEL.HEADS.NUM_CLASSES2, cfg.MODEL.HEADS.NUM_CLASSES3 = num_classes
    cfg.SOLVER.DP_REPLICAS = 1
    cfg.merge_from_list(args.opts)
    set_device(cfg.MODEL.DEVICE)
    height, width = cfg.INPUT.SIZE_TRAIN
    rng = np.random.default_rng(0)

    model = build_model(cfg)
    optimizer, _ = build_optimizer(cfg, model)
    optimizer_meta, _ = build_optimizer(cfg, model, flag="meta")
    basic = make_batch(args.batch, height, width, num_classes, (0, 1, 2), rng)
    half = args.batch // 2
    domain_batches = [make_batch(half, height, width, num_classes, (d,), rng) for d in range(3)]
    trainer = MetaLearningTrainer(
        model, itertools.repeat(basic), [itertools.repeat(b) for b in domain_batches], optimizer, optimizer_meta,
        meta_period=cfg.SOLVER.META.PERIOD, first_iter_basic_steps=1,
        adaptor_step_factor=cfg.SOLVER.META.ADAPTOR_STEP_FACTOR,
        zero_grad_keeps_tensors=cfg.SOLVER.ZERO_GRAD_KEEPS_TENSORS, dp_replicas=cfg.SOLVER.DP_REPLICAS,
        seed=0, compile=cfg.MODEL.COMPILE)
    eval_pass = EvalPass(model, compile=cfg.MODEL.COMPILE)

    def eval_forward():
        eval_pass(basic["images"])

    def basic_step():
        trainer.iter = 1
        trainer.run_step()
        optimizer.parameters[0].asnumpy()

    def meta_iteration():
        trainer.iter = cfg.SOLVER.META.PERIOD
        trainer.run_step()
        optimizer.parameters[0].asnumpy()

    with EventStorage(0) as storage:
        eval_first, eval_s = timed(eval_forward, args.runs)
        basic_first, basic_s = timed(basic_step, args.runs)
        meta_first, meta_s = timed(meta_iteration, args.runs)
        compile_s = (eval_first - eval_s) + (basic_first - basic_s) + (meta_first - meta_s)
        parts = profile_meta_iteration(trainer, basic, domain_batches, args.runs)
        with tempfile.TemporaryDirectory() as scratch:
            operators = profile_operators(meta_iteration, args.profile_dir or scratch)
        storage.pop_step_losses()

    mode = "compiled" if cfg.MODEL.COMPILE else "pynative"
    print(f"device {cfg.MODEL.DEVICE}, {mode}; {onednn_isa_decision()[1]}")
    print(f"batch {args.batch} x 3x{height}x{width}, classes {num_classes}")
    print(f"first calls (s): eval {eval_first:.2f}, basic step {basic_first:.2f}, meta iteration {meta_first:.2f}")
    print("one meta iteration by parts (median seconds), slowest first:")
    for name, seconds in sorted(parts.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<28} {seconds:8.4f}")
    if operators:
        total = sum(ms for _, _, ms in operators)
        print(f"operator types in one meta iteration (mindspore.Profiler, {total / 1000:.2f} s of operator time), "
              f"top {args.top}:")
        for op_type, count, ms in operators[:args.top]:
            print(f"  {op_type:<28} {ms / 1000:8.4f} s  {100 * ms / total:5.1f}%  x{count}")
    else:
        print("operator types: the profiler wrote no CPU operator table on this device (see --profile-dir)")
    print(json.dumps({"eval_forward_s": round(eval_s, 4), "basic_step_s": round(basic_s, 4),
                      "meta_iteration_s": round(meta_s, 4), "peak_rss_mb": round(max_memory_mb(), 1),
                      "compile_s": round(compile_s, 2), "mode": mode}))


def profile_meta_iteration(trainer, basic, domain_batches, runs):
    """Median seconds of each part of a meta iteration, run one by one with a host synchronisation after each
    (the parts the trainer chains without synchronising)."""
    mtrain = {k: np.concatenate([domain_batches[0][k], domain_batches[2][k]]) for k in basic}
    mtest = domain_batches[1]
    steps = meta_step_sizes([p.name for p in trainer.weights], trainer.meta_lr)

    def sync(tensors):
        tensors[0].asnumpy()

    state = {}

    def basic_pass():
        state["basic"] = trainer.train_pass(basic, "basic")
        sync(state["basic"][1])

    def basic_update():
        trainer.optimizer.step(state["basic"][1]).asnumpy()

    def mtrain_pass():
        state["mtrain"] = trainer.train_pass(mtrain, "mtrain")
        sync(state["mtrain"][1])

    def mtest_pass_with_fast_weights():
        with trainer.fast_weights(state["mtrain"][1], steps):
            state["mtest"] = trainer.train_pass(mtest, "mtest")
            sync(state["mtest"][1])

    add = mindspore.jit(sum_gradients)

    def meta_update():
        grads = add(mindspore.mutable(state["mtrain"][1]), mindspore.mutable(state["mtest"][1]))
        trainer.optimizer_meta.step(grads).asnumpy()

    parts = {"basic pass (fwd+bwd)": basic_pass, "basic SGD update": basic_update,
             "meta-train pass (fwd+bwd)": mtrain_pass, "meta-test pass + fast weights": mtest_pass_with_fast_weights,
             "meta SGD update (+grad sum)": meta_update}
    return {name: timed(fn, runs)[1] for name, fn in parts.items()}


def profile_operators(fn, output_dir):
    """Run ``fn`` once under ``mindspore.Profiler``; returns [(operator type, calls, total ms)], slowest first,
    from the CPU operator table the profiler writes (empty when there is none, e.g. on GPU/Ascend)."""
    profiler = mindspore.Profiler(output_path=output_dir)
    fn()
    profiler.analyse()
    rows = {}
    for table in Path(output_dir).glob("**/cpu_op_type_info_*.csv"):
        with open(table, newline="") as f:
            for row in csv.DictReader(f):
                count, ms = rows.get(row["op_type"], (0, 0.0))
                rows[row["op_type"]] = (count + int(row["type_occurrences"]),
                                        ms + float(row["total_compute_time"]))
    return sorted(((op, count, ms) for op, (count, ms) in rows.items()), key=lambda r: -r[2])


if __name__ == "__main__":
    main()
