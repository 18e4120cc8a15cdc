"""PRID 2011, single-shot version (Hirzer et al., SCIA 2011), with torchreid's / ACL-DGReID's random splits."""
import os
import re

from .bases import DATASET_REGISTRY, ImageDataset, list_images
from .splits import NUM_SPLITS, SPLIT_SEED, as_int, load_split_file, random_id_splits, require_keys, select_split

_NAME_PATTERN = re.compile(r"person_(\d+)\.png$")
# PRID 2011: persons 1..200 appear in both views; the other numbers are different people in each view.
NUM_SHARED_IDS = 200


@DATASET_REGISTRY.register()
class PRID(ImageDataset):
    """PRID 2011 single-shot: camera A holds 385 persons, camera B 749; persons 1-200 appear in both.

    A split (``split_id``, default 0, of 10) puts 100 of the 200 shared persons in train (both images, pids
    ``"prid_<label>"``, camids ``"prid_0"`` / ``"prid_1"``) and the other 100 in test: query = their camera-A
    image (camid 0), gallery = their camera-B image plus every camera-B image of a person that is in neither list
    (persons 201-749, camid 1; distractors, skipped by ``combineall``). Test pids are the file numbers.

    ``<root>/prid_2011/splits_single_shot.json`` (torchreid's / ACL-DGReID's format: a list of ``{"train": [pids],
    "test": [pids]}``) is read as published when it exists; the distractors are the camera-B persons outside the
    split's lists (the references hard-code 201-749, the same set for the real data). Without the file, the 10
    splits are drawn from a fixed seed (``splits.SPLIT_SEED``) over the persons 1-200 found in both views; the
    references draw them unseeded once and save them. Nothing is written into the dataset folder.
    """

    dataset_dir = "prid_2011"
    dataset_name = "prid"
    layout = """
  <root>/prid_2011/
      single_shot/cam_a/  person_0001.png ... person_0385.png
      single_shot/cam_b/  person_0001.png ... person_0749.png    (persons 1-200 appear in both cameras)
      splits_single_shot.json    (optional: [{"train": [pids], "test": [pids]}, ...]; drawn when absent)"""

    def __init__(self, root: str = "datasets", split_id: int = 0, **kwargs):
        self.root = root
        self.dataset_dir = os.path.join(root, self.dataset_dir)
        self.cam_a_dir = os.path.join(self.dataset_dir, "single_shot", "cam_a")
        self.cam_b_dir = os.path.join(self.dataset_dir, "single_shot", "cam_b")
        self.split_path = os.path.join(self.dataset_dir, "splits_single_shot.json")
        self.check_before_run([self.dataset_dir, self.cam_a_dir, self.cam_b_dir])
        cam_a, cam_b = self.person_files(self.cam_a_dir), self.person_files(self.cam_b_dir)
        train_ids, test_ids, source = self.split_ids(split_id, cam_a, cam_b)
        listed = set(train_ids) | set(test_ids)
        for pid in sorted(listed):
            for files, folder in ((cam_a, self.cam_a_dir), (cam_b, self.cam_b_dir)):
                if pid not in files:
                    raise ValueError(f"{type(self).__name__}: {source} lists person {pid}, but "
                                     f"{os.path.join(folder, f'person_{pid:04d}.png')!r} does not exist")
        self._junk_pids = sorted(set(cam_b) - listed)

        train = []
        for label, pid in enumerate(train_ids):
            train.append((cam_a[pid], f"{self.dataset_name}_{label}", f"{self.dataset_name}_0"))
            train.append((cam_b[pid], f"{self.dataset_name}_{label}", f"{self.dataset_name}_1"))
        query = [(cam_a[pid], pid, 0) for pid in test_ids]
        gallery = [(cam_b[pid], pid, 1) for pid in test_ids] + [(cam_b[pid], pid, 1) for pid in self._junk_pids]
        super().__init__(train, query, gallery, **kwargs)

    def person_files(self, folder: str):
        files = {}
        for path in list_images(folder, (".png",)):
            match = _NAME_PATTERN.search(os.path.basename(path))
            if match is None:
                raise ValueError(f"{type(self).__name__}: file name {path!r} does not match 'person_<number>.png' "
                                 f"(e.g. person_0001.png)")
            files[int(match.group(1))] = path
        return files

    def split_ids(self, split_id: int, cam_a: dict, cam_b: dict):
        """``(train pids, test pids, where they come from)`` of split ``split_id``."""
        owner = type(self).__name__
        if os.path.isfile(self.split_path):
            split = select_split(load_split_file(self.split_path, owner), split_id, self.split_path, owner)
            require_keys(split, ("train", "test"), split_id, self.split_path, owner)
            train = [as_int(p, "pid", self.split_path, owner) for p in split["train"]]
            test = [as_int(p, "pid", self.split_path, owner) for p in split["test"]]
            return train, test, self.split_path
        shared = [pid for pid in range(1, NUM_SHARED_IDS + 1) if pid in cam_a and pid in cam_b]
        if len(shared) < 2:
            raise self.layout_error(f"{self.dataset_dir!r} has {len(shared)} of the persons 1-{NUM_SHARED_IDS} in "
                                    f"both cameras and no {os.path.basename(self.split_path)}; expected the "
                                    f"published images (or a split file)")
        source = f"the {NUM_SPLITS} splits drawn from seed {SPLIT_SEED} (no {self.split_path})"
        train, test = select_split(random_id_splits(shared, len(shared) // 2), split_id, source, owner)
        return train, test, source
