"""Process launching (FastReID ``engine/launch.py``) with MindSpore's ``msrun``.

One process per device. ``launch(main, 1)`` just calls ``main(*args)``. For several devices, MindSpore's launcher
``msrun`` starts the workers: ``launch`` re-executes the current command line under ``msrun`` (one machine: all
workers on it; several machines: run the same command on every machine with its ``--machine-rank``), and inside
each process msrun starts - recognised by the ``MS_WORKER_NUM``/``MS_ROLE`` environment msrun sets - it calls
``mindspore.communication.init()`` before ``main``. msrun also runs the script once as the cluster's scheduler
(``MS_ROLE=MS_SCHED``): there ``init()`` serves the cluster and ends the process, so ``main`` never runs in it.
Equivalent manual launch::

    msrun --worker_num=N --local_worker_num=N --master_addr=127.0.0.1 --master_port=8118 --log_dir=msrun_log \\
          --join=True tools/train_net.py --config-file cfg.yml --num-gpus N

When a worker dies (killed, out of memory, an error), no process waits forever: on one machine msrun sees the exit
within a second and kills the other workers, and ``launch`` raises :class:`WorkerFailure`; a worker that msrun does
not stop (a worker on another machine) ends about 30 s later: its next collective fails once MindSpore's
collective timeout passes, which ``launch`` turns into :class:`WorkerFailure` naming the process, or MindSpore's
cluster heartbeat notices the lost process first and sends it SIGTERM. Only rank 0 writes checkpoints,
atomically, so ``--resume`` of the same command continues from the last complete checkpoint on every process.
"""
import logging
import os
import subprocess
import sys
from typing import Callable, List, Optional, Sequence
from urllib.parse import urlparse

from mindspore import communication

__all__ = ["launch", "launched_by_msrun", "build_msrun_command", "WorkerFailure"]

logger = logging.getLogger(__name__)

MSRUN_LOG_DIR = "msrun_log"


class WorkerFailure(RuntimeError):
    """A data-parallel job ended because one of its processes failed or died; continue it with ``--resume``."""


def _collective_failed(error: RuntimeError) -> bool:
    """Whether MindSpore's error comes from a collective kernel (all-reduce across processes) that could not finish:
    its message names the kernel (``Launch kernel failed, name:.../AllReduce-op0``)."""
    return "AllReduce" in str(error)


def launched_by_msrun() -> bool:
    """Whether msrun started this process, as a worker or as the scheduler (msrun exports ``MS_WORKER_NUM`` and
    ``MS_ROLE`` = ``MS_WORKER`` or ``MS_SCHED`` to both)."""
    return "MS_WORKER_NUM" in os.environ and "MS_ROLE" in os.environ


def _is_msrun_scheduler() -> bool:
    return os.environ.get("MS_ROLE") == "MS_SCHED"


def _master_address(dist_url: Optional[str]):
    if not dist_url:
        return "127.0.0.1", 8118
    parsed = urlparse(dist_url if "://" in dist_url else f"tcp://{dist_url}")
    if not parsed.hostname or not parsed.port:
        raise ValueError(f"--dist-url {dist_url!r}: expected tcp://HOST:PORT")
    return parsed.hostname, parsed.port


def build_msrun_command(argv: Sequence[str], num_gpus_per_machine: int, num_machines: int = 1,
                        machine_rank: int = 0, dist_url: Optional[str] = None,
                        log_dir: str = MSRUN_LOG_DIR) -> List[str]:
    """The ``msrun`` command that runs ``python argv...`` (``argv[0]`` = the script) as ``num_gpus_per_machine``
    workers on this machine out of ``num_machines * num_gpus_per_machine`` in total. msrun starts the workers with
    the ``python`` found on ``PATH``."""
    host, port = _master_address(dist_url)
    world = num_machines * num_gpus_per_machine
    cmd = ["msrun", f"--worker_num={world}", f"--local_worker_num={num_gpus_per_machine}",
           f"--master_addr={host}", f"--master_port={port}", f"--log_dir={log_dir}", "--join=True"]
    if num_machines > 1:
        cmd.append(f"--node_rank={machine_rank}")
    return cmd + list(argv)


def launch(main_func: Callable, num_gpus_per_machine: int, num_machines: int = 1, machine_rank: int = 0,
           dist_url: Optional[str] = None, args=()):
    """Run ``main_func(*args)`` on ``num_machines * num_gpus_per_machine`` processes.

    In an msrun worker: initialise MindSpore communication, check the world size, run ``main_func``. In msrun's
    scheduler process: serve the cluster in ``init()`` and never run ``main_func`` (returns None). Otherwise,
    with one process in total: run ``main_func`` directly and return its result. With more: re-run this command
    line (``sys.argv``) under msrun and wait: the console shows the workers' logs (``msrun_log/worker_<rank>.log``),
    msrun's own messages go to ``msrun_log/msrun.log``. A failed worker, or a collective that fails because another
    process died, raises :class:`WorkerFailure`.
    """
    if num_gpus_per_machine < 1 or num_machines < 1:
        raise ValueError(f"launch: need at least one process per machine and one machine, got "
                         f"num_gpus_per_machine={num_gpus_per_machine}, num_machines={num_machines}")
    world_size = num_machines * num_gpus_per_machine
    if launched_by_msrun():
        communication.init()
        if _is_msrun_scheduler():
            return None
        if communication.get_group_size() != world_size:
            raise RuntimeError(f"msrun started {communication.get_group_size()} workers but --num-gpus x "
                               f"--num-machines = {world_size}")
        try:
            return main_func(*args)
        except RuntimeError as e:
            if not _collective_failed(e):
                raise
            raise WorkerFailure(f"process {communication.get_rank()} of {world_size}: a collective operation across "
                                f"the processes failed (another process died or stalled past the collective "
                                f"timeout); continue the run with --resume") from e
    if world_size == 1:
        return main_func(*args)
    cmd = build_msrun_command(sys.argv, num_gpus_per_machine, num_machines, machine_rank, dist_url)
    # msrun and the workers' "python" must be this interpreter's
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    logger.info("Launching %d worker(s) on this machine: %s", num_gpus_per_machine, " ".join(cmd))
    log_dir = os.path.abspath(MSRUN_LOG_DIR)
    os.makedirs(log_dir, exist_ok=True)
    with open(os.path.join(log_dir, "msrun.log"), "a") as msrun_messages:
        result = subprocess.run(cmd, check=False, env=env, stderr=msrun_messages)
    if result.returncode != 0:
        raise WorkerFailure(f"a worker process failed and msrun stopped the others (msrun exit code "
                            f"{result.returncode}); the workers' output is in {log_dir}/worker_<rank>.log, "
                            f"msrun's in {log_dir}/msrun.log; continue the run with --resume")
    return None
