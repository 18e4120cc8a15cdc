"""CUHK-SYSU person crops, the re-id version used by domain-generalisation work (train only)."""
import os

from .bases import DATASET_REGISTRY, ImageDataset, list_images


@DATASET_REGISTRY.register()
class cuhkSYSU(ImageDataset):  # noqa: N801 - the registered name users put in DATASETS.NAMES
    """CUHK-SYSU crops: 11,934 ids / 34,574 images in ``<root>/cuhk_sysu/cropped_images/*.jpg``; train only.

    As in ACL-DGReID, the identity is the file-name token before the first ``_`` (``p1234_s5678.jpg`` -> ``p1234``),
    relabelled to ``"cuhkSYSU_<label>"``; every image gets the dummy camera ``"cuhkSYSU_0"``.
    Difference from the reference: labels follow the SORTED identity tokens. The reference numbers them in Python
    ``set`` iteration order, which changes from run to run with string-hash randomisation, so it
    cannot be reproduced; the result is the same partition with a reproducible numbering.
    """

    dataset_dir = "cuhk_sysu"
    layout = """
  <root>/cuhk_sysu/cropped_images/  p<pid>_s<image>.jpg   (identity = text before the first '_')"""

    def __init__(self, root: str = "datasets", **kwargs):
        self.root = root
        self.dataset_dir = os.path.join(root, self.dataset_dir)
        self.data_dir = os.path.join(self.dataset_dir, "cropped_images")
        self.check_before_run([self.data_dir])
        super().__init__(self.process_dir(self.data_dir), [], [], **kwargs)

    def process_dir(self, dir_path: str):
        img_paths = list_images(dir_path)
        tokens = [os.path.basename(p).split("_")[0] for p in img_paths]
        pid2label = {pid: label for label, pid in enumerate(sorted(set(tokens)))}
        camid = f"{self.dataset_name}_0"
        return [(path, f"{self.dataset_name}_{pid2label[token]}", camid) for path, token in zip(img_paths, tokens)]
