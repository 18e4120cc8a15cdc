"""A data-parallel job for the worker-failure tests (run as a script): ``launch`` starts two processes whose steps
each all-reduce one number, and the process of rank ``--die-rank`` kills itself with SIGKILL at step ``--die-step``,
as the kernel's out-of-memory killer or a lost machine would. Exit code and message come from ``run_tool``."""
import argparse
import os
import signal
import sys
import time

import numpy as np

from fastreid_ms.engine import launch, run_tool
from fastreid_ms.utils import comm
from fastreid_ms.utils.env import set_device


def main(args):
    set_device("CPU")
    for step in range(args.steps):
        total = comm.all_reduce_sum(np.ones(1, np.float32))
        print(f"rank {comm.get_rank()} step {step} sum {total[0]:.0f}", flush=True)
        if comm.get_rank() == args.die_rank and step == args.die_step:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.1)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dist-url", required=True)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--die-rank", type=int, default=1)
    parser.add_argument("--die-step", type=int, default=3)
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    sys.exit(run_tool("collective_worker.py", launch, main, 2, 1, 0, arguments.dist_url, (arguments,)))
