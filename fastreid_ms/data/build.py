"""Train and test loaders from a config (FastReID / ACL-DGReID ``data/build.py``)."""
import inspect
import logging
from typing import List, Optional, Sequence, Tuple

from fastreid_ms.utils import comm

from . import samplers
from .common import CommDataset
from .data_utils import check_image_files, filter_readable
from .datasets import DATASET_REGISTRY
from .loader import ReidDataLoader
from .synthetic import ensure_synthetic_datasets
from .transforms import build_transforms

logger = logging.getLogger(__name__)

__all__ = ["build_inference_loader", "build_reid_train_loader", "build_reid_test_loader", "build_train_set",
           "build_train_sampler", "build_dataset", "build_test_dataset"]

# Batches prepared ahead of the consumer by every loader.
PREFETCH_BATCHES = 2


def build_dataset(name: str, root: str, **kwargs):
    """Instantiate a registered dataset; an unknown name fails listing the registered ones."""
    return DATASET_REGISTRY.get(name)(root=root, **kwargs)


def build_train_set(cfg, transforms=None, combineall: Optional[bool] = None,
                    **dataset_kwargs) -> Tuple[CommDataset, List[CommDataset]]:
    """The combined train set of ``DATASETS.NAMES`` and one set per domain.

    Reference behaviour (ACL-DGReID): domain id = position in ``DATASETS.NAMES``; the combined set relabels pids per
    domain in sorted string order, domains concatenated (domain 0 first), so labels are global and contiguous; the
    per-domain sets share the combined set's ``pid_dict`` (their targets are global labels too) but keep their own
    camera numbering. ``num_classes_per_domain`` (ids of every domain, in order) feeds ``MODEL.HEADS.
    NUM_CLASSES_PER_DOMAIN`` (or ``NUM_CLASSES1/2/3`` for three domains); ``num_classes1/2/3`` are its first three
    entries (0 when absent).
    """
    names = list(cfg.DATASETS.NAMES)
    if not names:
        raise ValueError("DATASETS.NAMES is empty; name at least one registered dataset, e.g. ('Market1501',)")
    if len(set(names)) != len(names):
        raise ValueError(f"DATASETS.NAMES={tuple(names)} lists a dataset twice; each source domain must be unique")
    ensure_synthetic_datasets(cfg)
    if transforms is None:
        transforms = build_transforms(cfg, is_train=True)
    combineall = cfg.DATASETS.COMBINEALL if combineall is None else combineall

    train_items, domain_ids, per_domain = [], [], []
    for domain, name in enumerate(names):
        data = build_dataset(name, cfg.DATASETS.ROOT, combineall=combineall, **dataset_kwargs)
        if comm.is_main_process():
            data.show_train()
        items = data.train
        if cfg.DATALOADER.SKIP_UNREADABLE_IMAGES:
            items = filter_readable(items, f"{name} train")
        else:
            check_image_files(items, f"{name} train")
        if not items:
            raise ValueError(f"{name}: no training images found under DATASETS.ROOT={cfg.DATASETS.ROOT!r}")
        per_domain.append(items)
        train_items += items
        domain_ids += [domain] * len(items)

    train_set = CommDataset(train_items, transforms, relabel=True, domain_ids=domain_ids)
    num_pids = [len({item[1] for item in items}) for items in per_domain]
    single_sets = []
    for domain, items in enumerate(per_domain):
        single = CommDataset(items, transforms, relabel=True, domain_ids=domain, offset=sum(num_pids[:domain]))
        single.pid_dict = train_set.pid_dict
        single_sets.append(single)
    for dataset in [train_set] + single_sets:
        dataset.num_classes_per_domain = list(num_pids)
        dataset.num_classes1, dataset.num_classes2, dataset.num_classes3 = (num_pids + [0, 0, 0])[:3]
    logger.info("Train domains %s: ids per domain %s, %d images", dict(enumerate(names)), num_pids, len(train_set))
    return train_set, single_sets


def build_train_sampler(name: str, dataset: CommDataset, mini_batch_size: int, num_instance: int, seed: int,
                        rank: Optional[int] = None, world_size: Optional[int] = None):
    """``DATALOADER.SAMPLER_TRAIN``: TrainingSampler, NaiveIdentitySampler or BalancedIdentitySampler."""
    if name == "TrainingSampler":
        return samplers.TrainingSampler(len(dataset), seed=seed, rank=rank, world_size=world_size)
    if name == "NaiveIdentitySampler":
        return samplers.NaiveIdentitySampler(dataset.img_items, mini_batch_size, num_instance, seed=seed, rank=rank,
                                             world_size=world_size)
    if name == "BalancedIdentitySampler":
        return samplers.BalancedIdentitySampler(dataset.img_items, mini_batch_size, num_instance, seed=seed,
                                                rank=rank, world_size=world_size)
    raise ValueError(f"DATALOADER.SAMPLER_TRAIN={name!r} is not available; use TrainingSampler, "
                     f"NaiveIdentitySampler or BalancedIdentitySampler")


def _per_rank(total: int, world_size: int, key: str) -> int:
    if total <= 0 or total % world_size != 0:
        raise ValueError(f"{key}={total} must be a positive multiple of the world size {world_size} (it is the "
                         f"global batch, split across ranks)")
    return total // world_size


