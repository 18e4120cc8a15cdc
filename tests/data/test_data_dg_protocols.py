"""ACL-DGReID protocol configs load and name registered datasets the synthetic generator can write;
``DATASETS.COMBINEALL`` adds every source's query and gallery to its train list; the generator writes the
Protocol-1 datasets deterministically, with the split files upstream's classes need, and refuses other settings."""
import glob
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastreid_ms.config import get_cfg
from fastreid_ms.data import DATASET_REGISTRY
from fastreid_ms.data.synthetic import DATASET_FOLDERS, SyntheticSizes, ensure_synthetic_datasets, make_synthetic_reid

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(glob.glob(str(REPO / "configs" / "ACL-DGReID" / "*.yml")))
P2_TARGETS = ("Market1501", "MSMT17", "CUHK03")
DG_NAMES = ["CUHK02", "PRID", "GRID", "VIPeR", "iLIDS"]


def _load(path):
    cfg = get_cfg()
    cfg.merge_from_file(path)
    return cfg


def test_every_protocol_has_its_configs():
    names = {os.path.basename(p) for p in CONFIGS}
    expected = {"P1_to_PRID_GRID_VIPeR_iLIDS.yml"} | {f"P{k}_to_{t}.yml" for k in (2, 3) for t in P2_TARGETS}
    assert names == expected


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_loads_and_names_registered_synthesizable_datasets(path):
    cfg = _load(path)
    names, tests = list(cfg.DATASETS.NAMES), list(cfg.DATASETS.TESTS)
    for name in names + tests:
        assert name in DATASET_REGISTRY and name in DATASET_FOLDERS, name
    assert not set(names) & set(tests), "a target is never a source"
    assert "cuhkSYSU" in names
    assert cfg.MODEL.BACKBONE.NAME == "build_meta_dynamic_router_resnet_backbone" and cfg.SOLVER.META.ENABLED


@pytest.mark.parametrize("target", P2_TARGETS)
def test_protocol2_leaves_one_out_and_protocol3_adds_combineall(target):
    p2 = _load(str(REPO / "configs" / "ACL-DGReID" / f"P2_to_{target}.yml"))
    p3 = _load(str(REPO / "configs" / "ACL-DGReID" / f"P3_to_{target}.yml"))
    assert set(p2.DATASETS.NAMES) == {"cuhkSYSU"} | set(P2_TARGETS) - {target}
    assert p2.DATASETS.TESTS == (target,) and not p2.DATASETS.COMBINEALL and p3.DATASETS.COMBINEALL
    p3.DATASETS.COMBINEALL, p3.OUTPUT_DIR = False, p2.OUTPUT_DIR
    assert p3 == p2


def test_p2_to_cuhk03_is_the_reference_recipe():
    recipe = _load(str(REPO / "configs" / "bagtricks_DR50_mix.yml"))
    p2 = _load(str(REPO / "configs" / "ACL-DGReID" / "P2_to_CUHK03.yml"))
    p2.OUTPUT_DIR = recipe.OUTPUT_DIR
    assert p2 == recipe


def test_protocol1_sources_and_targets():
    cfg = _load(str(REPO / "configs" / "ACL-DGReID" / "P1_to_PRID_GRID_VIPeR_iLIDS.yml"))
    assert cfg.DATASETS.NAMES == ("Market1501", "DukeMTMC", "CUHK02", "CUHK03", "cuhkSYSU")
    assert cfg.DATASETS.TESTS == ("PRID", "GRID", "VIPeR", "iLIDS") and cfg.DATASETS.COMBINEALL


def test_ensure_synthetic_writes_what_every_config_names(tmp_path):
    configs = [_load(p) for p in CONFIGS]
    cfg = get_cfg()
    cfg.DATASETS.ROOT = str(tmp_path)
    cfg.DATASETS.NAMES = tuple(sorted({n for c in configs for n in c.DATASETS.NAMES}))
    cfg.DATASETS.TESTS = tuple(sorted({n for c in configs for n in c.DATASETS.TESTS}))
    cfg.DATASETS.SYNTHETIC.ENABLED = True
    cfg.DATASETS.SYNTHETIC.IMAGE_SIZE = [16, 8]
    cfg.DATASETS.SYNTHETIC.TRAIN_IDS, cfg.DATASETS.SYNTHETIC.TEST_IDS = 4, 2
    written = ensure_synthetic_datasets(cfg)
    assert set(written) == set(cfg.DATASETS.NAMES) | set(cfg.DATASETS.TESTS)
    for name in cfg.DATASETS.NAMES:
        assert DATASET_REGISTRY.get(name)(root=str(tmp_path), combineall=True).train
    for name in cfg.DATASETS.TESTS:
        data = DATASET_REGISTRY.get(name)(root=str(tmp_path))
        assert len({pid for _, pid, _ in data.query}) == 2 and data.gallery


SOURCES = ["Market1501", "DukeMTMC", "MSMT17", "CUHK03", "CUHK02", "cuhkSYSU"]


@pytest.mark.parametrize("name", SOURCES)
def test_combineall_adds_query_and_gallery_with_prefixed_ids(synthetic_root, name):
    root, summary = synthetic_root
    cls = DATASET_REGISTRY.get(name)
    plain, combined = cls(root=root), cls(root=root, combineall=True)
    test_items = [i for i in plain.query + plain.gallery if i[1] not in plain._junk_pids]
    extra = summary[name].get("val", {}).get("images", 0) if name == "MSMT17" else 0
    assert len(combined.train) == len(plain.train) + extra + len(test_items)
    added = combined.train[len(combined.train) - len(test_items):]
    prefix = plain.dataset_name
    assert [p for p, _, _ in added] == [p for p, _, _ in test_items]
    assert all(pid == f"{prefix}_test_{q[1]}" and cam == f"{prefix}_test_{q[2]}"
               for (_, pid, cam), q in zip(added, test_items))


def _digest(folder):
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as f:
                content = f.read()
            if name.endswith(".json"):  # absolute paths of the root differ between the two runs
                content = content.replace(str(folder).encode(), b"")
            out[os.path.relpath(os.path.join(dirpath, name), folder)] = hashlib.sha1(content).hexdigest()
    return out


def test_generator_is_deterministic_and_refuses_other_settings(tmp_path):
    sizes = {n: SyntheticSizes(num_train_ids=4, num_test_ids=3, min_images=2, max_images=3) for n in DG_NAMES}
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        make_synthetic_reid(str(tmp_path / name), DG_NAMES, seed=seed, image_size=(16, 8), sizes=sizes)
    a, b, c = (_digest(tmp_path / n) for n in "abc")
    assert a == b and a != c
    for required in ("prid_2011/splits_single_shot.json", "underground_reid/features_and_partitions.mat",
                     "underground_reid/splits.json", "VIPeR/splits.json", "i-LIDS_Pedestrian/splits.json"):
        assert required in a, required
    with open(tmp_path / "a" / "VIPeR" / "splits.json") as f:
        assert len(json.load(f)) == 20
    with pytest.raises(ValueError, match="other settings.*seed: 5 -> 6"):
        make_synthetic_reid(str(tmp_path / "a"), ["GRID"], seed=6, image_size=(16, 8), sizes=sizes)


def test_cli_accepts_the_protocol1_datasets(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "tools" / "make_synthetic_reid.py"), "--root", str(tmp_path),
                             "--datasets", *DG_NAMES, "--train-ids", "3", "--test-ids", "2", "--height", "16",
                             "--width", "8"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert sorted(summary) == sorted(DG_NAMES)
    assert all(summary[n]["query"]["ids"] == 2 for n in DG_NAMES)
