"""Per-layer CPU convolution timings: native ``ops.conv2d`` vs fastreid_ms's im2col + matmul implementation.

Shapes are those of ResNet-50 / DR50 at batch 16 x 256x128 (the stem, the 3x3 convs of every stage, DR50's grouped
3x3 expert convs with groups 4, and representative 1x1 convs incl. strided and grouped ones). For each layer and
implementation it reports the best of ``--repeats`` runs (after one warm-up) of the forward alone and of forward +
backward (gradients wrt input and weight), then the auto-probe decision for this machine. The last line of the output
is one JSON object with all figures.

    python benchmarks/bench_conv.py [--batch 16] [--repeats 3] [--only stem,3x3_64]
"""
import argparse
import json
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


def _sync(result):
    for t in result if isinstance(result, (tuple, list)) else (result,):
        t.asnumpy()


def _best_time(fn, repeats):
    _sync(fn())
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        _sync(fn())
        best = min(best, time.perf_counter() - start)
    return best


def bench_layer(spec, batch, repeats):
    cin, cout, h, w, k, stride, padding, groups = spec
    rng = np.random.default_rng(0)
    x = Tensor(rng.standard_normal((batch, cin, h, w)).astype(np.float32))
    weight = Tensor((rng.standard_normal((cout, cin // groups, k, k)) * 0.05).astype(np.float32))
    result = {}
    for impl in conv.IMPLEMENTATIONS:
        conv.set_cpu_conv_impl(impl)

        def forward(a, b):
            return conv.conv2d(a, b, None, stride, padding, 1, groups)

        grad_fn = mindspore.grad(lambda a, b: forward(a, b).sum(), grad_position=(0, 1))
        result[impl] = {"fwd": round(_best_time(lambda: forward(x, weight), repeats), 4),
                        "fwd_bwd": round(_best_time(lambda: grad_fn(x, weight), repeats), 4)}
    return result


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

    figures = {}
    print(f"{'layer':<18} {'native fwd':>10} {'matmul fwd':>10} {'native f+b':>10} {'matmul f+b':>10}")
    for name in names:
        r = bench_layer(LAYERS[name], args.batch, args.repeats)
        figures[name] = r
        print(f"{name:<18} {r['native']['fwd']:>10.4f} {r['matmul']['fwd']:>10.4f} "
              f"{r['native']['fwd_bwd']:>10.4f} {r['matmul']['fwd_bwd']:>10.4f}")
    totals = {impl: {key: round(sum(figures[n][impl][key] for n in names), 4) for key in ("fwd", "fwd_bwd")}
              for impl in conv.IMPLEMENTATIONS}
    print(f"{'total':<18} {totals['native']['fwd']:>10.4f} {totals['matmul']['fwd']:>10.4f} "
          f"{totals['native']['fwd_bwd']:>10.4f} {totals['matmul']['fwd_bwd']:>10.4f}")

    start = time.perf_counter()
    decision = conv.probe_cpu_conv_impl()
    probe_s = time.perf_counter() - start
    print(f"auto probe: {decision} in {probe_s:.2f} s")
    print(json.dumps({"benchmark": "bench_conv", "mindspore": mindspore.__version__, "machine": platform.processor()
                      or platform.machine(), "batch": args.batch, "repeats": args.repeats, "seconds": figures,
                      "totals": totals, "auto_probe": decision, "auto_probe_seconds": round(probe_s, 3)}))


if __name__ == "__main__":
    main()
