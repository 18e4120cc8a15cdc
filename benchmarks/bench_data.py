"""Training-data throughput: images/s of the full reference training pipeline (read JPEG, RandomApply AutoAugment
p=0.1, bicubic resize to 256x128, pad 10 + random crop, flip, always-on ColorJitter p=0.5, float CHW) through
``build_reid_train_loader`` with NaiveIdentitySampler, on a synthetic 3-domain dataset of 128x64 crops (the size of
Market-1501's), for a given number of workers. Ends with one JSON line of its figures.

    python benchmarks/bench_data.py [--workers 2] [--batches 30] [--batch-size 64]
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastreid_ms.config import get_cfg  # noqa: E402
from fastreid_ms.data import build_reid_train_loader  # noqa: E402
from fastreid_ms.data.synthetic import SyntheticSizes, make_synthetic_reid  # noqa: E402


def reference_cfg(root: str, workers: int, batch_size: int):
    cfg = get_cfg()
    cfg.DATASETS.ROOT = root
    cfg.DATASETS.NAMES = ("cuhkSYSU", "Market1501", "MSMT17")
    cfg.INPUT.SIZE_TRAIN = [256, 128]
    cfg.INPUT.AUTOAUG.ENABLED = True
    cfg.INPUT.AUTOAUG.PROB = 0.1
    cfg.INPUT.PADDING.ENABLED = True
    cfg.INPUT.FLIP.ENABLED = True
    cfg.DATALOADER.SAMPLER_TRAIN = "NaiveIdentitySampler"
    cfg.DATALOADER.NUM_INSTANCE = 2
    cfg.DATALOADER.NUM_WORKERS = workers
    cfg.SOLVER.IMS_PER_BATCH = batch_size
    cfg.SEED = 0
    return cfg


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batches", type=int, default=30, help="timed batches (after 3 warm-up batches)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--root", default=None, help="dataset root to use instead of a fresh synthetic one")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = args.root or tmp
        if args.root is None:
            sizes = SyntheticSizes(num_train_ids=64, num_test_ids=2, min_images=2, max_images=6)
            make_synthetic_reid(root, ["cuhkSYSU", "Market1501", "MSMT17"], seed=0, image_size=(128, 64),
                                sizes={n: sizes for n in ("cuhkSYSU", "Market1501", "MSMT17")})
        cfg = reference_cfg(root, args.workers, args.batch_size)
        loader, _ = build_reid_train_loader(cfg)
        it = iter(loader)
        start = time.perf_counter()
        for _ in range(3):
            batch = next(it)
        first = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(args.batches):
            batch = next(it)
        elapsed = time.perf_counter() - start
        loader.close()

    images = args.batches * args.batch_size
    result = {"bench": "data", "images_per_s": round(images / elapsed, 1), "workers": args.workers,
              "batch_size": args.batch_size, "image_size": list(batch["images"].shape[2:]),
              "timed_batches": args.batches, "seconds": round(elapsed, 3), "warmup_3_batches_s": round(first, 3),
              "cpu_count": os.cpu_count()}
    print(f"{result['images_per_s']} training images/s at {result['image_size']} with {args.workers} workers "
          f"(batch {args.batch_size})")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
