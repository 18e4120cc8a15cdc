"""Market-1501 (Zheng et al., ICCV 2015)."""
import logging
import os
import re

from .bases import DATASET_REGISTRY, ImageDataset, first_existing, list_images

logger = logging.getLogger(__name__)

_NAME_PATTERN = re.compile(r"([-\d]+)_c(\d)")


@DATASET_REGISTRY.register()
class Market1501(ImageDataset):
    """Market-1501: 751 train ids / 12,936 images, 750 query ids / 3,368 images, 15,913 gallery images, 6 cameras.

    File names ``PPPP_cCsS_FFFFFF_BB.jpg``; pid -1 (junk) is skipped, pid 0 (distractors) is kept; camid = C - 1.
    The data folder is the first of ``<root>/Market-1501-v15.09.15`` (FastReID), ``<root>/market1501/
    Market-1501-v15.09.15`` and ``<root>/market1501`` (ACL-DGReID's variants) or ``<root>`` itself (FastReID's
    deprecated flat layout) that holds ``bounding_box_train``. The name pattern is matched on the file name only
    (FastReID searches the whole path, so digits in a parent folder name could be mis-read).
    """

    _junk_pids = [0, -1]
    dataset_dir = "Market-1501-v15.09.15"
    layout = """
  <root>/Market-1501-v15.09.15/        (or <root>/market1501/Market-1501-v15.09.15/)
      bounding_box_train/  PPPP_cCsS_FFFFFF_BB.jpg
      query/               PPPP_cCsS_FFFFFF_BB.jpg
      bounding_box_test/   PPPP_cCsS_FFFFFF_BB.jpg
      images/              (only with market1501_500k=True)"""

    def __init__(self, root: str = "datasets", market1501_500k: bool = False, **kwargs):
        self.root = root
        candidates = [os.path.join(root, self.dataset_dir), os.path.join(root, "market1501", self.dataset_dir),
                      os.path.join(root, "market1501"), root]
        found = first_existing(candidates, lambda p: os.path.isdir(os.path.join(p, "bounding_box_train")))
        self.data_dir = found if found is not None else candidates[0]
        if found == root:
            logger.warning("Market1501: using the deprecated flat layout %s; put bounding_box_train/ etc. under "
                           "%s", root, candidates[0])
        self.train_dir = os.path.join(self.data_dir, "bounding_box_train")
        self.query_dir = os.path.join(self.data_dir, "query")
        self.gallery_dir = os.path.join(self.data_dir, "bounding_box_test")
        self.extra_gallery_dir = os.path.join(self.data_dir, "images")
        self.market1501_500k = market1501_500k

        required = [self.data_dir, self.train_dir, self.query_dir, self.gallery_dir]
        if market1501_500k:
            required.append(self.extra_gallery_dir)
        self.check_before_run(required)

        def gallery():
            extra = self.process_dir(self.extra_gallery_dir, is_train=False) if market1501_500k else []
            return self.process_dir(self.gallery_dir, is_train=False) + extra

        super().__init__(lambda: self.process_dir(self.train_dir), lambda: self.process_dir(self.query_dir, False),
                         gallery, **kwargs)

    def process_dir(self, dir_path: str, is_train: bool = True):
        data = []
        for img_path in list_images(dir_path):
            match = _NAME_PATTERN.search(os.path.basename(img_path))
            if match is None:
                raise ValueError(f"{type(self).__name__}: file name {img_path!r} does not match "
                                 f"'<pid>_c<camera>...jpg' (e.g. 0002_c1s1_000451_03.jpg)")
            pid, camid = map(int, match.groups())
            if pid == -1:
                continue
            if not (0 <= pid <= 1501 and 1 <= camid <= 6):
                raise ValueError(f"{type(self).__name__}: {img_path!r} has pid {pid} / camera {camid}; expected "
                                 f"0 <= pid <= 1501 and 1 <= camera <= 6")
            camid -= 1
            if is_train:
                pid, camid = f"{self.dataset_name}_{pid}", f"{self.dataset_name}_{camid}"
            data.append((img_path, pid, camid))
        return data
