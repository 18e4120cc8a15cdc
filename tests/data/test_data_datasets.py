"""Dataset classes: every synthetic layout (and its variants) parses to the generator's counts of ids, cameras and
images; train tuples are name-prefixed, test tuples raw ints; CUHK03 JSON paths follow a moved folder; the real
Market-1501 crops parse; a custom dataset is one registered class."""
import os
import re
import shutil

import pytest

from fastreid_ms.data import DATASET_REGISTRY, ImageDataset, build_reid_test_loader, build_reid_train_loader
from fastreid_ms.data.datasets import CUHK03, MSMT17, Market1501
from fastreid_ms.data.synthetic import SyntheticSizes, make_synthetic_reid

NAMES = ["Market1501", "DukeMTMC", "MSMT17", "cuhkSYSU", "CUHK03"]


def _stats(items):
    return {"ids": len({i[1] for i in items}), "images": len(items), "cams": len({i[2] for i in items})}


@pytest.mark.parametrize("name", NAMES)
def test_layout_parses_to_generated_counts(synthetic_root, name):
    root, summary = synthetic_root
    data = DATASET_REGISTRY.get(name)(root=root)
    for split in ("train", "query", "gallery"):
        assert _stats(getattr(data, split)) == summary[name][split], f"{name} {split}"
    for path, _, _ in data.train + data.query + data.gallery:
        assert os.path.isfile(path), path


@pytest.mark.parametrize("name", NAMES)
def test_train_items_are_prefixed_and_test_items_raw(synthetic_root, name):
    root, _ = synthetic_root
    data = DATASET_REGISTRY.get(name)(root=root)
    for _, pid, camid in data.train:
        assert re.fullmatch(rf"{name}_\d+", pid) and re.fullmatch(rf"{name}_\d+", camid), (pid, camid)
    for _, pid, camid in data.query + data.gallery:
        assert isinstance(pid, int) and isinstance(camid, int) and camid >= 0


def test_market_ids_and_cameras_come_from_file_names(synthetic_root):
    root, _ = synthetic_root
    data = Market1501(root=root)
    for path, pid, camid in data.query + data.gallery:
        stem = os.path.basename(path)
        assert pid == int(stem.split("_")[0]) and camid == int(stem.split("_")[1][1]) - 1
    junk = [n for n in os.listdir(os.path.join(data.data_dir, "bounding_box_test")) if n.startswith("-1_")]
    assert junk, "the synthetic gallery should contain junk (-1) images"
    assert not any(os.path.basename(p).startswith("-1_") for p, _, _ in data.gallery)
    assert any(pid == 0 for _, pid, _ in data.gallery), "distractors (pid 0) are kept in the gallery"


def test_msmt17_val_only_with_combineall(synthetic_root):
    root, summary = synthetic_root
    plain, combined = MSMT17(root=root), MSMT17(root=root, combineall=True)
    s = summary["MSMT17"]
    assert len(plain.train) == s["train"]["images"]
    assert len(combined.train) == s["train"]["images"] + s["val"]["images"] + s["query"]["images"] + \
        s["gallery"]["images"]
    num_train_ids = s["train"]["ids"]
    assert min(pid for _, pid, _ in plain.query + plain.gallery) >= num_train_ids, "test pids are offset"


def test_market_combineall_drops_junk_ids(synthetic_root):
    root, summary = synthetic_root
    combined = Market1501(root=root, combineall=True)
    s = summary["Market1501"]
    distractors = s["sizes"]["num_distractors"]
    assert len(combined.train) == s["train"]["images"] + s["query"]["images"] + s["gallery"]["images"] - distractors
    assert any(pid.startswith("Market1501_test_") for _, pid, _ in combined.train)


def test_cuhk03_detected_and_classic_splits(synthetic_root):
    root, summary = synthetic_root
    detected = CUHK03(root=root, cuhk03_labeled=False)
    for split in ("train", "query", "gallery"):
        assert _stats(getattr(detected, split)) == summary["CUHK03"]["detected"][split]
    assert all("images_detected" in p for p, _, _ in detected.train)
    classic = CUHK03(root=root, cuhk03_classic_split=True, split_id=1)
    assert classic.query and classic.gallery and classic.train


