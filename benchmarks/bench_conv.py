"""Per-layer CPU convolution timings of MindSpore's native kernel with oneDNN's ISA capped at AVX2 (what fastreid_ms
sets on AVX-512 CPUs) and uncapped (``ONEDNN_MAX_CPU_ISA=ALL``): the evidence behind the cap.

Shapes are those of ResNet-50 / DR50 at batch 16 x 256x128 (the stem, the 3x3 convs of every stage, DR50's grouped
3x3 expert convs with groups 4, and representative 1x1 convs incl. strided and grouped ones). Each setting runs in
its own process (the variable is read when the first operator runs); for each layer it reports the best of
``--repeats`` compiled runs (after the compiling one) of the forward alone and of forward + backward (gradients wrt
input and weight). The uncapped kernels are slow (seconds per layer on AVX-512): ``--only`` limits the layers,
``--settings capped`` skips them. The last output line is one JSON object with all figures.

    python benchmarks/bench_conv.py [--batch 16] [--repeats 3] [--only stem_7x7_s2,3x3_64] [--settings capped,uncapped]
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

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
    "1x1_64_1024_g4": (64, 1024, 64, 32, 1, 1, 0, 4),
}
SETTINGS = {"capped": None, "uncapped": "ALL"}   # None: what fastreid_ms decides on this machine


def worker(names, batch, repeats):
    """Time the layers in this process; print one JSON line {layer: {"fwd": s, "fwd_bwd": s}}."""
    sys.path.insert(0, str(REPO_ROOT))
    import fastreid_ms  # noqa: F401  (caps oneDNN's ISA on AVX-512 unless ONEDNN_MAX_CPU_ISA is set)
    import mindspore
    import numpy as np
    from mindspore import Tensor

    from fastreid_ms.layers.conv import conv2d

    mindspore.set_device("CPU")
    figures = {}
    for name in names:
        cin, cout, h, w, k, stride, padding, groups = LAYERS[name]
        rng = np.random.default_rng(0)
        x = Tensor(rng.standard_normal((batch, cin, h, w)).astype(np.float32))
        weight = Tensor((rng.standard_normal((cout, cin // groups, k, k)) * 0.05).astype(np.float32))

        def forward(a, b):
            return conv2d(a, b, None, stride, padding, 1, groups)

        def total(a, b):
            return forward(a, b).sum()

        jobs = {"fwd": mindspore.jit(forward), "fwd_bwd": mindspore.jit(mindspore.grad(total, grad_position=(0, 1)))}
        best = {}
        for key, job in jobs.items():
            times = []
            for _ in range(repeats + 1):   # the first call compiles
                start = time.perf_counter()
                result = job(x, weight)
                for t in result if isinstance(result, tuple) else (result,):
                    t.asnumpy()
                times.append(time.perf_counter() - start)
            best[key] = round(min(times[1:]), 4)
        figures[name] = best
    print(json.dumps({"onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA", ""), "seconds": figures}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated layer names (default: all)")
    parser.add_argument("--settings", default="capped,uncapped", help="comma-separated: capped, uncapped")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n] or list(LAYERS)
    unknown = [n for n in names if n not in LAYERS]
    if unknown:
        parser.error(f"unknown layer name(s) {unknown}; known: {', '.join(LAYERS)}")
    if args.worker:
        worker(names, args.batch, args.repeats)
        return
    settings = [s for s in args.settings.split(",") if s]
    if any(s not in SETTINGS for s in settings):
        parser.error(f"--settings takes {', '.join(SETTINGS)}")

    results = {}
    for setting in settings:
        env = dict(os.environ)
        env.pop("ONEDNN_MAX_CPU_ISA", None)
        if SETTINGS[setting] is not None:
            env["ONEDNN_MAX_CPU_ISA"] = SETTINGS[setting]
        command = [sys.executable, __file__, "--worker", "--batch", str(args.batch), "--repeats", str(args.repeats),
                   "--only", ",".join(names)]
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
        results[setting] = json.loads(out.strip().splitlines()[-1])

    header = "".join(f" {s + ' ' + k:>17}" for s in settings for k in ("fwd", "f+b"))
    print(f"{'layer':<16}{header}")
    for name in names:
        row = "".join(f" {results[s]['seconds'][name][k]:>17.4f}" for s in settings for k in ("fwd", "fwd_bwd"))
        print(f"{name:<16}{row}")
    totals = {s: {k: round(sum(results[s]["seconds"][n][k] for n in names), 4) for k in ("fwd", "fwd_bwd")}
              for s in settings}
    print(f"{'total':<16}" + "".join(f" {totals[s][k]:>17.4f}" for s in settings for k in ("fwd", "fwd_bwd")))
    for s in settings:
        print(f"{s}: ONEDNN_MAX_CPU_ISA={results[s]['onednn_max_cpu_isa'] or '<unset>'}")
    print(json.dumps({"benchmark": "bench_conv", "batch": args.batch, "repeats": args.repeats,
                      "isa": {s: results[s]["onednn_max_cpu_isa"] for s in settings},
                      "seconds": {s: results[s]["seconds"] for s in settings}, "totals": totals}))


if __name__ == "__main__":
    main()
