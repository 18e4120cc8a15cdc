"""Synthetic re-id datasets written in the real on-disk layouts (Market-1501, DukeMTMC-reID, MSMT17, CUHK-SYSU,
CUHK03, and the domain-generalisation sets CUHK02, PRID, GRID, VIPeR, iLIDS of ``synthetic_dg``), for tests, the
demo and benchmarks.

The people are drawn by ``synthetic_render``: a stable appearance per identity, varied by camera, pose, crop and
noise, so that a model trained on the train split ranks same-identity gallery images first far above chance.
Output is deterministic for a given seed and size settings.
"""
import json
import logging
import os
from dataclasses import asdict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .synthetic_dg import DG_DATASETS
from .synthetic_render import ImageSpec, SyntheticSizes, Writer, split_stats, test_cameras, train_counts

logger = logging.getLogger(__name__)

# order matters: dataset i is drawn from SeedSequence([seed, i]), so new datasets are appended
ALL_DATASETS = ("Market1501", "DukeMTMC", "MSMT17", "cuhkSYSU", "CUHK03") + tuple(DG_DATASETS)
_NUM_CAMERAS = {"Market1501": 6, "DukeMTMC": 8, "MSMT17": 15, "cuhkSYSU": 1, "CUHK03": 2,
                **{name: cams for name, (_, cams, _) in DG_DATASETS.items()}}
_SUMMARY_FILE = "synthetic_reid.json"
_CUHK03_PLACEHOLDERS = (os.path.join("cuhk03_release", "cuhk-03.mat"), "cuhk03_new_protocol_config_detected.mat",
                        "cuhk03_new_protocol_config_labeled.mat")
# default folder of each dataset under the root (FastReID's layouts)
DATASET_FOLDERS = {"Market1501": "Market-1501-v15.09.15", "DukeMTMC": "DukeMTMC-reID", "MSMT17": "MSMT17_V1",
                   "cuhkSYSU": "cuhk_sysu", "CUHK03": "cuhk03",
                   **{name: folder for name, (folder, _, _) in DG_DATASETS.items()}}



def _market_like(writer: Writer, sizes: SyntheticSizes, duke: bool) -> Dict:
    """Market-1501 (``PPPP_cCsS_FFFFFF_BB.jpg``) or DukeMTMC-reID (``PPPP_cC_fFFFFFFF.jpg``) folders."""
    rng, ncam = writer.rng, len(writer.cameras)
    frame = iter(range(1, 10 ** 7))
    pids = rng.choice(np.arange(1, 1502), sizes.num_train_ids + sizes.num_test_ids, replace=False)
    train_pids, test_pids = sorted(pids[:sizes.num_train_ids].tolist()), sorted(pids[sizes.num_train_ids:].tolist())

    def name(pid: int, cam: int) -> str:
        if duke:
            return f"{pid:04d}_c{cam + 1}_f{next(frame):07d}.jpg"
        pid_text = f"{pid:04d}" if pid >= 0 else "-1"
        return f"{pid_text}_c{cam + 1}s{int(rng.integers(1, 7))}_{next(frame):06d}_{int(rng.integers(1, 9)):02d}.jpg"

    records = {"train": [], "query": [], "gallery": []}
    for pid, count in zip(train_pids, train_counts(rng, sizes)):
        for _ in range(count):
            cam = int(rng.integers(ncam))
            records["train"].append(ImageSpec(os.path.join("bounding_box_train", name(pid, cam)), pid, cam))
    for pid in test_pids:
        for cam in test_cameras(rng, sizes, ncam):
            records["query"].append(ImageSpec(os.path.join("query", name(pid, cam)), pid, cam))
            for _ in range(sizes.test_images):
                records["gallery"].append(ImageSpec(os.path.join("bounding_box_test", name(pid, cam)), pid, cam))
    for k in range(sizes.num_distractors):
        pid = int(max(pids) + 1 + k) if duke else 0  # Market: pid 0 = distractors, each a different person
        cam = int(rng.integers(ncam))
        records["gallery"].append(ImageSpec(os.path.join("bounding_box_test", name(pid, cam)), pid, cam, -1 - k))
    junk = []
    if not duke:
        for k in range(sizes.num_junk):
            cam = int(rng.integers(ncam))
            junk.append(ImageSpec(os.path.join("bounding_box_test", name(-1, cam)), -1, cam, -10000 - k))
    for image in [i for split in records.values() for i in split] + junk:
        writer.write(image)
    return {split: split_stats([(i.rel_path, i.person, i.camera) for i in images]) for split, images in records.items()}


