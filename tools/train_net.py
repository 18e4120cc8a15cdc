#!/usr/bin/env python
"""Train or evaluate a fastreid_ms model (FastReID's ``tools/train_net.py``).

    python tools/train_net.py --config-file configs/bagtricks_DR50_mix.yml [--resume] [KEY VALUE ...]
    python tools/train_net.py --config-file configs/bagtricks_DR50_mix.yml --eval-only MODEL.WEIGHTS model.ckpt

``MODEL.WEIGHTS`` may be a fastreid_ms ``.ckpt`` or a PyTorch FastReID / ACL-DGReID ``.pth`` (read without
torch). ``--num-gpus N`` runs N data-parallel processes through MindSpore's ``msrun``.
"""
import logging
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from fastreid_ms.config import get_cfg  # noqa: E402
from fastreid_ms.engine import DefaultTrainer, default_argument_parser, default_setup, launch, run_tool  # noqa: E402
from fastreid_ms.evaluation.testing import write_results_json  # noqa: E402
from fastreid_ms.utils import comm  # noqa: E402
from fastreid_ms.utils.checkpoint import Checkpointer  # noqa: E402


def setup(args):
    """Config from ``--config-file`` and the ``KEY VALUE`` overrides, then the job setup (output dir, logs, seed,
    device)."""
    cfg = get_cfg()
    if args.config_file:
        cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        cfg.defrost()
        cfg.MODEL.BACKBONE.PRETRAIN = False
        cfg.freeze()
        model = DefaultTrainer.build_model(cfg)
        if cfg.MODEL.WEIGHTS:
            Checkpointer(model).load(cfg.MODEL.WEIGHTS, checkpointables=[])
        else:
            logging.getLogger("fastreid_ms").warning(
                "MODEL.WEIGHTS is empty: evaluating the randomly initialised model (seeded by SEED), e.g. as the "
                "untrained baseline of a run")
        results = DefaultTrainer.test(cfg, model)
        if comm.is_main_process() and cfg.OUTPUT_DIR:
            write_results_json(results, cfg.OUTPUT_DIR, extra={"weights": cfg.MODEL.WEIGHTS})
        return results

    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def cli(argv=None) -> int:
    """Run :func:`main` (through ``launch``); an input error ends the command with one line on stderr and exit
    code 2 (``fastreid_ms.engine.run_tool``)."""
    args = default_argument_parser().parse_args(argv)
    return run_tool("train_net.py", launch, main, args.num_gpus, args.num_machines, args.machine_rank,
                    args.dist_url, (args,))


if __name__ == "__main__":
    sys.exit(cli())
