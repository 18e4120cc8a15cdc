#!/usr/bin/env python
"""Extract re-id features of images with a trained model (FastReID's ``demo/demo.py``).

    python tools/extract_features.py --config-file configs/bagtricks_DR50_mix.yml --input PATH --output DIR \\
        MODEL.WEIGHTS logs/model_best.ckpt [--flip] [--normalize] [--batch-size 64] [KEY VALUE ...]
    python tools/extract_features.py --config-file CFG --dataset CUHK03 --output DIR MODEL.WEIGHTS ...

``--input`` is a folder (its images, recursively, sorted), a glob pattern (quote it) or a text file listing one
image path per line; ``--dataset NAME`` takes the query then gallery images of a registered test set under
``DATASETS.ROOT`` (split ``DATASETS.SPLIT_ID``) instead. Writes ``DIR/features.npy`` (N x D float32) and
``DIR/names.txt`` (the N image paths, in the same order). The images go through the test transform (``INPUT.SIZE_TEST``) and the model's compiled eval pass
on ``MODEL.DEVICE`` in batches (``DefaultPredictor``); ``--flip`` averages the features of each image and its
horizontal mirror (``TEST.FLIP``), ``--normalize`` L2-normalises them. Progress (images, rate, ETA) is logged.
Input errors end it with one line and exit code 2.
"""
import argparse
import glob
import logging
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

import numpy as np  # noqa: E402

from fastreid_ms.config import get_cfg  # noqa: E402
from fastreid_ms.data.build import build_test_dataset  # noqa: E402
from fastreid_ms.data.datasets import DATASET_REGISTRY  # noqa: E402
from fastreid_ms.engine import DefaultPredictor, run_tool  # noqa: E402
from fastreid_ms.utils.env import seed_all_rng, set_device  # noqa: E402
from fastreid_ms.utils.logger import setup_logger  # noqa: E402

logger = logging.getLogger("fastreid_ms.extract_features")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Extract re-id features of images with a trained model")
    parser.add_argument("--config-file", metavar="FILE", required=True, help="path to config file")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", help="a folder, a quoted glob pattern or a text file listing image paths")
    source.add_argument("--dataset", help="a registered test set (query then gallery images) under DATASETS.ROOT")
    parser.add_argument("--output", metavar="DIR", required=True, help="folder for features.npy and names.txt")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--flip", action="store_true", help="average with the horizontally flipped image")
    parser.add_argument("--normalize", action="store_true", help="L2-normalise the features")
    parser.add_argument("opts", default=[], nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    return parser


def list_images(source: str):
    """The image paths of a folder (recursive, sorted), a glob pattern (sorted) or a text file of paths (its
    order; relative paths are taken from the file's folder)."""
    if os.path.isdir(source):
        paths = sorted(os.path.join(d, f) for d, _, files in os.walk(source) for f in files
                       if f.lower().endswith(IMAGE_EXTENSIONS))
    elif os.path.isfile(source) and not source.lower().endswith(IMAGE_EXTENSIONS):
        base = os.path.dirname(os.path.abspath(source))
        with open(source) as f:
            paths = [os.path.join(base, line.strip()) for line in f if line.strip()]
    else:
        paths = sorted(glob.glob(source, recursive=True))
    if not paths:
        raise ValueError(f"--input {source!r}: no images found (a folder, a glob pattern or a text file listing "
                         f"image paths)")
    return paths


def dataset_images(cfg, name: str):
    if name not in DATASET_REGISTRY:
        raise ValueError(f"--dataset {name!r} is not a registered dataset; known: {sorted(DATASET_REGISTRY.names())}")
    data = build_test_dataset(cfg, name)
    return [item[0] for item in list(data.query) + list(data.gallery)]


def extract(predictor: DefaultPredictor, paths, batch_size: int, flip: bool, normalize: bool) -> np.ndarray:
    features, start = [], time.perf_counter()
    for begin in range(0, len(paths), batch_size):
        batch = np.stack([predictor.prepare(p) for p in paths[begin:begin + batch_size]])
        feats = predictor(batch)
        if flip:
            feats = (feats + predictor(batch[..., ::-1])) / 2
        features.append(feats.astype(np.float32))
        done = min(begin + batch_size, len(paths))
        rate = done / max(time.perf_counter() - start, 1e-9)
        logger.info("%d/%d images, %.1f images/s, eta %.0f s", done, len(paths), rate, (len(paths) - done) / rate)
    out = np.concatenate(features)
    if normalize:
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out


def main(args) -> None:
    cfg = get_cfg()
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    setup_logger(name="fastreid_ms")
    set_device(cfg.MODEL.DEVICE)
    seed_all_rng(None if cfg.SEED < 0 else cfg.SEED)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if not cfg.MODEL.WEIGHTS:
        raise ValueError("MODEL.WEIGHTS is empty: extract_features.py needs a trained model's .ckpt or .pth")
    paths = list_images(args.input) if args.input else dataset_images(cfg, args.dataset)
    predictor = DefaultPredictor(cfg)
    features = extract(predictor, paths, args.batch_size, args.flip, args.normalize)
    os.makedirs(args.output, exist_ok=True)
    np.save(os.path.join(args.output, "features.npy"), features)
    with open(os.path.join(args.output, "names.txt"), "w") as f:
        f.write("".join(p + "\n" for p in paths))
    logger.info("%d features of dimension %d written to %s", *features.shape, args.output)


if __name__ == "__main__":
    sys.exit(run_tool("extract_features.py", main, get_parser().parse_args()))