def _msmt17(writer: Writer, sizes: SyntheticSizes, version: str) -> Dict:
    """MSMT17_V1 (train/, test/) or MSMT17_V2 (mask_train_v2/, mask_test_v2/) with the four list files."""
    rng, ncam = writer.rng, len(writer.cameras)
    train_dir, test_dir = {"V1": ("train", "test"), "V2": ("mask_train_v2", "mask_test_v2")}[version]
    times = ["0113morning", "0113noon", "0302afternoon", "0303morning"]
    counters: Dict[Tuple[str, int], int] = {}

    def rel(pid: int, cam: int, split_dir: str) -> str:
        n = counters.get((split_dir, pid), 0)
        counters[(split_dir, pid)] = n + 1
        stem = f"{pid:04d}_{n:03d}_{cam + 1:02d}_{times[int(rng.integers(len(times)))]}_{int(rng.integers(10000)):04d}"
        return f"{pid:04d}/{stem}_{int(rng.integers(3))}.jpg"

    lists = {"train": [], "val": [], "query": [], "gallery": []}
    for pid, count in enumerate(train_counts(rng, sizes)):
        for _ in range(count):
            cam = int(rng.integers(ncam))
            lists["train"].append((rel(pid, cam, train_dir), pid, cam))
    for _ in range(sizes.num_val):
        pid, cam = int(rng.integers(sizes.num_train_ids)), int(rng.integers(ncam))
        lists["val"].append((rel(pid, cam, train_dir), pid, cam))
    for pid in range(sizes.num_test_ids):
        for cam in test_cameras(rng, sizes, ncam):
            lists["query"].append((rel(pid, cam, test_dir), pid, cam))
            for _ in range(sizes.test_images):
                lists["gallery"].append((rel(pid, cam, test_dir), pid, cam))
    for split, entries in lists.items():
        split_dir = train_dir if split in ("train", "val") else test_dir
        person_offset = 0 if split in ("train", "val") else 100000
        for rel_path, pid, cam in entries:
            writer.write(ImageSpec(os.path.join(split_dir, rel_path), pid, cam, pid + person_offset))
        with open(os.path.join(writer.folder, f"list_{split}.txt"), "w") as f:
            f.writelines(f"{rel_path} {pid}\n" for rel_path, pid, _ in entries)
    return {split: split_stats(entries) for split, entries in lists.items()}


def _cuhk_sysu(writer: Writer, sizes: SyntheticSizes) -> Dict:
    """cuhk_sysu/cropped_images/p<pid>_s<image>.jpg (train only, one dummy camera)."""
    rng = writer.rng
    pids = sorted(rng.choice(np.arange(1, 20000), sizes.num_train_ids, replace=False).tolist())
    image_id = iter(range(1, 10 ** 7))
    items = []
    for pid, count in zip(pids, train_counts(rng, sizes)):
        for _ in range(count):
            rel_path = os.path.join("cropped_images", f"p{pid}_s{next(image_id)}.jpg")
            writer.write(ImageSpec(rel_path, pid, 0))
            items.append((rel_path, pid, 0))
    return {"train": split_stats(items), "query": split_stats([]), "gallery": split_stats([])}


