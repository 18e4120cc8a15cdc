"""Data-parallel training is the same objective on any number of processes, and a pair that loses a worker resumes
exactly: ``tools/train_net.py`` with the demo config (DR50 mix, meta-learning) and ``SOLVER.DP_REPLICAS 2`` runs
two epochs once in one process emulating both replicas, and as two msrun worker processes (master address and port
given explicitly, as on a cluster) whose rank-1 worker is killed with SIGKILL once the first epoch's checkpoint is
written: the pair's command ends with exit code 1 and one line, ``--resume`` of the pair finishes the run, and the
per-step losses of every basic and meta pass, the final checkpoint and the evaluation agree with the one-process
run (within 1e-4)."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
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


def _command(root: Path, out: Path, *launch_args):
    """The demo config for two epochs of 3-4 iterations (a checkpoint and an evaluation after each), sized for the
    test."""
    return [sys.executable, str(TRAIN_NET), "--config-file", str(DEMO), *launch_args,
            "OUTPUT_DIR", str(out), "DATASETS.ROOT", str(root), "DATASETS.SYNTHETIC.TRAIN_IDS", "4",
            "DATASETS.SYNTHETIC.TEST_IDS", "4", "SOLVER.IMS_PER_BATCH", "16", "SOLVER.MAX_EPOCH", "2",
            "SOLVER.META.FIRST_ITER_BASIC_STEPS", "2", "SOLVER.LOG_PERIOD", "1", "SOLVER.CHECKPOINT_PERIOD", "1",
            "TEST.EVAL_PERIOD", "1", "TEST.IMS_PER_BATCH", "16", "DATALOADER.NUM_WORKERS", "0",
            "SOLVER.DP_REPLICAS", "2"]


def _env():
    return dict(os.environ, PYTHONPATH=str(REPO))


def _worker_logs(tmp_path: Path) -> str:
    return "".join(p.read_text() for p in sorted((tmp_path / "msrun_log").glob("*.log")))


def _run(tmp_path: Path, command):
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=_env(), timeout=1200)
    assert result.returncode == 0, (result.stderr[-3000:], _worker_logs(tmp_path)[-4000:])


def _worker_pid(rank: int, marker: str) -> int:
    """The pid of the msrun worker of ``rank`` whose command line contains ``marker`` (0 when there is none)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if (marker.encode() in cmdline and b"MS_ROLE=MS_WORKER" in environ
                and f"RANK_ID={rank}".encode() in environ):
            return int(entry.name)
    return 0


def _kill_rank1_after_first_checkpoint(tmp_path: Path, out: Path):
    """Run the pair, SIGKILL its rank-1 worker as soon as ``last_checkpoint`` exists; return the command's exit code
    and stderr and the seconds from the kill to its end."""
    command = _command(tmp_path / "data", out, "--num-gpus", "2", "--dist-url", f"tcp://127.0.0.1:{_free_port()}")
    process = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env=_env())
    deadline = time.monotonic() + 1200
    while not (out / "last_checkpoint").is_file():
        assert process.poll() is None, (process.stderr.read()[-3000:], _worker_logs(tmp_path)[-4000:])
        assert time.monotonic() < deadline
        time.sleep(0.2)
    pid = _worker_pid(1, str(out))
    assert pid, "no rank-1 worker found"
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    _, stderr = process.communicate(timeout=300)
    return process.returncode, stderr, time.monotonic() - killed


def _step_losses(out: Path):
    return [json.loads(line) for line in (out / "step_losses.json").read_text().splitlines()]


def _weights(out: Path) -> np.ndarray:
    state = mindspore.load_checkpoint(str(out / "model_final.ckpt"))
    return np.concatenate([state[k].asnumpy().astype(np.float64).ravel() for k in sorted(state)
                           if not k.startswith("__") and k.startswith(("backbone", "heads"))])


def test_two_processes_train_the_model_of_one_process_and_resume_after_a_killed_worker(tmp_path):
    single = tmp_path / "one_process"
    _run(tmp_path, _command(tmp_path / "data", single))
    double = tmp_path / "two_processes"
    code, stderr, seconds = _kill_rank1_after_first_checkpoint(tmp_path, double)

    msrun_log = tmp_path / "msrun_log"
    assert code == 1, stderr[-3000:]
    assert stderr.splitlines() == [
        f"train_net.py: error: a worker process failed and msrun stopped the others (msrun exit code 1); the "
        f"workers' output is in {msrun_log}/worker_<rank>.log, msrun's in {msrun_log}/msrun.log; continue the run "
        f"with --resume"]
    assert seconds < 120
    checkpoint = (double / "last_checkpoint").read_text().strip()
    assert checkpoint in ("model_0000.ckpt", "model_best.ckpt") and not (double / "model_final.ckpt").exists()
    _run(tmp_path, _command(tmp_path / "data", double, "--num-gpus", "2", "--dist-url",
                            f"tcp://127.0.0.1:{_free_port()}", "--resume"))

    log = (double / "log.txt").read_text()
    assert "World size: 2" in log and f"{double / checkpoint}" in log
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
