"""Router analysis of the dynamic-router ResNet: which experts each domain is sent to.

Each of the four stages of the DR backbone mixes K expert Bottlenecks with per-image softmax weights from its
HyperRouter. :func:`analyze_routers` runs the eval-mode backbone on up to ``max_images`` images of every source
domain (``DATASETS.NAMES``, train split) and of every target set (``DATASETS.TESTS``, query + gallery, split
``DATASETS.SPLIT_ID``), drawn reproducibly from ``SEED``, through the test transform, and averages the routing
weights per domain: a (4 routers x K experts) table per domain. Domains routed alike share experts; a source whose
experts differ from the others' is specialised. :func:`router_table` formats it for the log and
:func:`save_router_plot` draws it as a PNG.

The forward runs op by op (no graph is compiled for these few images).
"""
import logging
from collections import OrderedDict
from typing import Dict, List, Sequence

import numpy as np
from mindspore import Tensor
from tabulate import tabulate

from fastreid_ms.data.build import build_dataset, build_inference_loader, build_test_dataset
from fastreid_ms.utils.visualizer import save_weight_grid
from .evaluator import inference_context

__all__ = ["analyze_routers", "router_table", "routing_weights", "save_router_plot"]

logger = logging.getLogger(__name__)

NUM_ROUTERS = 4


def _sample(items: Sequence, max_images: int, seed: int) -> List:
    """Up to ``max_images`` of ``items`` (in their order) as ``(img_path, 0, 0)``: labels play no part here."""
    keep = range(len(items)) if len(items) <= max_images else \
        np.sort(np.random.default_rng(seed).choice(len(items), max_images, replace=False))
    return [(items[i][0], 0, 0) for i in keep]


def routing_weights(model, loader) -> np.ndarray:
    """The (N, 4, K) routing weights of the images of ``loader`` (a Baseline with the dynamic-router backbone, run in
    eval mode; the backbone's batch norms use and keep their running statistics)."""
    batches = []
    with inference_context(model):
        for batch in loader:
            images = model.preprocess_image(Tensor(np.ascontiguousarray(batch["images"], dtype=np.float32)))
            paths = model.backbone(images, False)[1].asnumpy()
            batches.append(paths.reshape(paths.shape[0], NUM_ROUTERS, -1))
    return np.concatenate(batches, axis=0)


def analyze_routers(cfg, model, max_images: int) -> "OrderedDict[str, np.ndarray]":
    """``{"<name> (source)" / "<name> (target)": (4, K) mean routing weights}`` (see the module docstring)."""
    if not getattr(model, "is_meta", False):
        raise ValueError("router analysis needs the dynamic-router backbone with the ACL-DGReID head "
                         "(MODEL.HEADS.NAME MetaEmbeddingHead); this model has no routers")
    if max_images < 1:
        raise ValueError(f"TEST.ROUTER_ANALYSIS.NUM_IMAGES={max_images} must be >= 1 to analyse the routers")
    seed = max(int(cfg.SEED), 0)
    domains = OrderedDict()
    for name in cfg.DATASETS.NAMES:
        domains[f"{name} (source)"] = build_dataset(name, cfg.DATASETS.ROOT).train
    for name in cfg.DATASETS.TESTS:
        data = build_test_dataset(cfg, name)
        domains[f"{name} (target)"] = list(data.query) + list(data.gallery)
    means = OrderedDict()
    for index, (label, items) in enumerate(domains.items()):
        if not items:
            raise ValueError(f"router analysis: {label} has no images under DATASETS.ROOT={cfg.DATASETS.ROOT!r}")
        weights = routing_weights(model, build_inference_loader(cfg, _sample(items, max_images, seed + index)))
        means[label] = weights.mean(axis=0)
    return means


def router_table(means: Dict[str, np.ndarray]) -> str:
    """The mean weights as a table: one row per domain, one column per (router, expert)."""
    num_experts = next(iter(means.values())).shape[1]
    headers = ["domain"] + [f"R{r + 1}e{e + 1}" for r in range(NUM_ROUTERS) for e in range(num_experts)]
    rows = [[label] + [float(v) for v in values.reshape(-1)] for label, values in means.items()]
    return tabulate(rows, headers=headers, tablefmt="pipe", floatfmt=".3f")


def save_router_plot(means: Dict[str, np.ndarray], path: str, title: str = "Mean routing weights") -> str:
    """Draw the mean weights as a grid (rows: domains; column groups: routers; columns: experts) to ``path``."""
    num_experts = next(iter(means.values())).shape[1]
    values = np.stack(list(means.values()))
    return save_weight_grid(values, list(means), [f"router {r + 1}" for r in range(NUM_ROUTERS)],
                            [f"e{e + 1}" for e in range(num_experts)], path, title)
