"""Shared fixtures of the data tests: one small synthetic copy of every dataset layout, and a config factory."""
import os
from pathlib import Path

import pytest

from fastreid_ms.config import get_cfg
from fastreid_ms.data.synthetic import ALL_DATASETS, SyntheticSizes, make_synthetic_reid

IMAGE_SIZE = (64, 32)
SIZES = SyntheticSizes(num_train_ids=10, num_test_ids=5, min_images=1, max_images=5, num_distractors=3,
                       num_junk=2, num_val=3)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A DATASETS.ROOT holding every synthetic layout (64 x 32 images) and the generator's statistics."""
    root = tmp_path_factory.mktemp("reid_datasets")
    summary = make_synthetic_reid(str(root), seed=7, image_size=IMAGE_SIZE,
                                  sizes={name: SIZES for name in ALL_DATASETS})
    return str(root), summary


@pytest.fixture
def make_cfg(synthetic_root):
    """``make_cfg(**overrides)``: a config reading the synthetic root, tiny images and batches, 0 workers."""

    def make(names=("cuhkSYSU", "Market1501", "MSMT17"), root=None, **overrides):
        cfg = get_cfg()
        cfg.DATASETS.ROOT = root or synthetic_root[0]
        cfg.DATASETS.NAMES = tuple(names)
        cfg.DATASETS.TESTS = ("CUHK03",)
        cfg.INPUT.SIZE_TRAIN = list(IMAGE_SIZE)
        cfg.INPUT.SIZE_TEST = list(IMAGE_SIZE)
        cfg.INPUT.PADDING.ENABLED = True
        cfg.INPUT.FLIP.ENABLED = True
        cfg.SOLVER.IMS_PER_BATCH = 8
        cfg.TEST.IMS_PER_BATCH = 8
        cfg.DATALOADER.SAMPLER_TRAIN = "NaiveIdentitySampler"
        cfg.DATALOADER.NUM_INSTANCE = 2
        cfg.DATALOADER.NUM_WORKERS = 0
        cfg.SEED = 3
        for key, value in overrides.items():
            node = cfg
            parts = key.split("__")
            for part in parts[:-1]:
                node = node[part]
            node[parts[-1]] = value
        return cfg

    return make


@pytest.fixture
def samples_dir() -> Path:
    """The real Market-1501 crops (``tests/data/samples``, or the folder named by ``FASTREID_MS_SAMPLES_DIR``)."""
    default = Path(__file__).resolve().parent / "samples"
    path = Path(os.environ.get("FASTREID_MS_SAMPLES_DIR", str(default)))
    if not path.is_dir() or not list(path.glob("*.jpg")):
        pytest.fail(f"sample folder {path} with Market-1501 crops is missing (set FASTREID_MS_SAMPLES_DIR)",
                    pytrace=False)
    return path
