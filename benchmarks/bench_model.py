"""Speed of the DR50 Baseline (bagtricks_DR50_mix) on the current MindSpore device (CPU by default).

Measures, at 3x256x128 with a batch of 16 and the real class counts of the mix setting (11934, 751, 1041):
* ``eval_forward_s``: one eval-mode forward (features);
* ``train_step_s``: one basic training step = forward + backward of the summed loss dict (value_and_grad) + SGD
  (momentum 0.9, weight decay 5e-4) over every trainable parameter;
median of ``--runs`` timed runs after ``--warmup`` untimed ones, and the peak resident memory of the process.
The last output line is one JSON object with these figures.

Usage: python benchmarks/bench_model.py [--batch 16] [--runs 3] [--warmup 1] [--device cpu] [KEY VALUE ...]
(trailing KEY VALUE pairs override the config, e.g. MODEL.CPU_CONV native).
"""
import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import mindspore as ms  # noqa: E402
from mindspore.experimental.optim import SGD  # noqa: E402

from fastreid_ms.config import get_cfg  # noqa: E402
from fastreid_ms.layers.conv import get_cpu_conv_impl, probe_cpu_conv_impl, set_cpu_conv_impl  # noqa: E402
from fastreid_ms.modeling import build_model, opt_setting  # noqa: E402

NUM_CLASSES = (11934, 751, 1041)


def make_batch(batch, height, width, num_classes, rng):
    """A PK batch (2 images per id) with ids spread over the three domains' label ranges."""
    bounds = np.cumsum((0,) + tuple(num_classes))
    ids, domains = [], []
    for i in range(batch // 2):
        d = i % 3
        ids += [rng.integers(bounds[d], bounds[d + 1])] * 2
        domains += [d] * 2
    return {
        "images": rng.integers(0, 256, size=(batch, 3, height, width)).astype(np.float32),
        "targets": np.array(ids, dtype=np.int64),
        "camids": np.zeros(batch, dtype=np.int64),
        "domainids": np.array(domains, dtype=np.int64),
    }


def timed(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="CPU")
    parser.add_argument("opts", nargs=argparse.REMAINDER)
    args = parser.parse_args()

    ms.set_device(args.device.upper())
    cfg = get_cfg()
    cfg.merge_from_file(str(REPO_ROOT / "configs" / "bagtricks_DR50_mix.yml"))
    cfg.MODEL.BACKBONE.PRETRAIN = False
    cfg.MODEL.HEADS.NUM_CLASSES1, cfg.MODEL.HEADS.NUM_CLASSES2, cfg.MODEL.HEADS.NUM_CLASSES3 = NUM_CLASSES
    cfg.merge_from_list(args.opts)
    set_cpu_conv_impl(cfg.MODEL.CPU_CONV)
    height, width = cfg.INPUT.SIZE_TRAIN

    model = build_model(cfg)
    batch = make_batch(args.batch, height, width, NUM_CLASSES, np.random.default_rng(0))
    params = model.trainable_params()
    optimizer = SGD(params, lr=0.04, momentum=0.9, weight_decay=5e-4)
    opt = opt_setting("basic")

    def eval_forward():
        model.set_train(False)
        model(batch).asnumpy()

    def objective():
        losses = model(batch, opt)
        return sum(losses.values())

    grad_fn = ms.value_and_grad(objective, None, params)

    def train_step():
        model.set_train(True)
        loss, grads = grad_fn()
        optimizer(grads)
        loss.asnumpy()
        params[0].asnumpy()

    eval_s, eval_all = timed(eval_forward, args.runs, args.warmup)
    train_s, train_all = timed(train_step, args.runs, args.warmup)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if args.device.upper() == "CPU":
        mode = get_cpu_conv_impl()
        print(f"CPU convolution: MODEL.CPU_CONV={mode}" + (f" -> {probe_cpu_conv_impl()}" if mode == "auto" else ""))
    print(f"eval forward runs (s): {[round(t, 3) for t in eval_all]}")
    print(f"train step runs (s): {[round(t, 3) for t in train_all]}")
    print(json.dumps({"eval_forward_s": round(eval_s, 4), "train_step_s": round(train_s, 4),
                      "peak_rss_mb": round(peak_rss_mb, 1)}))


if __name__ == "__main__":
    main()
