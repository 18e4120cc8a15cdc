"""Repeated random train/test splits of the small domain-generalisation targets (PRID, GRID, VIPeR, iLIDS).

These benchmarks have no fixed test set: results are averaged over several random splits of their identities, each
selected by ``split_id``. The split files that torchreid / FastReID-DG (and ACL-DGReID) write next to the images are
read as published; when a folder has none, the splits are drawn here from a fixed seed, so every run (and every
machine) sees the same ones.
"""
import json
import os
import re
from typing import List, Sequence, Tuple, Union

import numpy as np

# Seed of the splits drawn when a dataset folder holds no split file.
SPLIT_SEED = 0
# Number of random splits the references create (VIPeR doubles it: each split is also used in the other direction).
NUM_SPLITS = 10

_TRAILING_INT = re.compile(r"(-?\d+)$")


def load_split_file(path: str, owner: str) -> list:
    """The list stored in the JSON split file ``path``; ``ValueError`` naming the file when it is not a JSON list."""
    with open(path, "r") as f:
        try:
            splits = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{owner}: split file {path} is not valid JSON: {e}") from None
    if not isinstance(splits, list) or not splits:
        raise ValueError(f"{owner}: split file {path} must hold a non-empty JSON list of splits")
    return splits


def select_split(splits: Sequence, split_id: int, source: str, owner: str):
    """``splits[split_id]``; ``ValueError`` naming the value, the valid range and where the splits come from."""
    if isinstance(split_id, bool) or not isinstance(split_id, (int, np.integer)) or \
            not 0 <= split_id < len(splits):
        raise ValueError(f"{owner}: split_id {split_id!r} is out of range for {source}: expected an integer in "
                         f"0..{len(splits) - 1} ({len(splits)} splits)")
    return splits[split_id]


def require_keys(split: dict, keys: Sequence[str], split_id: int, source: str, owner: str) -> None:
    """``ValueError`` naming the split and file when ``split`` (a dict) lacks one of ``keys``."""
    if not isinstance(split, dict):
        raise ValueError(f"{owner}: split {split_id} of {source} is not a JSON object with keys {list(keys)}")
    for key in keys:
        if key not in split:
            raise ValueError(f"{owner}: split {split_id} of {source} has no {key!r} list")


def random_id_splits(ids: Sequence[int], num_train: int, num_splits: int = NUM_SPLITS,
                     seed: int = SPLIT_SEED) -> List[Tuple[List[int], List[int]]]:
    """``num_splits`` partitions of ``ids`` into ``num_train`` train ids and the rest (both sorted), drawn from
    ``seed``."""
    rng = np.random.default_rng(seed)
    ids = sorted(ids)
    splits = []
    for _ in range(num_splits):
        order = rng.permutation(len(ids))
        train = sorted(ids[i] for i in order[:num_train])
        test = sorted(ids[i] for i in order[num_train:])
        splits.append((train, test))
    return splits


def as_int(value: Union[int, str], what: str, source: str, owner: str) -> int:
    """An id stored in a split file: an int, or a string ending in one (ACL-DGReID stores ``"viper_12"``)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    match = _TRAILING_INT.search(str(value))
    if match is None:
        raise ValueError(f"{owner}: {source} holds {what} {value!r}; expected an integer (or '<name>_<integer>')")
    return int(match.group(1))


def reroot(stored_path: str, folders: dict) -> str:
    """Map an image path stored in a split file to the current dataset folder: a path whose parent folder is a key
    of ``folders`` becomes ``folders[parent]/<file name>`` (split files store the paths of the machine that wrote
    them); other paths are kept."""
    parent = os.path.basename(os.path.dirname(os.path.normpath(stored_path)))
    if parent in folders:
        return os.path.join(folders[parent], os.path.basename(stored_path))
    return stored_path


def read_item_split(split_path: str, split_id: int, folders: dict, dataset_name: str, owner: str):
    """``(train, query, gallery)`` of split ``split_id`` of a torchreid-style split file (a list of
    ``{"train", "query", "gallery": [[img_path, pid, camid], ...]}``): paths re-rooted to ``folders``
    (:func:`reroot`), train ids and cameras prefixed with ``dataset_name`` as the train lists of every dataset."""
    split = select_split(load_split_file(split_path, owner), split_id, split_path, owner)
    require_keys(split, ("train", "query", "gallery"), split_id, split_path, owner)

    def items(key, is_train):
        out = []
        for path, pid, camid in split[key]:
            pid = as_int(pid, "pid", split_path, owner)
            camid = as_int(camid, "camid", split_path, owner)
            if is_train:
                pid, camid = f"{dataset_name}_{pid}", f"{dataset_name}_{camid}"
            out.append((reroot(path, folders), pid, camid))
        return out

    return items("train", True), items("query", False), items("gallery", False)
