"""Loaders: batch format, multi-domain relabelling and domain ids, per-domain loaders, the test loader's order,
determinism for any number of workers, exact resume, infinite streams."""

import numpy as np
import pytest

from fastreid_ms.data import build_reid_test_loader, build_reid_train_loader, build_train_set


def _batches(loader, count):
    it = iter(loader)
    out = [next(it) for _ in range(count)]
    loader.close()
    return out


def test_batch_format(make_cfg):
    loader, _ = build_reid_train_loader(make_cfg())
    batch = _batches(loader, 1)[0]
    assert set(batch) == {"images", "targets", "camids", "domainids", "img_paths"}
    assert batch["images"].dtype == np.float32 and batch["images"].shape == (8, 3, 64, 32)
    assert 0 <= batch["images"].min() and batch["images"].max() <= 255 and batch["images"].max() > 1
    for key in ("targets", "camids", "domainids"):
        assert batch[key].dtype == np.int64 and batch[key].shape == (8,)
    assert batch["img_paths"].dtype.kind == "U" and batch["img_paths"].shape == (8,)


def test_relabel_and_domain_ids(make_cfg, synthetic_root):
    _, summary = synthetic_root
    names = ("cuhkSYSU", "Market1501", "MSMT17")
    train_set, singles = build_train_set(make_cfg(names=names))
    counts = [summary[n]["train"]["ids"] for n in names]
    assert [train_set.num_classes1, train_set.num_classes2, train_set.num_classes3] == counts
    assert train_set.num_classes == sum(counts)
    offsets = np.cumsum([0] + counts)
    for domain, name in enumerate(names):
        rows = train_set.domainids == domain
        assert rows.sum() == summary[name]["train"]["images"]
        labels = train_set.targets[rows]
        assert labels.min() == offsets[domain] and labels.max() == offsets[domain + 1] - 1
        assert len(set(labels.tolist())) == counts[domain]
        pids = sorted({item[1] for item, r in zip(train_set.img_items, rows) if r})
        for label, pid in enumerate(pids):
            assert train_set.pid_dict[pid] == offsets[domain] + label, "sorted string order within a domain"
        single = singles[domain]
        assert single.pid_dict is train_set.pid_dict
        assert (single.domainids == domain).all()
        np.testing.assert_array_equal(single.targets, labels)


def test_domain_id_is_position_in_names(make_cfg):
    train_set, _ = build_train_set(make_cfg(names=("MSMT17", "cuhkSYSU")))
    for item, domain in zip(train_set.img_items, train_set.domainids.tolist()):
        assert item[1].startswith(("MSMT17_", "cuhkSYSU_")[domain])
    assert train_set.num_classes3 == 0


def test_per_domain_loaders_hold_one_domain_and_half_batch(make_cfg):
    cfg = make_cfg()
    mixed, singles = build_reid_train_loader(cfg)
    assert mixed.num_domains == 3 and len(singles) == 3
    assert mixed.dataset.num_classes == sum(s.dataset.num_classes for s in singles)
    for domain, loader in enumerate(singles):
        assert loader.batch_size == cfg.SOLVER.IMS_PER_BATCH // 2
        for batch in _batches(loader, 3):
            assert set(batch["domainids"].tolist()) == {domain}
            lo = sum(s.dataset.num_classes for s in singles[:domain])
            assert ((lo <= batch["targets"]) & (batch["targets"] < lo + loader.dataset.num_classes)).all()
    mixed_domains = set()
    for batch in _batches(mixed, 5):
        mixed_domains |= set(batch["domainids"].tolist())
    assert mixed_domains == {0, 1, 2}


def test_mixed_batches_are_pk(make_cfg):
    cfg = make_cfg(DATALOADER__NUM_INSTANCE=4, SOLVER__IMS_PER_BATCH=16)
    loader, _ = build_reid_train_loader(cfg)
    for batch in _batches(loader, 4):
        targets = batch["targets"].reshape(-1, 4)
        assert (targets == targets[:, :1]).all() and len(set(targets[:, 0].tolist())) == 4


