"""MSMT17 (Wei et al., CVPR 2018), versions V1 and V2."""
import os

from .bases import DATASET_REGISTRY, ImageDataset

# version folder -> (train image folder, test image folder); checked in this order, as FastReID does
VERSION_DIRS = {
    "MSMT17_V1": ("train", "test"),
    "MSMT17_V2": ("mask_train_v2", "mask_test_v2"),
}


@DATASET_REGISTRY.register()
class MSMT17(ImageDataset):
    """MSMT17: 1,041 train ids / 30,248 images (``list_train.txt``), 2,373 val images (``list_val.txt``, added to
    train only with ``combineall``), 11,659 query and 82,161 gallery images, 15 cameras.

    List-file lines are ``<relpath> <pid>``; camid = int(3rd ``_`` field of relpath) - 1; train/val paths are
    relative to the train folder, query/gallery paths to the test folder. Query/gallery pids are offset by the number
    of train ids. The version folder is searched in ``<root>`` and then in ``<root>/msmt17v2`` (ACL-DGReID) and
    ``<root>/msmt17``; V1 before V2. The query/gallery lists are read only when they are used.
    """

    layout = """
  <root>/MSMT17_V1/                         or  <root>/MSMT17_V2/
      train/<pid4>/*.jpg   test/<pid4>/*.jpg        mask_train_v2/<pid4>/*.jpg   mask_test_v2/<pid4>/*.jpg
      list_train.txt  list_val.txt  list_query.txt  list_gallery.txt   (lines: "<relpath> <pid>")
  (the version folder may also sit in <root>/msmt17v2/ or <root>/msmt17/)"""

    def __init__(self, root: str = "datasets", **kwargs):
        self.root = root
        self.dataset_dir = None
        for base in (root, os.path.join(root, "msmt17v2"), os.path.join(root, "msmt17")):
            for version, (train_name, test_name) in VERSION_DIRS.items():
                if os.path.isdir(os.path.join(base, version)):
                    self.dataset_dir, self.version = os.path.join(base, version), version
                    break
            if self.dataset_dir is not None:
                break
        if self.dataset_dir is None:
            raise self.layout_error(f"no MSMT17_V1 or MSMT17_V2 folder found in {root!r} "
                                    f"(also looked in {os.path.join(root, 'msmt17v2')!r})")
        self.train_dir = os.path.join(self.dataset_dir, train_name)
        self.test_dir = os.path.join(self.dataset_dir, test_name)
        self.list_train_path = os.path.join(self.dataset_dir, "list_train.txt")
        self.list_val_path = os.path.join(self.dataset_dir, "list_val.txt")
        self.list_query_path = os.path.join(self.dataset_dir, "list_query.txt")
        self.list_gallery_path = os.path.join(self.dataset_dir, "list_gallery.txt")
        self.check_before_run([self.train_dir, self.test_dir, self.list_train_path])

        train = self.process_dir(self.train_dir, self.list_train_path)
        num_train_pids = self.get_num_pids(train)
        if kwargs.get("combineall", False):
            train += self.process_dir(self.train_dir, self.list_val_path)

        def test_list(list_path):
            return [(path, pid + num_train_pids, camid)
                    for path, pid, camid in self.process_dir(self.test_dir, list_path, is_train=False)]

        super().__init__(train, lambda: test_list(self.list_query_path), lambda: test_list(self.list_gallery_path),
                         **kwargs)

    def process_dir(self, dir_path: str, list_path: str, is_train: bool = True):
        self.check_before_run(list_path)
        data = []
        with open(list_path, "r") as f:
            for line_no, line in enumerate(f, 1):
                fields = line.split()
                if not fields:
                    continue
                try:
                    rel_path, pid = fields
                    pid, camid = int(pid), int(os.path.basename(rel_path).split("_")[2]) - 1
                except (ValueError, IndexError):
                    raise ValueError(f"{type(self).__name__}: {list_path}:{line_no}: expected '<pid4>/<pid4>_<idx>_"
                                     f"<camera2>_<...>.jpg <pid>', got {line.strip()!r}") from None
                img_path = os.path.join(dir_path, rel_path)
                if is_train:
                    pid, camid = f"{self.dataset_name}_{pid}", f"{self.dataset_name}_{camid}"
                data.append((img_path, pid, camid))
        return data