def build_reid_train_loader(cfg, *, combineall: Optional[bool] = None,
                            **dataset_kwargs) -> Tuple[ReidDataLoader, List[ReidDataLoader]]:
    """Return ``(train_loader, [domain_loader_0, ...])``: the mixed loader over all ``DATASETS.NAMES`` with
    ``SOLVER.IMS_PER_BATCH`` images per batch, and one loader per source domain with half of it (what the
    ACL-DGReID meta-learning step draws its meta-train/meta-test batches from).

    All loaders are infinite, use ``DATALOADER.SAMPLER_TRAIN`` with ``DATALOADER.NUM_INSTANCE`` images per id and
    ``DATALOADER.NUM_WORKERS`` workers, and are seeded from ``SEED`` (``samplers.sampler_seeds``: the mixed loader
    takes the first seed, domain d the (d+2)-th, matching the reference's sampler construction order).

    Every process of a data-parallel run gets the same whole (global) batches: a batch depends on ``SEED`` and
    its position in the stream only, never on the number of processes, and the training step cuts it into the
    ``SOLVER.DP_REPLICAS`` chunks and computes this process's share of them. ``train_loader.dataset`` is the
    combined ``CommDataset`` (``num_classes``, ``num_classes_per_domain``) and ``train_loader.num_domains`` the number
    of source domains.
    """
    train_set, single_sets = build_train_set(cfg, combineall=combineall, **dataset_kwargs)
    seeds = samplers.sampler_seeds(cfg.SEED, 1 + len(single_sets))
    sampler_name, num_instance = cfg.DATALOADER.SAMPLER_TRAIN, cfg.DATALOADER.NUM_INSTANCE
    batch_size = cfg.SOLVER.IMS_PER_BATCH
    if batch_size < 2:
        raise ValueError(f"SOLVER.IMS_PER_BATCH={batch_size} must be at least 2 (the per-domain loaders draw half "
                         f"of it)")
    logger.info("Using training sampler %s (seeds %s)", sampler_name, seeds)

    def loader(dataset, size, seed):
        sampler = build_train_sampler(sampler_name, dataset, size, num_instance, seed, rank=0, world_size=1)
        return ReidDataLoader(dataset, sampler, size, num_workers=cfg.DATALOADER.NUM_WORKERS, drop_last=True,
                              seed=seed, prefetch_batches=PREFETCH_BATCHES)

    train_loader = loader(train_set, batch_size, seeds[0])
    train_loader.num_domains = len(single_sets)
    single_loaders = [loader(dataset, batch_size // 2, seed) for dataset, seed in zip(single_sets, seeds[1:])]
    for single in single_loaders:
        single.num_domains = len(single_sets)
    return train_loader, single_loaders


def build_test_dataset(cfg, dataset_name: str, **dataset_kwargs):
    """The registered test dataset ``dataset_name`` under ``DATASETS.ROOT`` (generated first when synthetic data is
    enabled); datasets with several splits (a ``split_id`` argument) get ``DATASETS.SPLIT_ID`` unless
    ``dataset_kwargs`` names one."""
    ensure_synthetic_datasets(cfg)
    if "split_id" in inspect.signature(DATASET_REGISTRY.get(dataset_name)).parameters:
        dataset_kwargs.setdefault("split_id", cfg.DATASETS.SPLIT_ID)
    return build_dataset(dataset_name, cfg.DATASETS.ROOT, **dataset_kwargs)


def build_reid_test_loader(cfg, dataset_name: str, *, rank: Optional[int] = None, world_size: Optional[int] = None,
                           **dataset_kwargs) -> Tuple[ReidDataLoader, int]:
    """Return ``(test_loader, num_query)``: query images first, then gallery, in order, each exactly once (no
    shuffling, last batch kept), ``TEST.IMS_PER_BATCH`` per global batch; raw int pids/camids, domain id 0.
    With ``world_size`` > 1 each rank reads a contiguous shard (FastReID ``InferenceSampler``)."""
    rank = comm.get_rank() if rank is None else rank
    world_size = comm.get_world_size() if world_size is None else world_size
    data = build_test_dataset(cfg, dataset_name, **dataset_kwargs)
    query, gallery = data.query, data.gallery
    if cfg.DATALOADER.SKIP_UNREADABLE_IMAGES:
        query = filter_readable(query, f"{dataset_name} query")
        gallery = filter_readable(gallery, f"{dataset_name} gallery")
    else:
        check_image_files(list(query) + list(gallery), f"{dataset_name} query/gallery")
    if not query or not gallery:
        raise ValueError(f"{dataset_name} has {len(query)} query and {len(gallery)} gallery images; it cannot be "
                         f"used in DATASETS.TESTS (train-only datasets such as cuhkSYSU have no test split)")
    data._query, data._gallery = query, gallery
    if comm.is_main_process():
        data.show_test()
    return build_inference_loader(cfg, query + gallery, rank=rank, world_size=world_size), len(query)


def build_inference_loader(cfg, items: Sequence, *, rank: int = 0, world_size: int = 1) -> ReidDataLoader:
    """A loader over ``items`` (``(img_path, pid, camid)``) in order, each exactly once, with the test transform
    (``INPUT.SIZE_TEST``) and ``TEST.IMS_PER_BATCH`` per global batch; raw pids/camids, domain id 0; rank
    ``rank`` of ``world_size`` reads a contiguous shard."""
    dataset = CommDataset(list(items), build_transforms(cfg, is_train=False), relabel=False, domain_ids=0)
    batch_size = _per_rank(cfg.TEST.IMS_PER_BATCH, world_size, "TEST.IMS_PER_BATCH")
    sampler = samplers.InferenceSampler(len(dataset), rank=rank, world_size=world_size)
    return ReidDataLoader(dataset, sampler, batch_size, num_workers=cfg.DATALOADER.NUM_WORKERS, drop_last=False,
                          prefetch_batches=PREFETCH_BATCHES)


def registered_datasets() -> Sequence[str]:
    """Names accepted in ``DATASETS.NAMES`` / ``DATASETS.TESTS``."""
    return DATASET_REGISTRY.names()
