"""Training curves of a run: every logged loss, ``lr``, the evaluation metrics, and the per-step totals of the
basic and the meta steps, read from ``OUTPUT_DIR/metrics.json`` and ``OUTPUT_DIR/step_losses.json`` and drawn as
one PNG of panels (Pillow only).

The console's ``total_loss`` (as the reference's) is a median over a window in which basic and meta steps both
put their totals; the ``basic step total`` and ``meta step total`` panels keep the two objectives apart: the sum
of a basic step's losses, and the sum of a meta step's meta-train and meta-test losses (the objective whose
gradient the meta step applies), one point per step.
"""
import json
import math
import os
from collections import OrderedDict
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image

from .visualizer import draw_curve

__all__ = ["load_curves", "save_training_curves"]

Series = Dict[str, Tuple[List[float], List[float]]]
_SKIPPED = ("iteration", "time", "data_time", "eta_seconds")


def _read_json_lines(path: str) -> List[dict]:
    if not os.path.isfile(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:  # the last line of a running job may be half written
                    break
    return records


def load_curves(output_dir: str) -> Series:
    """``{name: (iterations, values)}``: every numeric scalar of ``metrics.json`` (losses, ``lr``, evaluation
    results) and the per-step ``basic step total`` / ``meta step total`` from ``step_losses.json``."""
    metrics = os.path.join(output_dir, "metrics.json")
    if not os.path.isfile(metrics):
        raise FileNotFoundError(f"{metrics} not found: give the OUTPUT_DIR of a finished or running training job")
    series: Series = OrderedDict()
    for record in _read_json_lines(metrics):
        for key, value in record.items():
            if key in _SKIPPED or not isinstance(value, (int, float)) or not math.isfinite(value):
                continue
            xs, ys = series.setdefault(key, ([], []))
            xs.append(float(record["iteration"]))
            ys.append(float(value))
    totals: Dict[Tuple[int, str], float] = OrderedDict()
    step = 0
    previous = None
    for record in _read_json_lines(os.path.join(output_dir, "step_losses.json")):
        kind = "basic" if record["phase"] == "basic" else "meta"
        if kind == "basic" or previous != "mtrain":  # a meta step = its mtrain pass and the mtest pass after it
            step += 1
        previous = record["phase"]
        key = (step, kind)
        totals[key] = totals.get(key, 0.0) + sum(v for k, v in record.items() if k.startswith("loss"))
        totals.setdefault((step, "iteration"), float(record["iteration"]))
    for (step_index, kind), value in totals.items():
        if kind == "iteration":
            continue
        xs, ys = series.setdefault(f"{kind} step total", ([], []))
        xs.append(totals[(step_index, "iteration")])
        ys.append(value)
    return series


def save_training_curves(output_dir: str, path: str = "", columns: int = 3,
                         panel_size: Tuple[int, int] = (480, 300)) -> str:
    """Draw :func:`load_curves` of ``output_dir`` as a grid of panels into ``path`` (default
    ``OUTPUT_DIR/training_curves.png``); returns the path."""
    series = load_curves(output_dir)
    if not series:
        raise ValueError(f"{output_dir}/metrics.json holds no numeric series yet")
    panels = []
    for name, (xs, ys) in series.items():
        x_lo, x_hi = min(xs), max(xs)
        y_lo, y_hi = min(ys), max(ys)
        pad = (y_hi - y_lo) * 0.05 or abs(y_hi) * 0.05 or 1.0
        panels.append(draw_curve(np.asarray(xs), np.asarray(ys), title=f"{name} (last {ys[-1]:.4g})",
                                 x_label="iteration", y_label="", x_range=(x_lo, x_hi if x_hi > x_lo else x_lo + 1),
                                 y_range=(y_lo - pad, y_hi + pad), size=panel_size))
    rows = -(-len(panels) // columns)
    sheet = Image.new("RGB", (columns * panel_size[0], rows * panel_size[1]), (255, 255, 255))
    for i, panel in enumerate(panels):
        sheet.paste(panel, ((i % columns) * panel_size[0], (i // columns) * panel_size[1]))
    path = path or os.path.join(output_dir, "training_curves.png")
    tmp = f"{path}.tmp{os.getpid()}.png"
    sheet.save(tmp)
    os.replace(tmp, path)
    return path