def _cuhk03(writer: Writer, sizes: SyntheticSizes, num_classic_splits: int = 2) -> Dict:
    """cuhk03/images_{labeled,detected}/<campair>_<pid3>_<view>_<img2>.png and the split JSONs (absolute paths,
    as FastReID's preprocessing writes them)."""
    rng = writer.rng
    num_people = sizes.num_train_ids + sizes.num_test_ids
    people = []  # (label 1-based, campair, pid in pair, [(view, img)]); >= 2 images per view
    low, high = max(2, sizes.min_images // 2), min(5, max(2, sizes.max_images // 2))
    for label in range(1, num_people + 1):
        n1, n2 = int(rng.integers(low, high + 1)), int(rng.integers(low, high + 1))
        shots = [(1, i) for i in range(1, n1 + 1)] + [(2, i) for i in range(6, 6 + n2)]
        people.append((label, int(rng.integers(1, 6)), label, shots))
    paths: Dict[str, Dict[int, List[Tuple[str, int]]]] = {}
    for kind in ("labeled", "detected"):
        paths[kind] = {}
        for label, campair, pid_in_pair, shots in people:
            paths[kind][label] = []
            for view, img in shots:
                rel_path = os.path.join(f"images_{kind}", f"{campair}_{pid_in_pair:03d}_{view}_{img:02d}.png")
                writer.write(ImageSpec(rel_path, label, view - 1))
                paths[kind][label].append((os.path.join(os.path.abspath(writer.folder), rel_path), view - 1))

    order = rng.permutation(num_people) + 1
    train_labels = sorted(order[:sizes.num_train_ids].tolist())
    test_labels = sorted(order[sizes.num_train_ids:].tolist())
    summary = {}
    for kind in ("labeled", "detected"):
        train = [[p, relabel, cam] for relabel, label in enumerate(train_labels) for p, cam in paths[kind][label]]
        query, gallery = [], []
        for label in test_labels:
            shots = paths[kind][label]
            for view in (0, 1):
                in_view = [s for s in shots if s[1] == view]
                if in_view:
                    query.append([in_view[0][0], int(label), view])
                    gallery += [[p, int(label), cam] for p, cam in in_view[1:]]
        split = {"train": train, "query": query, "gallery": gallery,
                 "num_train_pids": len(train_labels), "num_train_imgs": len(train),
                 "num_query_pids": len({q[1] for q in query}), "num_query_imgs": len(query),
                 "num_gallery_pids": len({g[1] for g in gallery}), "num_gallery_imgs": len(gallery)}
        with open(os.path.join(writer.folder, f"splits_new_{kind}.json"), "w") as f:
            json.dump([split], f, indent=1)
        classic = []
        for _ in range(num_classic_splits):
            perm = rng.permutation(num_people) + 1
            test = sorted(perm[:sizes.num_test_ids].tolist())
            train_c = sorted(perm[sizes.num_test_ids:].tolist())
            c_train = [[p, i, cam] for i, label in enumerate(train_c) for p, cam in paths[kind][label]]
            c_test = [[p, i, cam] for i, label in enumerate(test) for p, cam in paths[kind][label]]
            classic.append({"train": c_train, "query": c_test, "gallery": c_test,
                            "num_train_pids": len(train_c), "num_train_imgs": len(c_train),
                            "num_query_pids": len(test), "num_query_imgs": len(c_test),
                            "num_gallery_pids": len(test), "num_gallery_imgs": len(c_test)})
        with open(os.path.join(writer.folder, f"splits_classic_{kind}.json"), "w") as f:
            json.dump(classic, f, indent=1)
        summary[kind] = {name: split_stats([tuple(e) for e in split[name]]) for name in ("train", "query", "gallery")}
    # upstream FastReID's / ACL-DGReID's CUHK03 class requires the raw .mat files to exist, and never reads them
    # once the split JSONs above exist: empty placeholders make the folder readable by those classes too
    os.makedirs(os.path.join(writer.folder, "cuhk03_release"), exist_ok=True)
    for placeholder in _CUHK03_PLACEHOLDERS:
        open(os.path.join(writer.folder, placeholder), "wb").close()
    return {**summary["labeled"], "detected": summary["detected"]}


def make_synthetic_reid(root: str, datasets: Sequence[str] = ALL_DATASETS, *, seed: int = 0,
                        image_size: Tuple[int, int] = (128, 64),
                        sizes: Optional[Dict[str, object]] = None, msmt17_version: str = "V1",
                        market1501_dir: str = "Market-1501-v15.09.15", cuhk03_dir: str = "cuhk03") -> Dict:
    """Write synthetic datasets under ``root`` in the layouts the dataset classes read; return their statistics.

    Args:
        root: the folder to use as ``DATASETS.ROOT``.
        datasets: any of Market1501, DukeMTMC, MSMT17, cuhkSYSU, CUHK03, CUHK02, PRID, GRID, VIPeR, iLIDS.
        seed: everything (appearances, images, file names) is a function of the seed and the sizes.
        image_size: (height, width) of the crops (Market-1501's are 128 x 64).
        sizes: per-dataset :class:`SyntheticSizes` or dicts of its fields (default ``SyntheticSizes()``).
        msmt17_version: "V1" (train/, test/) or "V2" (mask_train_v2/, mask_test_v2/).
        market1501_dir: "Market-1501-v15.09.15" (FastReID) or "market1501/Market-1501-v15.09.15" (ACL-DGReID).
        cuhk03_dir: "cuhk03" (FastReID) or "cuhk03_new" (ACL-DGReID).

    Returns:
        ``{name: {"folder": ..., "train"/"query"/"gallery" (and MSMT17 "val", CUHK03 "detected"):
        {"ids", "images", "cams"}}}`` as the parsers should report them (train stats without combineall); also
        written to ``<root>/synthetic_reid.json``.
    """
    unknown = [d for d in datasets if d not in ALL_DATASETS]
    if unknown:
        raise ValueError(f"unknown synthetic dataset(s) {unknown}; choose from {list(ALL_DATASETS)}")
    if msmt17_version not in ("V1", "V2"):
        raise ValueError(f"msmt17_version must be 'V1' or 'V2', got {msmt17_version!r}")
    sizes = dict(sizes or {})
    image_size = [int(v) for v in image_size]
    if len(image_size) != 2 or min(image_size) < 1:
        raise ValueError(f"image_size must be (height, width) >= 1, got {image_size}")
    folders = {**DATASET_FOLDERS, "Market1501": market1501_dir, "MSMT17": f"MSMT17_{msmt17_version}",
               "CUHK03": cuhk03_dir}
    written = _read_summary(root)
    specs = {}
    for name in datasets:
        spec = sizes.get(name, SyntheticSizes())
        specs[name] = spec if isinstance(spec, SyntheticSizes) else SyntheticSizes(**spec)
        _check_sizes(name, specs[name])
        _check_existing(root, folders[name], name, written.get(name),
                        {"seed": seed, "image_size": image_size, "sizes": asdict(specs[name])})
    summary = {}
    for index, name in enumerate(ALL_DATASETS):
        if name not in datasets:
            continue
        spec = specs[name]
        rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
        folder = folders[name]
        writer = Writer(name, os.path.join(root, folder), rng, tuple(image_size), _NUM_CAMERAS[name])
        if name in ("Market1501", "DukeMTMC"):
            stats = _market_like(writer, spec, duke=name == "DukeMTMC")
        elif name == "MSMT17":
            stats = _msmt17(writer, spec, msmt17_version)
        elif name == "cuhkSYSU":
            stats = _cuhk_sysu(writer, spec)
        elif name == "CUHK03":
            stats = _cuhk03(writer, spec)
        else:
            stats = DG_DATASETS[name][2](writer, spec)
        summary[name] = {"folder": writer.folder, "seed": seed, "image_size": image_size, "sizes": asdict(spec),
                         **stats}
        logger.info("synthetic %s written to %s: %s", name, writer.folder,
                    {k: v for k, v in stats.items() if k in ("train", "query", "gallery")})
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, _SUMMARY_FILE), "w") as f:
        json.dump({"datasets": {**written, **summary}}, f, indent=1)
    return summary