def test_layout_variants(tmp_path):
    sizes = {n: SyntheticSizes(num_train_ids=4, num_test_ids=2, min_images=1, max_images=3) for n in NAMES}
    summary = make_synthetic_reid(str(tmp_path), ["Market1501", "MSMT17", "CUHK03"], seed=1, image_size=(32, 16),
                                  sizes=sizes, msmt17_version="V2",
                                  market1501_dir=os.path.join("market1501", "Market-1501-v15.09.15"),
                                  cuhk03_dir="cuhk03_new")
    assert os.path.isdir(tmp_path / "MSMT17_V2" / "mask_train_v2")
    for name in ("Market1501", "MSMT17", "CUHK03"):
        data = DATASET_REGISTRY.get(name)(root=str(tmp_path))
        for split in ("train", "query", "gallery"):
            assert _stats(getattr(data, split)) == summary[name][split], f"{name} {split}"


def test_cuhk03_json_paths_follow_a_moved_folder(tmp_path):
    old_root, new_root = tmp_path / "old", tmp_path / "new"
    sizes = {"CUHK03": SyntheticSizes(num_train_ids=3, num_test_ids=2)}
    summary = make_synthetic_reid(str(old_root), ["CUHK03"], seed=2, image_size=(32, 16), sizes=sizes)
    new_root.mkdir()
    shutil.move(str(old_root / "cuhk03"), str(new_root / "cuhk03"))
    data = CUHK03(root=str(new_root))
    assert _stats(data.query) == summary["CUHK03"]["query"]
    for path, _, _ in data.train + data.query + data.gallery:
        assert path.startswith(str(new_root)) and os.path.isfile(path), path


def test_real_market_crops_parse_and_load(tmp_path, samples_dir, make_cfg):
    files = sorted(samples_dir.glob("*.jpg"))
    base = tmp_path / "Market-1501-v15.09.15"
    for sub in ("bounding_box_train", "query", "bounding_box_test"):
        (base / sub).mkdir(parents=True)
        for f in files:
            shutil.copy(f, base / sub / f.name)
    data = Market1501(root=str(tmp_path))
    expected = sorted((f.name, int(f.name.split("_")[0]), int(f.name.split("_")[1][1]) - 1) for f in files)
    assert sorted((os.path.basename(p), pid, cam) for p, pid, cam in data.query) == expected
    assert sorted((os.path.basename(p), pid) for p, pid, _ in data.train) == \
        sorted((n, f"Market1501_{pid}") for n, pid, _ in expected)

    cfg = make_cfg(names=("Market1501",), root=str(tmp_path), DATALOADER__SAMPLER_TRAIN="TrainingSampler",
                   SOLVER__IMS_PER_BATCH=4, INPUT__SIZE_TRAIN=[128, 64], INPUT__SIZE_TEST=[128, 64])
    loader, num_query = build_reid_test_loader(cfg, "Market1501")
    batches = list(loader)
    images = [b["images"] for b in batches]
    assert num_query == len(files) and sum(len(i) for i in images) == 2 * len(files)
    for batch in images:
        assert batch.dtype.name == "float32" and batch.shape[1:] == (3, 128, 64)
        assert batch.min() >= 0 and batch.max() <= 255 and batch.max() > 1.0
    train_loader, _ = build_reid_train_loader(cfg)
    batch = next(iter(train_loader))
    assert batch["images"].shape == (4, 3, 128, 64)
    train_loader.close()


@DATASET_REGISTRY.register()
class TinyCustomReid(ImageDataset):
    """A user dataset: every Market-1501 train image of the synthetic root, camera from the file name."""

    def __init__(self, root="datasets", **kwargs):
        folder = os.path.join(root, "Market-1501-v15.09.15", "bounding_box_train")
        self.check_before_run([folder])
        train = []
        for name in sorted(os.listdir(folder)):
            pid, cam = name.split("_")[0], name.split("_")[1][1]
            train.append((os.path.join(folder, name), f"{self.dataset_name}_{pid}", f"{self.dataset_name}_{cam}"))
        super().__init__(train, [], [], **kwargs)


def test_custom_dataset_is_one_registered_class(synthetic_root, make_cfg):
    root, summary = synthetic_root
    assert TinyCustomReid.dataset_name == "TinyCustomReid"
    cfg = make_cfg(names=("TinyCustomReid", "cuhkSYSU"))
    loader, singles = build_reid_train_loader(cfg)
    assert loader.dataset.num_classes1 == summary["Market1501"]["train"]["ids"]
    assert loader.dataset.num_classes2 == summary["cuhkSYSU"]["train"]["ids"]
    batch = next(iter(singles[0]))
    assert set(batch["domainids"].tolist()) == {0}
    singles[0].close()
