#!/usr/bin/env python
"""Draw the training curves of a finished or running job: every logged loss, ``lr``, the evaluation metrics and the
per-step totals of the basic and the meta steps, one panel each, from ``OUTPUT_DIR/metrics.json`` and
``OUTPUT_DIR/step_losses.json`` (training redraws ``OUTPUT_DIR/training_curves.png`` at every evaluation itself).

    python tools/plot_curves.py logs/demo/DR50_mix_synthetic [--output curves.png]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from fastreid_ms.engine import run_tool  # noqa: E402
from fastreid_ms.utils.curves import save_training_curves  # noqa: E402


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Draw the training curves of a fastreid_ms OUTPUT_DIR")
    parser.add_argument("output_dir", help="the OUTPUT_DIR of a training job")
    parser.add_argument("--output", default="", help="PNG to write (default OUTPUT_DIR/training_curves.png)")
    return parser


def main(args) -> None:
    print(save_training_curves(args.output_dir, args.output))


if __name__ == "__main__":
    sys.exit(run_tool("plot_curves.py", main, get_parser().parse_args()))