def _check_sizes(name: str, spec: SyntheticSizes) -> None:
    counts = asdict(spec)
    positive = ("num_train_ids", "num_test_ids", "min_images", "test_images")
    bad = {k: v for k, v in counts.items() if v < (1 if k in positive else 0)}
    if "test_cameras" not in bad and spec.test_cameras < 2:
        bad["test_cameras"] = spec.test_cameras
    if bad:
        raise ValueError(f"synthetic {name}: {bad} - identities, images per id and test images must be >= 1, test "
                         f"cameras >= 2, the other counts >= 0")
    if spec.max_images < spec.min_images:
        raise ValueError(f"synthetic {name}: need min_images <= max_images, got {spec.min_images}, {spec.max_images}")


def _read_summary(root: str) -> Dict[str, Dict]:
    path = os.path.join(root, _SUMMARY_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return dict(json.load(f).get("datasets", {}))


def _check_existing(root: str, folder: str, name: str, written: Optional[Dict], settings: Dict) -> None:
    """Refuse to write into a dataset folder that holds files of other settings (or of unknown origin): the runs
    would mix (more ids than asked, query ids of one run among the training ids of the other)."""
    path = os.path.join(root, folder)
    if not os.path.isdir(path) or not os.listdir(path):
        return
    if written is None:
        raise ValueError(f"{path} already holds files that {_SUMMARY_FILE} does not describe; write the synthetic "
                         f"{name} into an empty DATASETS.ROOT / --root, or delete that folder")
    old = {k: written.get(k) for k in settings}
    if old != settings:
        changes = ", ".join(f"{k}: {old[k]} -> {settings[k]}" for k in settings if old[k] != settings[k])
        raise ValueError(f"{path} was written with other settings ({changes}); write into an empty root, or "
                         f"delete that folder")



def ensure_synthetic_datasets(cfg) -> List[str]:
    """With ``DATASETS.SYNTHETIC.ENABLED``: write the synthetic version of every ``DATASETS.NAMES`` / ``TESTS``
    dataset whose folder is absent under ``DATASETS.ROOT`` (sizes and seed from ``DATASETS.SYNTHETIC.*``); existing
    folders are left alone. Returns the names generated. With several processes, rank 0 writes and the others
    wait."""
    from fastreid_ms.utils import comm

    syn = cfg.DATASETS.SYNTHETIC
    if not syn.ENABLED:
        return []
    names = list(dict.fromkeys(list(cfg.DATASETS.NAMES) + list(cfg.DATASETS.TESTS)))
    unknown = [n for n in names if n not in DATASET_FOLDERS]
    if unknown:
        raise ValueError(f"DATASETS.SYNTHETIC.ENABLED: no synthetic generator for {unknown}; it writes "
                         f"{sorted(DATASET_FOLDERS)}")
    root = cfg.DATASETS.ROOT
    missing = [n for n in names if not os.path.isdir(os.path.join(root, DATASET_FOLDERS[n]))]
    if missing and comm.is_main_process():
        logger.info("Generating synthetic datasets %s under %s (DATASETS.SYNTHETIC.ENABLED)", missing, root)
        sizes = SyntheticSizes(num_train_ids=int(syn.TRAIN_IDS), num_test_ids=int(syn.TEST_IDS),
                               min_images=int(syn.MIN_IMAGES), max_images=int(syn.MAX_IMAGES),
                               test_images=int(syn.TEST_IMAGES))
        make_synthetic_reid(root, missing, seed=int(syn.SEED), image_size=tuple(int(v) for v in syn.IMAGE_SIZE),
                            sizes={n: sizes for n in missing})
    comm.synchronize()
    return missing
