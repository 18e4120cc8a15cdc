"""Protocol-1 datasets (CUHK02, PRID, GRID, VIPeR, iLIDS): their synthetic folders parse to the generator's counts,
``split_id`` selects one of the published (or seeded) splits, bad split ids and missing folders fail naming the
file / value / expected layout, and GRID's published .mat partitions are read with scipy only."""
import os
import re
import shutil
import sys

import numpy as np
import pytest
from scipy.io import savemat

from fastreid_ms.data import DATASET_REGISTRY, build_reid_test_loader
from fastreid_ms.data.datasets import GRID, PRID, DatasetLayoutError, VIPeR, iLIDS

DG_NAMES = ["CUHK02", "PRID", "GRID", "VIPeR", "iLIDS"]
TARGETS = ["PRID", "GRID", "VIPeR", "iLIDS"]
SPLIT_FILES = {"PRID": ("prid_2011", "splits_single_shot.json"), "GRID": ("underground_reid", "splits.json"),
               "VIPeR": ("VIPeR", "splits.json"), "iLIDS": ("i-LIDS_Pedestrian", "splits.json")}
FOLDERS = {"CUHK02": "cuhk02", "PRID": "prid_2011", "GRID": "underground_reid", "VIPeR": "VIPeR",
           "iLIDS": "i-LIDS_Pedestrian"}


def _stats(items):
    return {"ids": len({i[1] for i in items}), "images": len(items), "cams": len({i[2] for i in items})}


def _copy(synthetic_root, tmp_path, name):
    """A private copy of one synthetic dataset folder (for tests that delete or edit files)."""
    shutil.copytree(os.path.join(synthetic_root[0], FOLDERS[name]), tmp_path / FOLDERS[name])
    return str(tmp_path)


@pytest.mark.parametrize("name", DG_NAMES)
def test_layout_parses_to_generated_counts(synthetic_root, name):
    root, summary = synthetic_root
    data = DATASET_REGISTRY.get(name)(root=root)
    for split in ("train", "query", "gallery"):
        assert _stats(getattr(data, split)) == summary[name][split], f"{name} {split}"
    prefix = name.lower()
    for path, pid, camid in data.train:
        assert os.path.isfile(path), path
        assert re.fullmatch(rf"{prefix}_\d+", pid) and re.fullmatch(rf"{prefix}_\d+", camid), (pid, camid)
    for path, pid, camid in data.query + data.gallery:
        assert os.path.isfile(path), path
        assert isinstance(pid, int) and isinstance(camid, int) and camid >= 0
    train_paths = {p for p, _, _ in data.train}
    assert not train_paths & {p for p, _, _ in data.query + data.gallery}, "train and test images overlap"


def test_cuhk02_p5_is_the_test_pair(synthetic_root):
    data = DATASET_REGISTRY.get("CUHK02")(root=synthetic_root[0])
    assert all(f"{os.sep}P5{os.sep}cam1{os.sep}" in p and c == 8 for p, _, c in data.query)
    assert all(f"{os.sep}P5{os.sep}cam2{os.sep}" in p and c == 9 for p, _, c in data.gallery)
    assert not any(f"{os.sep}P5{os.sep}" in p for p, _, _ in data.train)
    for path, pid, _ in data.query:
        assert pid == int(os.path.basename(path).split("_")[0])


@pytest.mark.parametrize("name", TARGETS)
def test_split_id_selects_another_split(synthetic_root, name):
    root, summary = synthetic_root
    cls = DATASET_REGISTRY.get(name)
    first, second = cls(root=root, split_id=0), cls(root=root, split_id=2)
    assert cls(root=root).query == first.query, "split 0 is the default"
    assert {p for p, _, _ in first.train} != {p for p, _, _ in second.train}
    for data in (first, second):
        assert _stats(data.query)["ids"] == summary[name]["sizes"]["num_test_ids"]
        assert {p for p, _, _ in data.train}.isdisjoint(p for p, _, _ in data.query + data.gallery)


def test_viper_odd_split_swaps_query_and_gallery(synthetic_root):
    root = synthetic_root[0]
    even, odd = VIPeR(root=root, split_id=4), VIPeR(root=root, split_id=5)
    assert even.train == odd.train and even.query == odd.gallery and even.gallery == odd.query
    assert {c for _, _, c in even.query} == {0} and {c for _, _, c in even.gallery} == {1}


def test_prid_gallery_holds_the_unpaired_camera_b_persons(synthetic_root):
    root, summary = synthetic_root
    data = PRID(root=root)
    query_ids = {pid for _, pid, _ in data.query}
    distractors = [pid for _, pid, _ in data.gallery if pid not in query_ids]
    assert len(distractors) == summary["PRID"]["sizes"]["num_distractors"] and set(distractors) == set(data._junk_pids)
    combined = PRID(root=root, combineall=True)
    assert len(combined.train) == len(data.train) + len(data.query) + len(data.gallery) - len(distractors)


@pytest.mark.parametrize("name", TARGETS)
@pytest.mark.parametrize("split_id", [10 ** 3, -1, "1"])
def test_bad_split_id_names_the_file_and_value(synthetic_root, name, split_id):
    folder, file_name = SPLIT_FILES[name]
    with pytest.raises(ValueError) as info:
        DATASET_REGISTRY.get(name)(root=synthetic_root[0], split_id=split_id)
    message = str(info.value)
    assert os.path.join(folder, file_name) in message and repr(split_id) in message and "0.." in message


