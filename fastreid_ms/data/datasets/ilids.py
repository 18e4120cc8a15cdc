"""QMUL iLIDS (Zheng et al., BMVC 2009), with torchreid's / ACL-DGReID's random splits."""
import os
import re
from collections import defaultdict

import numpy as np

from .bases import DATASET_REGISTRY, ImageDataset, list_images
from .splits import NUM_SPLITS, SPLIT_SEED, load_split_file, random_id_splits, require_keys, select_split

_NAME_PATTERN = re.compile(r"^(\d{4})(\d{3})\.jpg$")


@DATASET_REGISTRY.register()
class iLIDS(ImageDataset):  # noqa: N801 - the registered name users put in DATASETS.TESTS
    """QMUL iLIDS: 476 images of 119 persons (2-8 each) from an airport's cameras (not given per image).

    File names ``PPPPIII.jpg``: pid = ``PPPP``, camid = ``III`` - 1 (the image number, as the references do, so
    that no gallery image is dropped as "same camera"). A split (``split_id``, default 0, of 10) puts half of the
    persons (59) in train (all their images, pids ``"ilids_<label>"`` with labels in sorted pid order, camids
    ``"ilids_<camid>"``); each other person gives one query and one gallery image (raw int pids / camids).

    ``<root>/i-LIDS_Pedestrian/splits.json`` (torchreid's / ACL-DGReID's format: a list of ``{"train", "query",
    "gallery"}`` lists of image file names) is read as published when it exists. Without it, the 10 splits are
    drawn from a fixed seed (``splits.SPLIT_SEED``): the ids, then two images of each test person; the references
    draw them unseeded once and save them. Nothing is written into the dataset folder. (FastReID's train-only
    ``iLIDS/<pid>/*.png`` folder is a different packaging and is not read here.)
    """

    dataset_dir = "i-LIDS_Pedestrian"
    dataset_name = "ilids"
    layout = """
  <root>/i-LIDS_Pedestrian/
      Persons/  PPPPIII.jpg       (476 images, 119 persons; PPPP = person, III = image number)
      splits.json                 (optional: [{"train": [names], "query": [names], "gallery": [names]}, ...])"""

    def __init__(self, root: str = "datasets", split_id: int = 0, **kwargs):
        self.root = root
        self.dataset_dir = os.path.join(root, self.dataset_dir)
        self.data_dir = os.path.join(self.dataset_dir, "Persons")
        self.split_path = os.path.join(self.dataset_dir, "splits.json")
        self.check_before_run([self.dataset_dir, self.data_dir])
        names = [os.path.basename(p) for p in list_images(self.data_dir, (".jpg",))]
        split = self.read_split(split_id) if os.path.isfile(self.split_path) else self.draw_split(split_id, names)
        known = set(names)
        for key in ("train", "query", "gallery"):
            missing = [n for n in split[key] if n not in known]
            if missing:
                raise ValueError(f"{type(self).__name__}: split {split_id} lists {key} image {missing[0]!r}, which "
                                 f"is not in {self.data_dir!r}")
        train_pids = sorted({self.parse_name(n)[0] for n in split["train"]})
        label_of = {pid: label for label, pid in enumerate(train_pids)}
        train = []
        for name in split["train"]:
            pid, camid = self.parse_name(name)
            train.append((os.path.join(self.data_dir, name), f"{self.dataset_name}_{label_of[pid]}",
                          f"{self.dataset_name}_{camid}"))
        query = [(os.path.join(self.data_dir, n), *self.parse_name(n)) for n in split["query"]]
        gallery = [(os.path.join(self.data_dir, n), *self.parse_name(n)) for n in split["gallery"]]
        super().__init__(train, query, gallery, **kwargs)

    def parse_name(self, name: str):
        match = _NAME_PATTERN.match(name)
        if match is None:
            raise ValueError(f"{type(self).__name__}: image name {name!r} does not match 'PPPPIII.jpg' (4-digit "
                             f"person, 3-digit image number, e.g. 0001001.jpg)")
        return int(match.group(1)), int(match.group(2)) - 1

    def read_split(self, split_id: int) -> dict:
        owner = type(self).__name__
        split = select_split(load_split_file(self.split_path, owner), split_id, self.split_path, owner)
        require_keys(split, ("train", "query", "gallery"), split_id, self.split_path, owner)
        return {key: [os.path.basename(str(n)) for n in split[key]] for key in ("train", "query", "gallery")}

    def draw_split(self, split_id: int, names) -> dict:
        by_pid = defaultdict(list)
        for name in names:
            by_pid[self.parse_name(name)[0]].append(name)
        few = sorted(pid for pid, images in by_pid.items() if len(images) < 2)
        if len(by_pid) < 2 or few:
            raise self.layout_error(f"{self.data_dir!r} holds {len(by_pid)} persons, {len(few)} of them with fewer "
                                    f"than 2 images (e.g. {few[:3]}); each person needs >= 2 images to be queried")
        source = f"the {NUM_SPLITS} splits drawn from seed {SPLIT_SEED} (no {self.split_path})"
        partitions = random_id_splits(sorted(by_pid), len(by_pid) // 2)
        select_split(partitions, split_id, source, type(self).__name__)
        rng = np.random.default_rng([SPLIT_SEED, 1])
        splits = []
        for train_pids, test_pids in partitions:
            pairs = [rng.choice(sorted(by_pid[pid]), 2, replace=False) for pid in test_pids]
            splits.append({"train": [n for pid in train_pids for n in sorted(by_pid[pid])],
                           "query": [str(p[0]) for p in pairs], "gallery": [str(p[1]) for p in pairs]})
        return splits[split_id]
