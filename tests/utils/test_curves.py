"""Training curves: every numeric series of metrics.json, per-step basic and meta totals from step_losses.json
(a meta step = its meta-train and meta-test passes), one PNG panel each; a half-written last line of a running job
is ignored; a folder without metrics.json is a clear error."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from fastreid_ms.utils.curves import load_curves, save_training_curves

REPO = Path(__file__).resolve().parents[2]


def _write(out: Path):
    metrics = [{"iteration": 2, "total_loss": 3.0, "loss_cls": 1.0, "lr": 0.1, "time": 0.5},
               {"iteration": 5, "total_loss": 2.5, "loss_cls": 0.8, "lr": 0.05},
               {"iteration": 5, "Rank-1": 40.0, "mAP": 30.0, "metric": 35.0}]
    steps = [{"iteration": 0, "phase": "basic", "loss_cls": 1.0, "loss_triplet": 0.5},
             {"iteration": 0, "phase": "basic", "loss_cls": 0.9, "loss_triplet": 0.5},
             {"iteration": 0, "phase": "mtrain", "loss_stc": 0.25, "loss_triplet_mtrain": 0.5},
             {"iteration": 0, "phase": "mtest", "loss_triplet_mtest": 1.0},
             {"iteration": 1, "phase": "basic", "loss_cls": 0.75, "loss_triplet": 0.25},
             {"iteration": 3, "phase": "mtrain", "loss_stc": 0.5, "loss_triplet_mtrain": 0.5},
             {"iteration": 3, "phase": "mtest", "loss_triplet_mtest": 2.0}]
    (out / "metrics.json").write_text("".join(json.dumps(r) + "\n" for r in metrics) + '{"iteration": 6, "tot')
    (out / "step_losses.json").write_text("".join(json.dumps(r) + "\n" for r in steps))


def test_series_and_step_totals(tmp_path):
    _write(tmp_path)
    series = load_curves(str(tmp_path))
    assert series["total_loss"] == ([2.0, 5.0], [3.0, 2.5])
    assert series["mAP"] == ([5.0], [30.0]) and "time" not in series and "iteration" not in series
    assert series["basic step total"] == ([0.0, 0.0, 1.0], [1.5, 1.4, 1.0])
    assert series["meta step total"] == ([0.0, 3.0], [1.75, 3.0])
    path = save_training_curves(str(tmp_path))
    assert path == str(tmp_path / "training_curves.png")
    width, height = Image.open(path).size
    assert width == 3 * 480 and height == -(-len(series) // 3) * 300


def test_command_draws_any_output_dir_and_refuses_an_empty_one(tmp_path):
    _write(tmp_path)
    tool = [sys.executable, str(REPO / "tools" / "plot_curves.py")]
    result = subprocess.run(tool + [str(tmp_path), "--output", str(tmp_path / "c.png")], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0 and (tmp_path / "c.png").is_file(), result.stderr
    result = subprocess.run(tool + [str(tmp_path / "none")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"plot_curves.py: error: {tmp_path / 'none' / 'metrics.json'} not found: give the OUTPUT_DIR of a finished "
        f"or running training job"]
    with pytest.raises(FileNotFoundError):
        load_curves(str(tmp_path / "none"))
