"""DukeMTMC-reID (Ristani et al., ECCVW 2016; Zheng et al., ICCV 2017)."""
import os
import re

from .bases import DATASET_REGISTRY, ImageDataset, first_existing, list_images

_NAME_PATTERN = re.compile(r"([-\d]+)_c(\d)")


@DATASET_REGISTRY.register()
class DukeMTMC(ImageDataset):
    """DukeMTMC-reID: 702 train ids / 16,522 images, 2,228 query and 17,661 gallery images, 8 cameras.

    File names ``PPPP_cC_fFFFFFFF.jpg``; camid = C - 1; no junk filtering (as FastReID). Folder
    ``<root>/DukeMTMC-reID`` (or ``<root>/dukemtmc/DukeMTMC-reID``).
    """

    dataset_dir = "DukeMTMC-reID"
    layout = """
  <root>/DukeMTMC-reID/
      bounding_box_train/  PPPP_cC_fFFFFFFF.jpg
      query/               PPPP_cC_fFFFFFFF.jpg
      bounding_box_test/   PPPP_cC_fFFFFFFF.jpg"""

    def __init__(self, root: str = "datasets", **kwargs):
        self.root = root
        candidates = [os.path.join(root, self.dataset_dir), os.path.join(root, "dukemtmc", self.dataset_dir)]
        found = first_existing(candidates, lambda p: os.path.isdir(os.path.join(p, "bounding_box_train")))
        self.dataset_dir = found if found is not None else candidates[0]
        self.train_dir = os.path.join(self.dataset_dir, "bounding_box_train")
        self.query_dir = os.path.join(self.dataset_dir, "query")
        self.gallery_dir = os.path.join(self.dataset_dir, "bounding_box_test")
        self.check_before_run([self.dataset_dir, self.train_dir, self.query_dir, self.gallery_dir])
        super().__init__(lambda: self.process_dir(self.train_dir), lambda: self.process_dir(self.query_dir, False),
                         lambda: self.process_dir(self.gallery_dir, False), **kwargs)

    def process_dir(self, dir_path: str, is_train: bool = True):
        data = []
        for img_path in list_images(dir_path):
            match = _NAME_PATTERN.search(os.path.basename(img_path))
            if match is None:
                raise ValueError(f"{type(self).__name__}: file name {img_path!r} does not match "
                                 f"'<pid>_c<camera>_f<frame>.jpg' (e.g. 0001_c2_f0046182.jpg)")
            pid, camid = map(int, match.groups())
            if not 1 <= camid <= 8:
                raise ValueError(f"{type(self).__name__}: {img_path!r} has camera {camid}; expected 1..8")
            camid -= 1
            if is_train:
                pid, camid = f"{self.dataset_name}_{pid}", f"{self.dataset_name}_{camid}"
            data.append((img_path, pid, camid))
        return data
