"""Synthetic versions of the domain-generalisation Protocol-1 datasets (CUHK02, PRID, GRID, VIPeR, iLIDS) in the
layouts of torchreid / ACL-DGReID (see ``fastreid_ms.data.datasets``), with the split files those classes read.

Sizes (:class:`SyntheticSizes`): ``num_train_ids`` / ``num_test_ids`` are the train and test identities of every
split; ``num_distractors`` the PRID camera-B (and camera-A) unpaired persons and the GRID gallery's index-0 images;
``min_images`` / ``max_images`` the images per CUHK02 train person and per iLIDS person (at least 2 for iLIDS);
``test_images`` the CUHK02 P5 images per camera. PRID, GRID and VIPeR are single-shot (one image per person and
camera). Every writer returns the statistics of split 0, which is what the dataset classes load by default.
"""
import json
import os
from typing import Dict, List

from .synthetic_render import ImageSpec, SyntheticSizes, Writer, split_stats, train_counts

# Random splits written into the split files (the references' 10; VIPeR has each in both directions).
NUM_SPLITS = 10


def _write_json(path: str, data) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=1)


def _partitions(writer: Writer, ids: List[int], num_train: int) -> List[List[List[int]]]:
    """``NUM_SPLITS`` (train ids in drawn order, test ids sorted) of ``ids``."""
    splits = []
    for _ in range(NUM_SPLITS):
        order = [ids[i] for i in writer.rng.permutation(len(ids))]
        splits.append([order[:num_train], sorted(order[num_train:])])
    return splits


def write_cuhk02(writer: Writer, sizes: SyntheticSizes) -> Dict:
    """cuhk02/Dataset/P1..P5/cam1,cam2/<person4>_<n>.png: train persons spread over P1-P4, test persons in P5."""
    records = {"train": [], "query": [], "gallery": []}
    for pair in range(5):
        for cam in (1, 2):
            os.makedirs(os.path.join(writer.folder, "Dataset", f"P{pair + 1}", f"cam{cam}"), exist_ok=True)

    def add(split, pair, person, cam, shot):
        rel = os.path.join("Dataset", f"P{pair + 1}", f"cam{cam}", f"{person:04d}_{shot}.png")
        image = ImageSpec(rel, 1000 * pair + person, 2 * pair + cam - 1)
        writer.write(image)
        records[split].append(image)

    counts = train_counts(writer.rng, sizes)
    for index, count in enumerate(counts):
        pair, person = index % 4, index // 4 + 1
        for shot in range(count):
            add("train", pair, person, 1 + shot % 2, shot + 1)
    for person in range(1, sizes.num_test_ids + 1):
        for shot in range(sizes.test_images):
            add("query", 4, person, 1, shot + 1)
            add("gallery", 4, person, 2, sizes.test_images + shot + 1)
    return {split: split_stats([(i.rel_path, i.person, i.camera) for i in images])
            for split, images in records.items()}


def write_prid(writer: Writer, sizes: SyntheticSizes) -> Dict:
    """prid_2011/single_shot/cam_a,cam_b/person_<n4>.png and splits_single_shot.json."""
    shared = sizes.num_train_ids + sizes.num_test_ids
    extra = range(shared + 1, shared + 1 + sizes.num_distractors)
    for cam_index, cam in enumerate(("cam_a", "cam_b")):
        for pid in list(range(1, shared + 1)) + list(extra):
            look = pid if pid <= shared else -(cam_index + 1) * 100000 - pid  # unpaired: another person per view
            writer.write(ImageSpec(os.path.join("single_shot", cam, f"person_{pid:04d}.png"), pid, cam_index, look))
    splits = _partitions(writer, list(range(1, shared + 1)), sizes.num_train_ids)
    _write_json(os.path.join(writer.folder, "splits_single_shot.json"),
                [{"train": sorted(train), "test": test} for train, test in splits])
    train, test = sorted(splits[0][0]), splits[0][1]
    return {"train": split_stats([(None, p, c) for p in train for c in (0, 1)]),
            "query": split_stats([(None, p, 0) for p in test]),
            "gallery": split_stats([(None, p, 1) for p in test + list(extra)])}


