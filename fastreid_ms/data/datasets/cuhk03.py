"""CUHK03 (Li et al., CVPR 2014) from FastReID's split JSON files."""
import json
import os

from .bases import DATASET_REGISTRY, ImageDataset, first_existing

_IMAGE_DIRS = ("images_labeled", "images_detected")


@DATASET_REGISTRY.register()
class CUHK03(ImageDataset):
    """CUHK03, new protocol (767 train / 700 test ids) by default; ``cuhk03_labeled`` picks labeled or detected
    boxes, ``cuhk03_classic_split`` the 20 classic splits, ``split_id`` the split.

    Reads ``splits_{new,classic}_{labeled,detected}.json`` (lists of ``[img_path, pid, camid]``) in
    ``<root>/cuhk03`` (FastReID) or ``<root>/cuhk03_new`` (ACL-DGReID). The JSONs store the image paths that existed
    when they were generated, so every path whose parent folder is ``images_labeled``/``images_detected`` is
    re-rooted to that folder inside the dataset folder found now: the dataset can be moved or mounted elsewhere.
    Unlike FastReID this does not need the raw ``.mat`` files when the JSONs exist, and does not create the JSONs
    (FastReID/torchreid's ``preprocess_split`` does that once, with h5py and scipy).
    """

    layout = """
  <root>/cuhk03/                      (or <root>/cuhk03_new/)
      images_labeled/   images_detected/       <campair>_<pid3>_<view>_<img2>.png
      splits_new_labeled.json  splits_new_detected.json            (new protocol, 1 split)
      splits_classic_labeled.json  splits_classic_detected.json    (classic protocol, 20 splits)
  The JSONs are produced from cuhk03_release/cuhk-03.mat and cuhk03_new_protocol_config_{labeled,detected}.mat by
  FastReID's (or torchreid's) CUHK03 preprocessing."""

    def __init__(self, root: str = "datasets", split_id: int = 0, cuhk03_labeled: bool = True,
                 cuhk03_classic_split: bool = False, **kwargs):
        self.root = root
        candidates = [os.path.join(root, "cuhk03"), os.path.join(root, "cuhk03_new")]
        kind = "labeled" if cuhk03_labeled else "detected"
        json_name = f"splits_{'classic' if cuhk03_classic_split else 'new'}_{kind}.json"
        found = first_existing(candidates, lambda p: os.path.isfile(os.path.join(p, json_name)))
        self.dataset_dir = found if found is not None else first_existing(candidates) or candidates[0]
        self.split_path = os.path.join(self.dataset_dir, json_name)
        self.check_before_run([self.dataset_dir, self.split_path])

        with open(self.split_path, "r") as f:
            try:
                splits = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{type(self).__name__}: {self.split_path} is not valid JSON: {e}") from None
        if not isinstance(splits, list) or not 0 <= split_id < len(splits):
            raise ValueError(f"{type(self).__name__}: split_id {split_id} is out of range for {self.split_path} "
                             f"({len(splits) if isinstance(splits, list) else 'not a list of'} splits)")
        split = splits[split_id]
        for key in ("train", "query", "gallery"):
            if key not in split:
                raise ValueError(f"{type(self).__name__}: split {split_id} of {self.split_path} has no {key!r} list")
        train = [(self.resolve(p), f"{self.dataset_name}_{pid}", f"{self.dataset_name}_{camid}")
                 for p, pid, camid in split["train"]]
        query = [(self.resolve(p), int(pid), int(camid)) for p, pid, camid in split["query"]]
        gallery = [(self.resolve(p), int(pid), int(camid)) for p, pid, camid in split["gallery"]]
        super().__init__(train, query, gallery, **kwargs)

    def resolve(self, json_path: str) -> str:
        """Map a path stored in the split JSON to the image inside the current dataset folder."""
        parent = os.path.basename(os.path.dirname(os.path.normpath(json_path)))
        if parent in _IMAGE_DIRS:
            return os.path.join(self.dataset_dir, parent, os.path.basename(json_path))
        if not os.path.isabs(json_path):
            return os.path.join(self.dataset_dir, json_path)
        return json_path