def test_test_loader_yields_every_image_once_in_order(make_cfg, synthetic_root):
    cfg = make_cfg(TEST__IMS_PER_BATCH=6)
    loader, num_query = build_reid_test_loader(cfg, "CUHK03")
    data = loader.dataset
    assert num_query == synthetic_root[1]["CUHK03"]["query"]["images"]
    for _ in range(2):
        batches = list(loader)
        paths = np.concatenate([b["img_paths"] for b in batches]).tolist()
        assert paths == data.img_paths.tolist() and len(paths) == len(set(paths))
        assert len(batches) == len(loader) == -(-len(data) // 6)
        targets = np.concatenate([b["targets"] for b in batches])
        np.testing.assert_array_equal(targets, [int(i[1]) for i in data.img_items])
        assert (np.concatenate([b["domainids"] for b in batches]) == 0).all()


def _same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])


def test_deterministic_for_any_number_of_workers(make_cfg):
    overrides = dict(INPUT__AUTOAUG__ENABLED=True, INPUT__AUTOAUG__PROB=0.5, INPUT__REA__ENABLED=True,
                     INPUT__RPT__ENABLED=True)
    runs = []
    for workers in (0, 2):
        loader, _ = build_reid_train_loader(make_cfg(DATALOADER__NUM_WORKERS=workers, **overrides))
        runs.append(_batches(loader, 4))
    _same_batches(runs[0], runs[1])
    other, _ = build_reid_train_loader(make_cfg(SEED=4, **overrides))
    assert not np.array_equal(_batches(other, 1)[0]["images"], runs[0][0]["images"])


def test_resume_restarts_exactly_at_consumed_batch(make_cfg):
    cfg = make_cfg(DATALOADER__NUM_WORKERS=1)
    loader, _ = build_reid_train_loader(cfg)
    it = iter(loader)
    first = [next(it) for _ in range(3)]
    state = loader.state_dict()
    assert state["batches_consumed"] == 3, "prefetched batches are not counted"
    rest = [next(it) for _ in range(3)]
    loader.close()

    resumed, _ = build_reid_train_loader(cfg)
    resumed.load_state_dict(state)
    _same_batches(_batches(resumed, 3), rest)
    assert resumed.state_dict()["batches_consumed"] == 6
    assert first[0]["img_paths"].tolist() != rest[0]["img_paths"].tolist()


def test_resume_restores_a_random_seed(make_cfg):
    loader, _ = build_reid_train_loader(make_cfg(SEED=-1))
    it = iter(loader)
    next(it)
    state = loader.state_dict()
    expected = next(it)
    loader.close()
    np.random.seed(12345)
    other, _ = build_reid_train_loader(make_cfg(SEED=-1))
    assert other.state_dict()["sampler_seed"] != state["sampler_seed"]
    other.load_state_dict(state)
    _same_batches(_batches(other, 1), [expected])


def test_train_loader_never_runs_dry(make_cfg):
    loader, singles = build_reid_train_loader(make_cfg())
    single = singles[1]
    n = 3 * len(single.dataset) // single.batch_size + 2
    batches = _batches(single, n)
    assert len(batches) == n


def test_batch_size_must_leave_the_domain_loaders_images(make_cfg):
    with pytest.raises(ValueError, match="SOLVER.IMS_PER_BATCH=1 must be at least 2"):
        build_reid_train_loader(make_cfg(SOLVER__IMS_PER_BATCH=1))


def test_same_pid_in_two_domains_is_rejected():
    from fastreid_ms.data import CommDataset

    items = [("a.jpg", "X_1", "X_0"), ("b.jpg", "X_1", "X_1")]
    with pytest.raises(ValueError, match="more than one domain"):
        CommDataset(items, domain_ids=[0, 1])
