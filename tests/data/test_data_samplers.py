"""Samplers: P x K structure (also for ids with fewer than K images), Balanced/Training/Inference samplers,
seeding from SEED, and rank sharding (each rank a disjoint part of every global batch)."""
import itertools
from collections import Counter

import numpy as np
import pytest

from fastreid_ms.data import build_reid_train_loader, build_train_sampler
from fastreid_ms.data.datasets import Market1501, cuhkSYSU
from fastreid_ms.data.samplers import (BalancedIdentitySampler, InferenceSampler, NaiveIdentitySampler,
                                       TrainingSampler, sampler_seeds)


def _take(sampler, batch_size, count):
    stream = iter(sampler)
    return [list(itertools.islice(stream, batch_size)) for _ in range(count)]


def _assert_pk(batch, items, num_instances):
    pids = [items[i][1] for i in batch]
    counts = Counter(pids)
    assert all(c == num_instances for c in counts.values()), counts
    assert len(counts) == len(batch) // num_instances
    for start in range(0, len(batch), num_instances):
        assert len(set(pids[start:start + num_instances])) == 1, "the K images of an id are adjacent"


@pytest.mark.parametrize("num_instances", [2, 4])
def test_naive_identity_sampler_pk_structure(synthetic_root, num_instances):
    items = cuhkSYSU(root=synthetic_root[0]).train
    small = [pid for pid, n in Counter(i[1] for i in items).items() if n < num_instances]
    assert small, "the synthetic set must contain ids with fewer than K images"
    sampler = NaiveIdentitySampler(items, 4 * num_instances, num_instances, seed=11, rank=0, world_size=1)
    for batch in _take(sampler, 4 * num_instances, 30):
        _assert_pk(batch, items, num_instances)


def test_balanced_identity_sampler_prefers_other_cameras(synthetic_root):
    items = Market1501(root=synthetic_root[0]).train
    sampler = BalancedIdentitySampler(items, 8, 2, seed=5, rank=0, world_size=1)
    multi_cam = {pid for pid in {i[1] for i in items} if len({i[2] for i in items if i[1] == pid}) > 1}
    for batch in _take(sampler, 8, 20):
        pids = [items[i][1] for i in batch]
        assert all(c == 2 for c in Counter(pids).values())
        for start in range(0, 8, 2):
            a, b = batch[start], batch[start + 1]
            if pids[start] in multi_cam:
                assert items[a][2] != items[b][2], "second image of a multi-camera id comes from another camera"


def test_training_sampler_yields_permutations():
    sampler = TrainingSampler(13, seed=4, rank=0, world_size=1)
    stream = list(itertools.islice(iter(sampler), 13 * 3))
    for k in range(3):
        assert sorted(stream[13 * k:13 * (k + 1)]) == list(range(13))
    assert stream[:13] != stream[13:26]


def test_inference_sampler_shards_cover_the_range_once():
    shards = [list(InferenceSampler(11, rank=r, world_size=3)) for r in range(3)]
    assert sum(shards, []) == list(range(11))
    assert all(s == list(range(s[0], s[-1] + 1)) for s in shards)


def test_sampler_seeds_reproducible_and_distinct():
    assert sampler_seeds(3, 4) == sampler_seeds(3, 4)
    assert len(set(sampler_seeds(3, 4))) == 4 and sampler_seeds(3, 4) != sampler_seeds(4, 4)
    np.random.seed(99)
    fresh = sampler_seeds(-1, 2)
    np.random.seed(99)
    assert sampler_seeds(-1, 2) == fresh


def test_too_few_identities_fails_clearly(synthetic_root):
    items = cuhkSYSU(root=synthetic_root[0]).train
    with pytest.raises(ValueError, match="identities"):
        NaiveIdentitySampler(items[:3], 8, 2, seed=0, rank=0, world_size=1)


@pytest.mark.parametrize("sampler_name", ["NaiveIdentitySampler", "BalancedIdentitySampler", "TrainingSampler"])
def test_sampler_ranks_get_disjoint_parts_of_every_global_batch(make_cfg, sampler_name):
    """Samplers built for rank r of 2 (FastReID's sharding, for users who build their own loaders) partition the
    global stream's batches; with identity samplers each part is itself P x K."""
    cfg = make_cfg(DATALOADER__SAMPLER_TRAIN=sampler_name, SOLVER__IMS_PER_BATCH=16)
    dataset = build_reid_train_loader(cfg)[0].dataset
    k = cfg.DATALOADER.NUM_INSTANCE
    shards = [build_train_sampler(sampler_name, dataset, 8, k, seed=3, rank=r, world_size=2) for r in range(2)]
    global_stream = shards[0]._infinite_indices()
    rank_streams = [iter(sampler) for sampler in shards]
    for _ in range(10):
        parts = [list(itertools.islice(s, 8)) for s in rank_streams]
        whole = list(itertools.islice(global_stream, 16))
        assert sorted(parts[0] + parts[1]) == sorted(whole)
        if sampler_name != "TrainingSampler":
            for part in parts:
                _assert_pk(part, dataset.img_items, k)


def test_train_loaders_give_every_process_the_whole_batch(make_cfg):
    """Data-parallel processes all load the global batch (the step takes its share of the replica chunks)."""
    train_loader, domain_loaders = build_reid_train_loader(make_cfg(SOLVER__IMS_PER_BATCH=16))
    assert train_loader.batch_size == 16 and all(d.batch_size == 8 for d in domain_loaders)
