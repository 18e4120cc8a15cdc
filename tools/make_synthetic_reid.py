"""Write small synthetic re-id datasets in the real on-disk layouts (see fastreid_ms.data.synthetic).

Example:
    python tools/make_synthetic_reid.py --root datasets_synthetic --train-ids 32 --test-ids 16
    then point DATASETS.ROOT (or the FASTREID_DATASETS environment variable) at datasets_synthetic

A dataset folder that already holds files written with other settings (or not described by the root's
synthetic_reid.json) is refused with one line, as are counts below 1; running it again with the same settings
rewrites the same files.
"""
import argparse
import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastreid_ms.data.synthetic import ALL_DATASETS, SyntheticSizes, make_synthetic_reid  # noqa: E402
from fastreid_ms.engine import run_tool  # noqa: E402


def parse_args(argv=None):
    defaults = SyntheticSizes()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="folder to write (use it as DATASETS.ROOT / FASTREID_DATASETS)")
    parser.add_argument("--datasets", nargs="+", default=list(ALL_DATASETS), choices=ALL_DATASETS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--height", type=int, default=128, help="image height (Market-1501 crops: 128)")
    parser.add_argument("--width", type=int, default=64, help="image width (Market-1501 crops: 64)")
    parser.add_argument("--train-ids", type=int, default=defaults.num_train_ids)
    parser.add_argument("--test-ids", type=int, default=defaults.num_test_ids)
    parser.add_argument("--min-images", type=int, default=defaults.min_images, help="images per train id (min)")
    parser.add_argument("--max-images", type=int, default=defaults.max_images, help="images per train id (max)")
    parser.add_argument("--test-images", type=int, default=defaults.test_images,
                        help="gallery images per camera of a test id")
    parser.add_argument("--test-cameras", type=int, default=defaults.test_cameras, help="cameras per test id")
    parser.add_argument("--distractors", type=int, default=defaults.num_distractors)
    parser.add_argument("--msmt17-version", choices=("V1", "V2"), default="V1")
    parser.add_argument("--market1501-dir", default="Market-1501-v15.09.15",
                        help="Market-1501-v15.09.15 (FastReID) or market1501/Market-1501-v15.09.15 (ACL-DGReID)")
    parser.add_argument("--cuhk03-dir", default="cuhk03", help="cuhk03 (FastReID) or cuhk03_new (ACL-DGReID)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sizes = SyntheticSizes(num_train_ids=args.train_ids, num_test_ids=args.test_ids, min_images=args.min_images,
                           max_images=args.max_images, test_images=args.test_images, test_cameras=args.test_cameras,
                           num_distractors=args.distractors)
    summary = make_synthetic_reid(args.root, args.datasets, seed=args.seed, image_size=(args.height, args.width),
                                  sizes={name: sizes for name in args.datasets}, msmt17_version=args.msmt17_version,
                                  market1501_dir=args.market1501_dir, cuhk03_dir=args.cuhk03_dir)
    print(json.dumps({name: {k: v for k, v in s.items() if k in ("folder", "train", "query", "gallery")}
                      for name, s in summary.items()}, indent=1))


if __name__ == "__main__":
    sys.exit(run_tool("make_synthetic_reid.py", main))