def write_grid(writer: Writer, sizes: SyntheticSizes) -> Dict:
    """underground_reid/probe,gallery/<index4>_<camera>_<n5>.jpeg, splits.json (torchreid's format, absolute paths)
    and an empty features_and_partitions.mat (upstream's class requires the file; it reads splits.json first)."""
    rng, folder = writer.rng, os.path.abspath(writer.folder)
    num_people = sizes.num_train_ids + sizes.num_test_ids
    frame = iter(range(1, 10 ** 5))
    probe, gallery = [], []
    for index in range(1, num_people + 1):
        cams = [int(c) + 1 for c in rng.choice(len(writer.cameras), 2, replace=False)]
        for items, sub, cam in ((probe, "probe", cams[0]), (gallery, "gallery", cams[1])):
            rel = os.path.join(sub, f"{index:04d}_{cam}_{next(frame):05d}.jpeg")
            writer.write(ImageSpec(rel, index, cam - 1))
            items.append([os.path.join(folder, rel), index, cam - 1])
    for k in range(sizes.num_distractors):
        cam = int(rng.integers(len(writer.cameras))) + 1
        rel = os.path.join("gallery", f"0000_{cam}_{next(frame):05d}.jpeg")
        writer.write(ImageSpec(rel, 0, cam - 1, -1 - k))
        gallery.append([os.path.join(folder, rel), 0, cam - 1])
    splits = []
    for train_ids, _ in _partitions(writer, list(range(1, num_people + 1)), sizes.num_train_ids):
        label_of = {index: label for label, index in enumerate(train_ids)}
        split = {"train": [], "query": [], "gallery": []}
        for items, key in ((probe, "query"), (gallery, "gallery")):
            for path, index, camid in items:
                if index in label_of:
                    split["train"].append([path, label_of[index], camid])
                else:
                    split[key].append([path, index, camid])
        splits.append(split)
    _write_json(os.path.join(writer.folder, "splits.json"), splits)
    open(os.path.join(writer.folder, "features_and_partitions.mat"), "wb").close()
    return {key: split_stats([tuple(e) for e in splits[0][key]]) for key in ("train", "query", "gallery")}


def write_viper(writer: Writer, sizes: SyntheticSizes) -> Dict:
    """VIPeR/cam_a,cam_b/<person3>_<angle>.bmp and splits.json (10 partitions x 2 directions, absolute paths)."""
    rng, folder = writer.rng, os.path.abspath(writer.folder)
    num_people = sizes.num_train_ids + sizes.num_test_ids
    paths = {}
    for cam_index, cam in enumerate(("cam_a", "cam_b")):
        for person in range(num_people):
            rel = os.path.join(cam, f"{person:03d}_{int(rng.choice([0, 45, 90, 135, 180]))}.bmp")
            writer.write(ImageSpec(rel, person, cam_index))
            paths[cam_index, person] = os.path.join(folder, rel)
    splits = []
    for train_ids, test_ids in _partitions(writer, list(range(num_people)), sizes.num_train_ids):
        train = [[paths[c, person], f"viper_{label}", f"viper_{c}"]
                 for label, person in enumerate(train_ids) for c in (0, 1)]
        test_a = [[paths[0, person], pid, 0] for pid, person in enumerate(test_ids)]
        test_b = [[paths[1, person], pid, 1] for pid, person in enumerate(test_ids)]
        splits += [{"train": train, "query": test_a, "gallery": test_b},
                   {"train": train, "query": test_b, "gallery": test_a}]
    _write_json(os.path.join(writer.folder, "splits.json"), splits)
    return {key: split_stats([tuple(e) for e in splits[0][key]]) for key in ("train", "query", "gallery")}


def write_ilids(writer: Writer, sizes: SyntheticSizes) -> Dict:
    """i-LIDS_Pedestrian/Persons/<person4><image3>.jpg (>= 2 images per person) and splits.json (file names)."""
    rng = writer.rng
    num_people = sizes.num_train_ids + sizes.num_test_ids
    low, high = max(2, sizes.min_images), max(2, sizes.max_images)
    names = {}
    for pid in range(1, num_people + 1):
        names[pid] = []
        for image in range(1, int(rng.integers(low, high + 1)) + 1):
            name = f"{pid:04d}{image:03d}.jpg"
            writer.write(ImageSpec(os.path.join("Persons", name), pid, (image - 1) % len(writer.cameras)))
            names[pid].append(name)
    splits = []
    for train_ids, test_ids in _partitions(writer, list(range(1, num_people + 1)), sizes.num_train_ids):
        pairs = [[str(n) for n in rng.choice(names[pid], 2, replace=False)] for pid in test_ids]
        splits.append({"train": [n for pid in train_ids for n in names[pid]], "query": [p[0] for p in pairs],
                       "gallery": [p[1] for p in pairs]})
    _write_json(os.path.join(writer.folder, "splits.json"), splits)

    def stats(key):
        return split_stats([(n, int(n[:4]), int(n[4:7]) - 1) for n in splits[0][key]])

    return {key: stats(key) for key in ("train", "query", "gallery")}


# dataset name -> (default folder under the root, cameras, writer)
DG_DATASETS = {
    "CUHK02": ("cuhk02", 10, write_cuhk02),
    "PRID": ("prid_2011", 2, write_prid),
    "GRID": ("underground_reid", 8, write_grid),
    "VIPeR": ("VIPeR", 2, write_viper),
    "iLIDS": ("i-LIDS_Pedestrian", 4, write_ilids),
}
