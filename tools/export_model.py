#!/usr/bin/env python
"""Export a model's evaluation graph as a MindSpore MINDIR file (the deployable form: ``mindspore.load`` it and run
it with ``mindspore.nn.GraphCell``, or serve it with MindSpore Lite).

    python tools/export_model.py --config-file configs/bagtricks_DR50_mix.yml --output model.mindir \\
        MODEL.WEIGHTS logs/model_best.ckpt [--batch-size 1] [KEY VALUE ...]

The weights come from ``MODEL.WEIGHTS`` (a fastreid_ms ``.ckpt`` or a PyTorch FastReID ``.pth``); the graph takes
float32 images ``(batch, 3, H, W)`` in 0..255 as the model does (``INPUT.SIZE_TEST`` gives H, W; the model
normalises them with ``MODEL.PIXEL_MEAN``/``PIXEL_STD``) and returns the (batch, D) features. The batch size is
fixed in the file.
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import numpy as np  # noqa: E402

from fastreid_ms.config import ConfigError, get_cfg  # noqa: E402
from fastreid_ms.engine import DefaultTrainer, run_tool  # noqa: E402
from fastreid_ms.utils.checkpoint import Checkpointer  # noqa: E402
from fastreid_ms.utils.env import set_device  # noqa: E402
from fastreid_ms.utils.logger import setup_logger  # noqa: E402

logger = logging.getLogger("fastreid_ms.export_model")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Export a fastreid_ms model's evaluation graph as MINDIR")
    parser.add_argument("--config-file", metavar="FILE", required=True, help="path to config file")
    parser.add_argument("--output", metavar="PATH", required=True,
                        help="output file (MindSpore appends '.mindir' when the name does not end with it)")
    parser.add_argument("--batch-size", type=int, default=1, help="batch size of the exported graph")
    parser.add_argument("opts", default=[], nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    return parser


def export_model(cfg, output: str, batch_size: int = 1) -> str:
    """Build the model of ``cfg``, load ``MODEL.WEIGHTS`` and write its eval graph to ``output`` (MINDIR);
    returns the written file's path."""
    import mindspore

    if not cfg.MODEL.WEIGHTS:
        raise ConfigError("MODEL.WEIGHTS is empty: export_model.py exports a trained model; give its .ckpt or "
                          ".pth as MODEL.WEIGHTS")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {batch_size}")
    model = DefaultTrainer.build_model(cfg)
    Checkpointer(model).load(cfg.MODEL.WEIGHTS, checkpointables=[])
    model.set_train(False)
    height, width = (int(v) for v in cfg.INPUT.SIZE_TEST)
    images = mindspore.Tensor(np.zeros((batch_size, len(cfg.MODEL.PIXEL_MEAN), height, width), dtype=np.float32))
    base = output[:-len(".mindir")] if output.endswith(".mindir") else output
    directory = os.path.dirname(os.path.abspath(base))
    os.makedirs(directory, exist_ok=True)
    mindspore.export(model, images, file_name=base, file_format="MINDIR")
    path = base + ".mindir"
    logger.info("Exported the eval graph of %s (input (%d, %d, %d, %d) float32 0..255) to %s",
                cfg.MODEL.WEIGHTS, batch_size, images.shape[1], height, width, path)
    return path


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    setup_logger(name="fastreid_ms")

    def run():
        cfg = get_cfg()
        cfg.merge_from_file(args.config_file)
        cfg.merge_from_list(args.opts)
        cfg.MODEL.BACKBONE.PRETRAIN = False
        cfg.freeze()
        set_device(cfg.MODEL.DEVICE)
        print(export_model(cfg, args.output, args.batch_size))

    return run_tool("export_model.py", run)


if __name__ == "__main__":
    sys.exit(main())
