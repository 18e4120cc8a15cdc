"""CUHK02 (Li and Wang, CVPR 2013): five camera pairs, P1-P4 for training and P5 for testing (torchreid)."""
import os

from .bases import DATASET_REGISTRY, ImageDataset, list_images

CAM_PAIRS = ("P1", "P2", "P3", "P4", "P5")
TEST_CAM_PAIR = "P5"


@DATASET_REGISTRY.register()
class CUHK02(ImageDataset):
    """CUHK02: 1,816 persons in five camera pairs (971, 306, 107, 193 and 239 persons in P1-P5), ``.png`` images.

    The person is the file-name token before the first ``_``; persons are numbered within a pair only. Cameras are
    numbered across pairs in order (P1 cam1 = 0, P1 cam2 = 1, ..., P5 cam2 = 9). Train = P1-P4: pids ``"cuhk02_
    <label>"`` with labels per pair in sorted token order, offset by the persons of the pairs before (torchreid
    numbers them in ``set`` order, which is not reproducible), camids ``"cuhk02_<camid>"``. Query = P5 ``cam1``,
    gallery = P5 ``cam2``, raw int pids and camids 8 / 9. Domain-generalisation Protocol 1 trains on all of it
    (``DATASETS.COMBINEALL``).
    """

    dataset_dir = "cuhk02"
    dataset_name = "cuhk02"
    layout = """
  <root>/cuhk02/Dataset/
      P1/cam1/<person>_<...>.png   P1/cam2/<person>_<...>.png
      ...                                                   (P1-P4: train)
      P5/cam1/<person>_<...>.png   P5/cam2/<person>_<...>.png   (P5: query = cam1, gallery = cam2)"""

    def __init__(self, root: str = "datasets", **kwargs):
        self.root = root
        self.dataset_dir = os.path.join(root, self.dataset_dir, "Dataset")
        self.pair_dirs = {pair: (os.path.join(self.dataset_dir, pair, "cam1"), os.path.join(self.dataset_dir, pair,
                                                                                           "cam2"))
                          for pair in CAM_PAIRS}
        self.check_before_run([self.dataset_dir] + [d for dirs in self.pair_dirs.values() for d in dirs])
        train, query, gallery = self.process()
        super().__init__(train, query, gallery, **kwargs)

    def process(self):
        train, query, gallery = [], [], []
        num_train_pids = 0
        for index, pair in enumerate(CAM_PAIRS):
            cams = [[(path, self.person(path)) for path in list_images(d, (".png",))] for d in self.pair_dirs[pair]]
            camids = (2 * index, 2 * index + 1)
            if pair == TEST_CAM_PAIR:
                query += [(path, int(person), camids[0]) for path, person in cams[0]]
                gallery += [(path, int(person), camids[1]) for path, person in cams[1]]
                continue
            persons = sorted({person for images in cams for _, person in images})
            label_of = {person: num_train_pids + label for label, person in enumerate(persons)}
            for images, camid in zip(cams, camids):
                train += [(path, f"{self.dataset_name}_{label_of[person]}", f"{self.dataset_name}_{camid}")
                          for path, person in images]
            num_train_pids += len(persons)
        return train, query, gallery

    def person(self, path: str) -> str:
        token = os.path.basename(path).split("_")[0]
        if not token.isdigit():
            raise ValueError(f"{type(self).__name__}: file name {path!r} does not start with '<person number>_' "
                             f"(e.g. 0001_1.png)")
        return token
