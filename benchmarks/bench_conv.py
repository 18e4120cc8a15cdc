"""Per-layer CPU convolution timings: native ``ops.conv2d`` vs fastreid_ms's im2col + matmul implementation.

Shapes are those of ResNet-50 / DR50 at batch 16 x 256x128 (the stem, the 3x3 convs of every stage, DR50's grouped
3x3 expert convs with groups 4, and representative 1x1 convs incl. strided and grouped ones). For each layer and
implementation it reports the best of ``--repeats`` runs (after one warm-up) of the forward alone and of forward +
backward (gradients wrt input and weight; the implementations alternate run by run), then the auto-probe decision for
this machine and the load average around the run. The last line of the output is one JSON object with all figures.

    python benchmarks/bench_conv.py [--batch 16] [--repeats 3] [--only stem,3x3_64]
"""
import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mindspore  # noqa: E402
from mindspore import Tensor  # noqa: E402

from fastreid_ms.layers import conv  # noqa: E402

# name: (in_channels, out_channels, input H, input W, kernel, stride, padding, groups)
LAYERS = {
    "stem_7x7_s2": (3, 64, 256, 128, 7, 2, 3, 1),
    "3x3_64": (64, 64, 64, 32, 3, 1, 1, 1),
    "3x3_128_s2": (128, 128, 64, 32, 3, 2, 1, 1),
    "3x3_128": (128, 128, 32, 16, 3, 1, 1, 1),
    "3x3_256": (256, 256, 16, 8, 3, 1, 1, 1),
    "3x3_512": (512, 512, 16, 8, 3, 1, 1, 1),
    "3x3_64_g4": (64, 64, 64, 32, 3, 1, 1, 4),
    "3x3_128_g4": (128, 128, 32, 16, 3, 1, 1, 4),
    "3x3_256_g4": (256, 256, 16, 8, 3, 1, 1, 4),
    "3x3_512_g4": (512, 512, 16, 8, 3, 1, 1, 4),
    "1x1_64_256": (64, 256, 64, 32, 1, 1, 0, 1),
    "1x1_256_64": (256, 64, 64, 32, 1, 1, 0, 1),
    "1x1_256_512_s2": (256, 512, 64, 32, 1, 2, 0, 1),
    "1x1_512_2048": (512, 2048, 16, 8, 1, 1, 0, 1),
    "1x1_2048_512": (2048, 512, 16, 8, 1, 1, 0, 1),
    "1x1_1024_64_g4": (1024, 64, 64, 32, 1, 1, 0, 4),
    "1x1_64_1024_g4": (64, 1024, 64, 32, 1, 1, 0, 4),
}


def _cpu_description():
    """CPU model name and whether it has AVX-512 (from /proc/cpuinfo where available)."""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return platform.processor() or platform.machine(), None
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")),
                 platform.machine())
    return model, "avx512f" in info


def _sync(result):
    for t in result if isinstance(result, (tuple, list)) else (result,):
        t.asnumpy()


def _timed(fn):
    start = time.perf_counter()
    _sync(fn())
    return time.perf_counter() - start


def bench_layer(spec, batch, repeats):
    """Best-of-``repeats`` seconds per implementation for forward and forward+backward; the two implementations
    alternate run by run so that they see the same background load."""
    cin, cout, h, w, k, stride, padding, groups = spec
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((batch, cin, h, w)).astype(np.float32))
    weight = Tensor((rng.standard_normal((cout, cin // groups, k, k)) * 0.05).astype(np.float32))

    def forward(a, b):
        return conv.conv2d(a, b, None, stride, padding, 1, groups)

    grad_fn = mindspore.grad(lambda a, b: forward(a, b).sum(), grad_position=(0, 1))
    jobs = {"fwd": lambda: forward(x, weight), "fwd_bwd": lambda: grad_fn(x, weight)}
    best = {impl: {key: float("inf") for key in jobs} for impl in conv.IMPLEMENTATIONS}
    for round_index in range(repeats + 1):          # round 0 warms up
        for impl in conv.IMPLEMENTATIONS:
            conv.set_cpu_conv_impl(impl)
            for key, job in jobs.items():
                elapsed = _timed(job)
                if round_index:
                    best[impl][key] = min(best[impl][key], elapsed)
    return {impl: {key: round(t, 4) for key, t in r.items()} for impl, r in best.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated layer names (default: all)")
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(LAYERS)
    unknown = [n for n in names if n not in LAYERS]
    if unknown:
        parser.error(f"unknown layer name(s) {unknown}; known: {', '.join(LAYERS)}")

    load_before = os.getloadavg()
    figures = {}
    print(f"{'layer':<18} {'native fwd':>10} {'matmul fwd':>10} {'native f+b':>10} {'matmul f+b':>10}")
    for name in names:
        r = bench_layer(LAYERS[name], args.batch, args.repeats)
        figures[name] = r
        print(f"{name:<18} {r['native']['fwd']:>10.4f} {r['matmul']['fwd']:>10.4f} "
              f"{r['native']['fwd_bwd']:>10.4f} {r['matmul']['fwd_bwd']:>10.4f}")
    totals = {impl: {key: round(sum(figures[n][impl][key] for n in names), 4) for key in ("fwd", "fwd_bwd")}
              for impl in conv.IMPLEMENTATIONS}   # sum over the listed layers (one call each), not a network step
    print(f"{'total':<18} {totals['native']['fwd']:>10.4f} {totals['matmul']['fwd']:>10.4f} "
          f"{totals['native']['fwd_bwd']:>10.4f} {totals['matmul']['fwd_bwd']:>10.4f}")

    start = time.perf_counter()
    decision = conv.probe_cpu_conv_impl(refresh=True)
    probe_s = time.perf_counter() - start
    load_after = os.getloadavg()
    print(f"auto probe: {decision} in {probe_s:.2f} s; load average before/after {load_before[0]:.2f}/"
          f"{load_after[0]:.2f} on {os.cpu_count()} CPUs")
    cpu_model, avx512 = _cpu_description()
    print(json.dumps({"benchmark": "bench_conv", "mindspore": mindspore.__version__, "cpu": cpu_model,
                      "avx512": avx512, "batch": args.batch, "repeats": args.repeats, "seconds": figures,
                      "totals": totals, "auto_probe": decision, "auto_probe_seconds": round(probe_s, 3),
                      "auto_probe_fwd_bwd_seconds": conv.probe_timings(), "cpu_count": os.cpu_count(),
                      "loadavg_1min_before_after": [round(load_before[0], 2), round(load_after[0], 2)]}))


if __name__ == "__main__":
    main()
