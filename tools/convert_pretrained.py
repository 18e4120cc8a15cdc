#!/usr/bin/env python
"""Convert ImageNet backbone weights (a PyTorch ``.pth``) into the MindSpore ``.ckpt`` that
``MODEL.BACKBONE.PRETRAIN_PATH`` reads without unpickling the ``.pth`` and, for the dynamic-router ResNet, without
redoing the adaptor surgery at every start (useful on GPU/Ascend jobs).

    python tools/convert_pretrained.py --config-file configs/bagtricks_DR50_mix.yml \\
        --input pretrained/resnet50_ibn_a-d9d0bb7b.pth --output pretrained/resnet50_ibn_a_DR50.ckpt
    python tools/train_net.py --config-file configs/bagtricks_DR50_mix.yml \\
        MODEL.BACKBONE.PRETRAIN_PATH pretrained/resnet50_ibn_a_DR50.ckpt

The backbone is built from the config's ``MODEL.BACKBONE`` (NAME, DEPTH, WITH_IBN ...). For the dynamic-router
ResNet the ``.ckpt`` holds exactly the tensors the surgery fills (the rest keep their initial values at load, as
with the ``.pth``), so training from either file is identical; for the other backbones it holds the ``.pth``
tensors the backbone has. The ``.pth``'s SHA-256 prefix in its name is checked; the output is written atomically
and its SHA-256 is logged. Input errors end it with one line and exit code 2.
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from fastreid_ms.config import get_cfg  # noqa: E402
from fastreid_ms.engine import run_tool  # noqa: E402
from fastreid_ms.modeling.backbones import build_backbone  # noqa: E402
from fastreid_ms.modeling.backbones.dr_pretrained import dr_pretrained_tensors  # noqa: E402
from fastreid_ms.utils.logger import setup_logger  # noqa: E402
from fastreid_ms.utils.pretrained import read_pretrained, save_converted_backbone, sha256_of  # noqa: E402
from fastreid_ms.utils.state_dict import strip_prefix  # noqa: E402

logger = logging.getLogger("fastreid_ms.convert_pretrained")
DR_BACKBONE = "build_meta_dynamic_router_resnet_backbone"


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Convert ImageNet backbone weights (.pth) to a MindSpore .ckpt")
    parser.add_argument("--config-file", metavar="FILE", required=True, help="config naming the backbone")
    parser.add_argument("--input", required=True, help="the PyTorch .pth (e.g. resnet50_ibn_a-d9d0bb7b.pth)")
    parser.add_argument("--output", required=True, help="the .ckpt to write")
    parser.add_argument("opts", default=[], nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    return parser


def convert(cfg, source: str, output: str) -> int:
    """Write the backbone tensors of ``source`` for ``cfg``'s backbone to ``output``; returns their number."""
    cfg = cfg.clone()
    cfg.MODEL.BACKBONE.PRETRAIN = False
    model = build_backbone(cfg)
    ckpt, _ = read_pretrained(source, key="--input")
    if cfg.MODEL.BACKBONE.NAME == DR_BACKBONE:
        tensors = dr_pretrained_tensors(model, ckpt)
    else:
        shapes = {name: tuple(p.shape) for name, p in model.parameters_and_names()}
        tensors = {k: v for k, v in strip_prefix(ckpt).items() if shapes.get(k) == tuple(v.shape)}
    if not tensors:
        raise ValueError(f"--input {source!r}: none of its tensors fits the backbone {cfg.MODEL.BACKBONE.NAME} "
                         f"(DEPTH {cfg.MODEL.BACKBONE.DEPTH}, WITH_IBN {cfg.MODEL.BACKBONE.WITH_IBN})")
    save_converted_backbone(tensors, output, source)
    return len(tensors)


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    setup_logger(name="fastreid_ms")
    cfg = get_cfg()
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    count = convert(cfg, args.input, args.output)
    logger.info("Wrote %d tensors of %s to %s (SHA-256 %s)", count, cfg.MODEL.BACKBONE.NAME, args.output,
                sha256_of(args.output))


if __name__ == "__main__":
    sys.exit(run_tool("convert_pretrained.py", main))
