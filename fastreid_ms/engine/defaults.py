"""Default command line and job setup (FastReID ``engine/defaults.py``).

:func:`default_argument_parser` and :func:`default_setup` are shared by the training and evaluation tools.
"""
import argparse
import logging
import os
import platform
import sys

import numpy as np

from fastreid_ms.utils import comm
from fastreid_ms.utils.env import seed_all_rng, set_device
from fastreid_ms.utils.logger import setup_logger

__all__ = ["default_argument_parser", "default_setup", "collect_env_info"]


def default_argument_parser() -> argparse.ArgumentParser:
    """FastReID's CLI: ``--config-file FILE [--resume] [--eval-only] [--num-gpus N] [--num-machines M]
    [--machine-rank R] [--dist-url URL] [KEY VALUE ...]``.

    ``--resume`` is a flag: it resumes from ``OUTPUT_DIR/last_checkpoint`` (to start from a given file, use
    ``MODEL.WEIGHTS``). ``--num-gpus`` is the number of devices per machine (one process each, see
    :func:`fastreid_ms.engine.launch.launch`).
    """
    parser = argparse.ArgumentParser(description="fastreid_ms training / evaluation")
    parser.add_argument("--config-file", default="", metavar="FILE", help="path to config file")
    parser.add_argument("--resume", action="store_true",
                        help="resume from OUTPUT_DIR/last_checkpoint (model, optimizer, schedulers, epoch)")
    parser.add_argument("--eval-only", action="store_true", help="perform evaluation only")
    parser.add_argument("--num-gpus", type=int, default=1, help="number of devices (processes) *per machine*")
    parser.add_argument("--num-machines", type=int, default=1, help="total number of machines")
    parser.add_argument("--machine-rank", type=int, default=0, help="the rank of this machine (unique per machine)")
    parser.add_argument("--dist-url", default="tcp://127.0.0.1:8118",
                        help="address of the rank-0 machine for multi-process runs (msrun master address/port)")
    parser.add_argument("opts", help="Modify config options using the command-line 'KEY VALUE' pairs", default=None,
                        nargs=argparse.REMAINDER)
    return parser


def collect_env_info() -> str:
    """Python, MindSpore, numpy, device target and CPU information, one item per line."""
    import mindspore

    lines = [
        ("sys.platform", sys.platform),
        ("Python", sys.version.replace("\n", " ")),
        ("numpy", np.__version__),
        ("MindSpore", mindspore.__version__),
        ("MindSpore device target", mindspore.get_context("device_target")),
        ("MindSpore mode", "GRAPH" if mindspore.get_context("mode") == mindspore.GRAPH_MODE else "PYNATIVE"),
        ("CPU", platform.processor() or platform.machine()),
        ("CPU count", os.cpu_count()),
        ("ONEDNN_MAX_CPU_ISA", os.environ.get("ONEDNN_MAX_CPU_ISA", "<not set>")),
    ]
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in lines)


def default_setup(cfg, args) -> None:
    """Prepare a job: create ``OUTPUT_DIR``, log to ``OUTPUT_DIR/log.txt``, log the environment, arguments and
    config, dump ``OUTPUT_DIR/config.yaml`` (main process), select ``MODEL.DEVICE``, choose the CPU convolution
    implementation (``MODEL.CPU_CONV``) and seed every RNG from ``SEED`` (a negative SEED draws a fresh seed, which
    is logged; every process gets ``SEED + rank``).
    """
    output_dir = cfg.OUTPUT_DIR
    if comm.is_main_process() and output_dir:
        os.makedirs(output_dir, exist_ok=True)
    rank = comm.get_rank()
    setup_logger(output_dir, distributed_rank=rank, name="fastreid_ms")
    logger = logging.getLogger("fastreid_ms")
    target = set_device(cfg.MODEL.DEVICE)
    _set_cpu_conv(cfg, target)
    logger.info("Rank of current process: {}. World size: {}".format(rank, comm.get_world_size()))
    logger.info("Environment info:\n" + collect_env_info())
    logger.info("Command line arguments: " + str(args))
    config_file = getattr(args, "config_file", "")
    if config_file:
        with open(config_file, "r") as f:
            logger.info("Contents of args.config_file={}:\n{}".format(config_file, f.read()))
    logger.info("Running with full config:\n{}".format(cfg))
    if comm.is_main_process() and output_dir:
        path = os.path.join(output_dir, "config.yaml")
        with open(path, "w") as f:
            f.write(cfg.dump())
        logger.info("Full config saved to {}".format(os.path.abspath(path)))
    seed = cfg.SEED
    seed_all_rng(None if seed < 0 else seed + rank)


def _set_cpu_conv(cfg, target: str) -> None:
    from fastreid_ms.layers import conv

    setter = getattr(conv, "set_cpu_conv_impl", None)
    if setter is not None:
        setter(cfg.MODEL.CPU_CONV)
    elif target == "CPU":
        logging.getLogger(__name__).info("MODEL.CPU_CONV=%s not applied: this build has no CPU convolution switch",
                                         cfg.MODEL.CPU_CONV)
