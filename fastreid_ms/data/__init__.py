"""Data side of fastreid_ms: datasets, samplers, transforms and MindSpore-dataset loaders.

``build_reid_train_loader(cfg)`` -> ``(mixed_loader, [per-domain loaders])``;
``build_reid_test_loader(cfg, name)`` -> ``(loader, num_query)``. Batches are dicts of numpy arrays:
images (float32 NCHW, 0..255), targets, camids, domainids (int64) and img_paths (str).
"""
from . import samplers, transforms
from .build import build_reid_test_loader, build_reid_train_loader, build_train_sampler, build_train_set
from .common import CommDataset
from .data_utils import ImageReadError, read_image
from .datasets import DATASET_REGISTRY, DatasetLayoutError, ImageDataset
from .loader import ReidDataLoader
from .synthetic import make_synthetic_reid

__all__ = ["DATASET_REGISTRY", "CommDataset", "DatasetLayoutError", "ImageDataset", "ImageReadError",
           "ReidDataLoader", "build_reid_test_loader", "build_reid_train_loader", "build_train_sampler",
           "build_train_set", "make_synthetic_reid", "read_image", "samplers", "transforms"]
