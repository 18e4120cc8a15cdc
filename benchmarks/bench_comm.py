"""Per-step communication of data-parallel training, 2 processes (msrun workers) on ``--device`` (default CPU).

Each worker builds the DR50 Baseline of ``configs/bagtricks_DR50_mix.yml`` (real mix class counts) and times, as
compiled graphs and medians of ``--runs`` calls after a first (compiling) one:

* ``fused_allreduce_s``: the gradient reduction the training pass runs, one flattened all-reduce of all gradients
  (``fastreid_ms.modeling.passes.FusedAllReduceSum``);
* ``per_parameter_allreduce_s``: the same reduction with one all-reduce per parameter (for comparison);
* ``loss_reduce_s``: the per-step reduction of the logged losses (``comm.all_reduce_sum`` of 13 values);
* ``bn_broadcast_s``: ``comm.broadcast_cell_state`` (every process gets rank 0's weights and BN statistics; run
  before each evaluation).

The parent process starts the workers through ``fastreid_ms.engine.launch`` (msrun), prints rank 0's figures and
ends with one JSON line.

Usage: python benchmarks/bench_comm.py [--runs 5] [--device cpu] [--dist-url tcp://127.0.0.1:8128]
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import mindspore  # noqa: E402
import numpy as np  # noqa: E402
from mindspore import Tensor, ops  # noqa: E402
from mindspore.ops import composite as C  # noqa: E402
from mindspore.ops import functional as F  # noqa: E402

from fastreid_ms.config import get_cfg  # noqa: E402
from fastreid_ms.engine.launch import launch  # noqa: E402
from fastreid_ms.modeling import build_model  # noqa: E402
from fastreid_ms.modeling.passes import FusedAllReduceSum  # noqa: E402
from fastreid_ms.utils import comm  # noqa: E402
from fastreid_ms.utils.env import set_device  # noqa: E402

WORLD_SIZE = 2
_PER_PARAMETER = C.MultitypeFuncGraph("per_parameter_sum")


@_PER_PARAMETER.register("Function", "Tensor")
def _per_parameter(all_reduce, grad):
    return all_reduce(grad)


def timed(fn, runs):
    """(seconds of the first call, median of ``runs`` further calls); each call ends with a host read."""
    times = []
    for _ in range(runs + 1):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times[0], statistics.median(times[1:])


def worker(args):
    cfg = get_cfg()
    cfg.merge_from_file(str(REPO_ROOT / "configs" / "bagtricks_DR50_mix.yml"))
    cfg.merge_from_list(["MODEL.BACKBONE.PRETRAIN", "False", "MODEL.DEVICE", args.device, "MODEL.HEADS.NUM_CLASSES1",
                         "11934", "MODEL.HEADS.NUM_CLASSES2", "751", "MODEL.HEADS.NUM_CLASSES3", "1041"])
    set_device(cfg.MODEL.DEVICE)
    model = build_model(cfg)
    params = [p for p in model.trainable_params()]
    rng = np.random.default_rng(comm.get_rank())
    grads = mindspore.mutable(tuple(Tensor(rng.standard_normal(p.shape).astype(np.float32)) for p in params))
    fused = FusedAllReduceSum([p.shape for p in params])
    per_parameter = C.HyperMap()
    all_reduce = ops.AllReduce()

    @mindspore.jit
    def fused_sum(tensors):
        return fused(tensors)

    @mindspore.jit
    def per_parameter_sum(tensors):
        return per_parameter(F.partial(_PER_PARAMETER, all_reduce), tensors)

    losses = np.arange(13, dtype=np.float32)
    results = {}
    for name, fn in (("fused_allreduce_s", lambda: fused_sum(grads)[0].asnumpy()),
                     ("per_parameter_allreduce_s", lambda: per_parameter_sum(grads)[0].asnumpy()),
                     ("loss_reduce_s", lambda: comm.all_reduce_sum(losses)),
                     ("bn_broadcast_s", lambda: comm.broadcast_cell_state(model))):
        first, median = timed(fn, args.runs)
        results[name] = round(median, 4)
        results[name.replace("_s", "_first_s")] = round(first, 3)
    results.update(world_size=comm.get_world_size(), parameters=len(params),
                   gradient_mb=round(sum(int(np.prod(p.shape)) for p in params) * 4 / 2 ** 20, 1))
    if comm.is_main_process():
        Path(args.result_file).write_text(json.dumps(results))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dist-url", default="tcp://127.0.0.1:8128")
    parser.add_argument("--device", default="cpu", help="MODEL.DEVICE: cpu, gpu or ascend")
    parser.add_argument("--result-file", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.result_file:
        launch(worker, WORLD_SIZE, dist_url=args.dist_url, args=(args,))
        return
    with tempfile.TemporaryDirectory() as scratch:
        result_file = Path(scratch) / "result.json"
        sys.argv += ["--result-file", str(result_file)]
        launch(worker, WORLD_SIZE, dist_url=args.dist_url, args=(args,))
        results = json.loads(result_file.read_text())
    print(f"{results['world_size']} processes, {results['parameters']} gradients ({results['gradient_mb']} MB), "
          f"median of {args.runs} calls after the first:")
    for key in ("fused_allreduce_s", "per_parameter_allreduce_s", "loss_reduce_s", "bn_broadcast_s"):
        print(f"  {key:<28} {results[key]:8.4f} s   (first call {results[key.replace('_s', '_first_s')]:.2f} s)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
