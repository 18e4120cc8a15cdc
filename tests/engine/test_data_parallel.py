"""Data-parallel training is the same objective on any number of processes: ``tools/train_net.py`` with the demo
config (DR50 mix, meta-learning) and ``SOLVER.DP_REPLICAS 2`` trains the same model as one process emulating both
replicas and as two msrun worker processes (master address and port given explicitly, as on a cluster): per-step
losses of every basic and meta pass and the final checkpoint agree within 1e-4."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import mindspore
import numpy as np

REPO = Path(__file__).resolve().parents[2]
TRAIN_NET = REPO / "tools" / "train_net.py"
DEMO = REPO / "configs" / "demo" / "DR50_mix_synthetic.yml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _opts(root: Path, out: Path):
    """The demo config for one epoch of 7 iterations (meta steps at 0, 3, 6), sized for the test."""
    return ["OUTPUT_DIR", str(out), "DATASETS.ROOT", str(root), "DATASETS.SYNTHETIC.TRAIN_IDS", "8",
            "DATASETS.SYNTHETIC.TEST_IDS", "4", "SOLVER.IMS_PER_BATCH", "16", "SOLVER.MAX_EPOCH", "1",
            "SOLVER.META.FIRST_ITER_BASIC_STEPS", "2", "SOLVER.LOG_PERIOD", "1", "SOLVER.CHECKPOINT_PERIOD", "1",
            "TEST.EVAL_PERIOD", "1", "TEST.IMS_PER_BATCH", "16", "DATALOADER.NUM_WORKERS", "0",
            "SOLVER.DP_REPLICAS", "2"]


def _train(tmp_path: Path, name: str, *launch_args):
    out = tmp_path / name
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, str(TRAIN_NET), "--config-file", str(DEMO), *launch_args,
                             *_opts(tmp_path / "data", out)], cwd=tmp_path, capture_output=True, text=True, env=env,
                            timeout=1200)
    worker_logs = "".join(p.read_text() for p in sorted((tmp_path / "msrun_log").glob("*.log")))
    assert result.returncode == 0, (result.stderr[-3000:], worker_logs[-4000:])
    return out


def _step_losses(out: Path):
    return [json.loads(line) for line in (out / "step_losses.json").read_text().splitlines()]


def _weights(out: Path) -> np.ndarray:
    state = mindspore.load_checkpoint(str(out / "model_final.ckpt"))
    return np.concatenate([state[k].asnumpy().astype(np.float64).ravel() for k in sorted(state)
                           if not k.startswith("__") and k.startswith(("backbone", "heads"))])


def test_two_processes_train_the_model_of_one_process_with_the_same_replicas(tmp_path):
    single = _train(tmp_path, "one_process")
    double = _train(tmp_path, "two_processes", "--num-gpus", "2", "--dist-url", f"tcp://127.0.0.1:{_free_port()}")

    assert "World size: 2" in (double / "log.txt").read_text()
    expected, got = _step_losses(single), _step_losses(double)
    assert [(r["iteration"], r["phase"]) for r in got] == [(r["iteration"], r["phase"]) for r in expected]
    assert {r["phase"] for r in expected} == {"basic", "mtrain", "mtest"}
    assert len({r["iteration"] for r in expected}) >= 6
    for a, b in zip(expected, got):
        for key in a:
            if key.startswith("loss"):
                np.testing.assert_allclose(b[key], a[key], rtol=1e-4, atol=1e-6,
                                           err_msg=f"iteration {a['iteration']} {a['phase']} {key}")
    w1, w2 = _weights(single), _weights(double)
    assert np.linalg.norm(w2 - w1) / np.linalg.norm(w1) < 1e-4
    evaluations = [[r for r in map(json.loads, (out / "metrics.json").read_text().splitlines()) if "mAP" in r][-1]
                   for out in (single, double)]
    assert abs(evaluations[0]["mAP"] - evaluations[1]["mAP"]) < 0.5