@pytest.mark.parametrize("name, part", [("CUHK02", os.path.join("P5", "cam2")), ("PRID", "single_shot"),
                                        ("GRID", "probe"), ("VIPeR", "cam_b"), ("iLIDS", "Persons")])
def test_missing_folder_names_the_expected_layout(tmp_path, name, part):
    with pytest.raises(DatasetLayoutError) as info:
        DATASET_REGISTRY.get(name)(root=str(tmp_path))
    message = str(info.value)
    assert FOLDERS[name] in message and "Expected layout" in message and part in message


@pytest.mark.parametrize("name, num_splits", [("PRID", 10), ("VIPeR", 20), ("iLIDS", 10)])
def test_without_split_file_the_splits_are_seeded(synthetic_root, tmp_path, name, num_splits):
    root = _copy(synthetic_root, tmp_path, name)
    os.remove(os.path.join(root, *SPLIT_FILES[name]))
    cls = DATASET_REGISTRY.get(name)
    for split_id in (0, num_splits - 1):
        a, b = cls(root=root, split_id=split_id), cls(root=root, split_id=split_id)
        assert a.train == b.train and a.query == b.query and a.gallery == b.gallery
        assert a.query and a.gallery and a.train
        train_ids = {p for p, _, _ in a.train}
        assert train_ids.isdisjoint(p for p, _, _ in a.query + a.gallery)
    with pytest.raises(ValueError, match=rf"split_id {num_splits} .*seed .*0..{num_splits - 1}"):
        cls(root=root, split_id=num_splits)
    assert not os.path.exists(os.path.join(root, *SPLIT_FILES[name])), "nothing is written into the dataset"


def test_split_file_paths_follow_a_moved_folder(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path, "GRID")
    data = GRID(root=root)
    for path, _, _ in data.train + data.query + data.gallery:
        assert path.startswith(root) and os.path.isfile(path), path


def test_ilids_split_listing_an_absent_image_fails(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path, "iLIDS")
    data = iLIDS(root=root)
    os.remove(data.query[0][0])
    with pytest.raises(ValueError, match=re.escape(os.path.basename(data.query[0][0]))):
        iLIDS(root=root)


def _write_partitions(path, partitions):

    cells = np.empty((1, len(partitions)), dtype=object)
    for i, train_ids in enumerate(partitions):
        cells[0, i] = {"testIdx": np.zeros((1, 1)), "galleryIdx": np.zeros((1, 1)),
                       "trainIdx": np.asarray(train_ids, dtype=np.float64).reshape(1, -1)}
    savemat(path, {"trainIdxAll": cells})


def test_grid_reads_the_published_partitions(synthetic_root, tmp_path):
    root = _copy(synthetic_root, tmp_path, "GRID")
    folder = os.path.join(root, "underground_reid")
    os.remove(os.path.join(folder, "splits.json"))
    with pytest.raises(ValueError, match="features_and_partitions.mat.*trainIdxAll"):
        GRID(root=root)  # the generator's empty placeholder
    indices = sorted({int(n[:4]) for n in os.listdir(os.path.join(folder, "probe"))})
    partitions = [indices[k:] + indices[:k] for k in range(3)]
    partitions = [p[:len(indices) // 2] for p in partitions]
    _write_partitions(os.path.join(folder, "features_and_partitions.mat"), partitions)
    data = GRID(root=root, split_id=1)
    label_of = {index: label for label, index in enumerate(partitions[1])}
    for path, pid, camid in data.train:
        index = int(os.path.basename(path)[:4])
        assert pid == f"grid_{label_of[index]}" and camid == f"grid_{int(os.path.basename(path).split('_')[1]) - 1}"
    assert {pid for _, pid, _ in data.query} == set(indices) - set(partitions[1])
    assert 0 in {pid for _, pid, _ in data.gallery}, "index-0 distractors stay in the gallery"
    with pytest.raises(ValueError, match=r"split_id 3 .*features_and_partitions.mat.*0..2"):
        GRID(root=root, split_id=3)


def test_grid_without_scipy_names_the_file_and_scipy(synthetic_root, tmp_path, monkeypatch):
    root = _copy(synthetic_root, tmp_path, "GRID")
    os.remove(os.path.join(root, "underground_reid", "splits.json"))
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(ImportError, match=r"features_and_partitions.mat needs scipy.*splits.json"):
        GRID(root=root)


def test_split_id_from_the_config_reaches_the_test_set(make_cfg):
    cfg = make_cfg(DATASETS__SPLIT_ID=3)
    for name in TARGETS:
        loader, num_query = build_reid_test_loader(cfg, name)
        data = DATASET_REGISTRY.get(name)(root=cfg.DATASETS.ROOT, split_id=3)
        assert num_query == len(data.query) and loader.dataset.img_items == data.query + data.gallery
    default, _ = build_reid_test_loader(make_cfg(), "CUHK03")
    assert len(default.dataset.img_items) > 0, "datasets with one split still load with SPLIT_ID 0"
