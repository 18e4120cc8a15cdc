"""A data-parallel job whose worker dies does not hang: under ``launch`` (msrun joining its workers) the command
ends with exit code 1 and one line naming the logs and ``--resume``; a worker that msrun does not stop (msrun
without join, as on another machine) ends about 30 s later: its next collective fails after MindSpore's collective
timeout (one line naming its rank), or MindSpore's cluster heartbeat stops it first. The job is
``collective_worker.py`` (two processes, an all-reduce per step, rank 1 SIGKILLs itself)."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().parent / "collective_worker.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    return dict(os.environ, PYTHONPATH=str(REPO),
                PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))


def test_launch_ends_with_one_line_when_a_worker_is_killed(tmp_path):
    start = time.monotonic()
    result = subprocess.run([sys.executable, str(WORKER), "--dist-url", f"tcp://127.0.0.1:{_free_port()}"],
                            cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - start

    log_dir = tmp_path / "msrun_log"
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.splitlines() == [
        f"collective_worker.py: error: a worker process failed and msrun stopped the others (msrun exit code 1); "
        f"the workers' output is in {log_dir}/worker_<rank>.log, msrun's in {log_dir}/msrun.log; continue the run "
        f"with --resume"]
    assert "rank 1 step 3 sum 2" in (log_dir / "worker_1.log").read_text()
    assert "exit with exception" in (log_dir / "msrun.log").read_text()
    assert elapsed < 150


def test_a_worker_left_alone_ends_within_the_collective_timeout(tmp_path):
    """Whichever comes first ends it, about 30 s after the other worker died: its next collective fails (one line
    naming its rank) or MindSpore's cluster heartbeat notices the lost process and stops it with SIGTERM."""
    port = _free_port()
    msrun = [os.path.join(os.path.dirname(sys.executable), "msrun"), "--worker_num=2", "--local_worker_num=2",
             "--master_addr=127.0.0.1", f"--master_port={port}", "--log_dir=msrun_log", "--join=False"]
    start = time.monotonic()
    subprocess.run(msrun + [str(WORKER), "--dist-url", f"tcp://127.0.0.1:{port}"], cwd=tmp_path, env=_env(),
                   capture_output=True, check=True, timeout=120)
    log = tmp_path / "msrun_log" / "worker_0.log"
    endings = ("collective_worker.py: error: process 0 of 2: a collective operation across the processes failed "
               "(another process died or stalled past the collective timeout); continue the run with --resume",
               "Kill this process with SIGTERM.")

    def ended():
        return log.is_file() and any(ending in log.read_text() for ending in endings)

    while time.monotonic() - start < 240 and not ended():
        time.sleep(1)
    lines = log.read_text().splitlines()
    assert ended(), lines[-20:]
    assert "rank 0 step 3 sum 2" in lines and "rank 0 step 4 sum 2" not in lines
    assert not any(line.startswith("Traceback") for line in lines)
