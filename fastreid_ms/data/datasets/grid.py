"""QMUL GRID (Loy et al., CVPR 2009) with its published 10 train/test partitions."""
import os

from .bases import DATASET_REGISTRY, ImageDataset, list_images
from .splits import read_item_split, select_split

_EXTENSIONS = (".jpeg",)


@DATASET_REGISTRY.register()
class GRID(ImageDataset):
    """GRID: 250 paired persons seen by 8 cameras; ``probe`` holds one image of each (250), ``gallery`` one of each
    plus 775 images of unpaired persons (index 0000; distractors, skipped by ``combineall``).

    File names ``<index4>_<camera>_...jpeg``: pid = index, camid = camera - 1. A split (``split_id``, default 0,
    of the 10 published partitions) puts 125 of the 250 persons in train (their probe and gallery images, pids
    ``"grid_<label>"`` numbered in the partition's order, camids ``"grid_<camid>"``); query = the probe images and
    gallery = the gallery images of every other index (raw int pids / camids).

    Splits: ``<root>/underground_reid/splits.json`` (torchreid's / ACL-DGReID's format: a list of ``{"train",
    "query", "gallery"}`` lists of ``[img_path, pid, camid]``) is read when it exists, its image paths re-rooted
    into the current ``probe`` / ``gallery`` folders. Otherwise the published partitions are read from
    ``features_and_partitions.mat`` (field ``trainIdxAll``), as the references do; that MATLAB file needs scipy,
    which fastreid_ms does not require: without scipy the error names the file and the two ways out (install
    scipy, or put a ``splits.json`` next to it). Nothing is written into the dataset folder.
    """

    dataset_dir = "underground_reid"
    dataset_name = "grid"
    _junk_pids = [0]
    layout = """
  <root>/underground_reid/
      probe/    <index4>_<camera>_...jpeg     (250 images, one per paired person)
      gallery/  <index4>_<camera>_...jpeg     (1,025 images; index 0000 = 775 unpaired persons)
      features_and_partitions.mat             (the published 10 partitions, read with scipy)
      splits.json                             (optional: torchreid's splits; read instead of the .mat)"""

    def __init__(self, root: str = "datasets", split_id: int = 0, **kwargs):
        self.root = root
        self.dataset_dir = os.path.join(root, self.dataset_dir)
        self.probe_dir = os.path.join(self.dataset_dir, "probe")
        self.gallery_dir = os.path.join(self.dataset_dir, "gallery")
        self.split_mat_path = os.path.join(self.dataset_dir, "features_and_partitions.mat")
        self.split_path = os.path.join(self.dataset_dir, "splits.json")
        self.check_before_run([self.dataset_dir, self.probe_dir, self.gallery_dir])
        if os.path.isfile(self.split_path):
            train, query, gallery = self.read_split(split_id)
        else:
            self.check_before_run(self.split_mat_path)
            train, query, gallery = self.split_from_partitions(split_id)
        super().__init__(train, query, gallery, **kwargs)

    def read_split(self, split_id: int):
        return read_item_split(self.split_path, split_id, {"probe": self.probe_dir, "gallery": self.gallery_dir}, self.dataset_name,
                               type(self).__name__)

    def split_from_partitions(self, split_id: int):
        partitions = self.read_partitions()
        train_ids = select_split(partitions, split_id, self.split_mat_path, type(self).__name__)
        label_of = {index: label for label, index in enumerate(train_ids)}
        train, query, gallery = [], [], []
        for folder, test_items in ((self.probe_dir, query), (self.gallery_dir, gallery)):
            for path, index, camid in self.parse_dir(folder):
                if index in label_of:
                    train.append((path, f"{self.dataset_name}_{label_of[index]}", f"{self.dataset_name}_{camid}"))
                else:
                    test_items.append((path, index, camid))
        return train, query, gallery

    def read_partitions(self):
        """The train person indices of each published partition (``trainIdxAll`` of the .mat file)."""
        try:
            from scipy.io import loadmat  # optional: only the published .mat partitions need it
            from scipy.io.matlab import MatReadError
        except ImportError:
            raise ImportError(f"{type(self).__name__}: reading the published partitions {self.split_mat_path} "
                              f"needs scipy (pip install scipy), which fastreid_ms does not require; or put "
                              f"torchreid's {os.path.basename(self.split_path)} into {self.dataset_dir}") from None
        try:
            cells = loadmat(self.split_mat_path)["trainIdxAll"][0]
            return [[int(i) for i in cell[0][0][2][0]] for cell in cells]
        except (KeyError, IndexError, TypeError, ValueError, MatReadError) as e:
            raise ValueError(f"{type(self).__name__}: {self.split_mat_path} has no readable 'trainIdxAll' (a 1 x 10 "
                             f"cell of structs whose 3rd field lists the train person indices): "
                             f"{type(e).__name__}: {e}") from None

    def parse_dir(self, folder: str):
        items = []
        for path in list_images(folder, _EXTENSIONS):
            fields = os.path.basename(path).split("_")
            try:
                index, camera = int(fields[0]), int(fields[1])
            except (ValueError, IndexError):
                raise ValueError(f"{type(self).__name__}: file name {path!r} does not match "
                                 f"'<index4>_<camera>_...jpeg' (e.g. 0001_1_25004_107_32_106_221.jpeg)") from None
            items.append((path, index, camera - 1))
        return items
