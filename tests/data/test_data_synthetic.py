"""Synthetic generator: deterministic by seed, configurable sizes, a working CLI, and identities a trained model
can re-identify far above chance."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastreid_ms.data import read_image
from fastreid_ms.data.datasets import Market1501
from fastreid_ms.data.synthetic import SyntheticSizes, make_synthetic_reid

REPO = Path(__file__).resolve().parents[2]


def _digest(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            if name.endswith(".json"):
                continue
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = hashlib.sha1(f.read()).hexdigest()
    return out


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    sizes = {n: SyntheticSizes(num_train_ids=3, num_test_ids=2) for n in ("Market1501", "MSMT17", "CUHK03")}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        make_synthetic_reid(str(tmp_path / name), list(sizes), seed=seed, image_size=(32, 16), sizes=sizes)
    a, b, c = (_digest(tmp_path / n) for n in "abc")
    assert a == b and len(a) > 20
    assert a != c


def test_sizes_are_configurable(tmp_path):
    sizes = SyntheticSizes(num_train_ids=5, num_test_ids=3, min_images=4, max_images=4, num_distractors=0,
                           num_junk=0, test_cameras=3)
    summary = make_synthetic_reid(str(tmp_path), ["Market1501"], seed=0, image_size=(40, 20),
                                  sizes={"Market1501": sizes})
    data = Market1501(root=str(tmp_path))
    assert summary["Market1501"]["train"] == {"ids": 5, "images": 20, "cams": len({c for _, _, c in data.train})}
    assert len(data.query) == 9 and len({p for _, p, _ in data.query}) == 3
    assert read_image(data.train[0][0]).size == (20, 40)
    with open(tmp_path / "synthetic_reid.json") as f:
        assert json.load(f)["datasets"]["Market1501"]["train"]["images"] == 20


def test_cli_writes_the_layouts(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "tools" / "make_synthetic_reid.py"), "--root", str(tmp_path),
                             "--datasets", "DukeMTMC", "cuhkSYSU", "--train-ids", "3", "--test-ids", "2",
                             "--height", "32", "--width", "16"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["DukeMTMC"]["train"]["ids"] == 3 and summary["cuhkSYSU"]["train"]["ids"] == 3
    assert (tmp_path / "DukeMTMC-reID" / "bounding_box_test").is_dir()
    assert (tmp_path / "cuhk_sysu" / "cropped_images").is_dir()


def _features(items):
    return np.stack([np.asarray(read_image(p).resize((8, 16)), np.float32).reshape(-1) / 255.0 for p, _, _ in items])


def _rank1(query_feats, gallery_feats, query, gallery):
    q = query_feats / np.linalg.norm(query_feats, axis=1, keepdims=True)
    g = gallery_feats / np.linalg.norm(gallery_feats, axis=1, keepdims=True)
    gp, gc = np.array([x[1] for x in gallery]), np.array([x[2] for x in gallery])
    hits = []
    for row, (_, pid, cam) in zip(q @ g.T, query):
        keep = ~((gp == pid) & (gc == cam))
        hits.append(gp[keep][np.argmax(row[keep])] == pid)
    return float(np.mean(hits))


def test_identities_are_learnable(tmp_path):
    """A linear model (LDA on 16 x 8 colour thumbnails) trained on the train ids re-identifies unseen test ids
    across cameras far above chance."""
    sizes = SyntheticSizes(num_train_ids=30, num_test_ids=20, min_images=3, max_images=6)
    make_synthetic_reid(str(tmp_path), ["Market1501"], seed=1, image_size=(64, 32), sizes={"Market1501": sizes})
    data = Market1501(root=str(tmp_path))
    x, y = _features(data.train), np.array([pid for _, pid, _ in data.train])
    mean = x.mean(0)
    within, between = np.zeros((x.shape[1],) * 2), np.zeros((x.shape[1],) * 2)
    classes = sorted(set(y))
    for c in classes:
        xc = x[y == c]
        within += (xc - xc.mean(0)).T @ (xc - xc.mean(0))
        between += len(xc) * np.outer(xc.mean(0) - mean, xc.mean(0) - mean)
    values, vectors = np.linalg.eig(np.linalg.solve(within + 0.1 * np.eye(len(within)), between))
    projection = np.real(vectors[:, np.argsort(-np.real(values))[:len(classes) - 1]])
    query_feats = (_features(data.query) - mean) @ projection
    gallery_feats = (_features(data.gallery) - mean) @ projection
    rank1 = _rank1(query_feats, gallery_feats, data.query, data.gallery)
    chance = 1.0 / len({pid for _, pid, _ in data.gallery})
    assert rank1 >= max(0.5, 5 * chance), (rank1, chance)


def test_ensure_synthetic_datasets_generates_only_missing_folders(tmp_path):
    from fastreid_ms.config import get_cfg
    from fastreid_ms.data.synthetic import DATASET_FOLDERS, ensure_synthetic_datasets

    cfg = get_cfg()
    cfg.DATASETS.ROOT = str(tmp_path)
    cfg.DATASETS.NAMES = ("Market1501", "cuhkSYSU")
    cfg.DATASETS.TESTS = ("CUHK03",)
    cfg.DATASETS.SYNTHETIC.IMAGE_SIZE = [32, 16]
    cfg.DATASETS.SYNTHETIC.TRAIN_IDS = 3
    cfg.DATASETS.SYNTHETIC.TEST_IDS = 2
    assert ensure_synthetic_datasets(cfg) == []  # disabled by default: nothing written
    assert not any(tmp_path.iterdir())
    cfg.DATASETS.SYNTHETIC.ENABLED = True
    (tmp_path / DATASET_FOLDERS["cuhkSYSU"]).mkdir()  # a user's own folder is never overwritten
    assert ensure_synthetic_datasets(cfg) == ["Market1501", "CUHK03"]
    assert not any((tmp_path / DATASET_FOLDERS["cuhkSYSU"]).iterdir())
    assert (tmp_path / DATASET_FOLDERS["Market1501"] / "bounding_box_train").is_dir()
    assert ensure_synthetic_datasets(cfg) == []
    cfg.DATASETS.TESTS = ("VeRi",)
    with pytest.raises(ValueError, match="VeRi"):
        ensure_synthetic_datasets(cfg)


def test_a_second_run_with_other_settings_is_refused_and_the_summary_keeps_every_dataset(tmp_path):
    small = {"num_train_ids": 3, "num_test_ids": 2}
    make_synthetic_reid(str(tmp_path), ["Market1501", "CUHK03"], seed=0, image_size=(32, 16),
                        sizes={"Market1501": small, "CUHK03": small})
    with pytest.raises(ValueError, match=r"Market-1501-v15.09.15 was written with other settings \(sizes: "):
        make_synthetic_reid(str(tmp_path), ["Market1501"], seed=0, image_size=(32, 16),
                            sizes={"Market1501": {"num_train_ids": 8, "num_test_ids": 2}})
    with pytest.raises(ValueError, match=r"other settings \(seed: 0 -> 1\)"):
        make_synthetic_reid(str(tmp_path), ["Market1501"], seed=1, image_size=(32, 16), sizes={"Market1501": small})
    make_synthetic_reid(str(tmp_path), ["Market1501"], seed=0, image_size=(32, 16), sizes={"Market1501": small})
    make_synthetic_reid(str(tmp_path), ["cuhkSYSU"], seed=0, image_size=(32, 16), sizes={"cuhkSYSU": small})
    with open(tmp_path / "synthetic_reid.json") as f:
        assert sorted(json.load(f)["datasets"]) == ["CUHK03", "Market1501", "cuhkSYSU"]
    assert len({p for _, p, _ in Market1501(root=str(tmp_path)).train}) == 3


@pytest.mark.parametrize("sizes,message", [({"num_train_ids": 0}, "'num_train_ids': 0"),
                                           ({"test_images": -1}, "'test_images': -1"),
                                           ({"test_cameras": 1}, "'test_cameras': 1")])
def test_non_positive_counts_are_rejected(tmp_path, sizes, message):
    with pytest.raises(ValueError, match=message):
        make_synthetic_reid(str(tmp_path), ["Market1501"], sizes={"Market1501": sizes})
    assert not (tmp_path / "Market-1501-v15.09.15").exists()


def test_cuhk03_folder_has_the_files_upstream_requires(tmp_path):
    """Upstream FastReID's CUHK03 class checks these files exist before reading the split JSONs."""
    make_synthetic_reid(str(tmp_path), ["CUHK03"], image_size=(32, 16), sizes={"CUHK03": {"num_train_ids": 3}})
    folder = tmp_path / "cuhk03"
    for name in ("cuhk03_release/cuhk-03.mat", "cuhk03_new_protocol_config_detected.mat",
                 "cuhk03_new_protocol_config_labeled.mat", "splits_new_detected.json", "splits_new_labeled.json",
                 "splits_classic_detected.json", "splits_classic_labeled.json", "images_detected", "images_labeled"):
        assert (folder / name).exists(), name


def test_cli_refuses_a_root_written_with_other_settings_in_one_line(tmp_path):
    tool = [sys.executable, str(REPO / "tools" / "make_synthetic_reid.py"), "--root", str(tmp_path), "--datasets",
            "Market1501", "--test-ids", "2", "--height", "32", "--width", "16"]
    assert subprocess.run(tool + ["--train-ids", "3"], capture_output=True, text=True, timeout=300).returncode == 0
    result = subprocess.run(tool + ["--train-ids", "8"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("make_synthetic_reid.py: error:") and "other settings" in lines[0]
