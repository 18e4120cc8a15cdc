"""VIPeR (Gray et al., PETS 2007), with the random train/test splits of torchreid / ACL-DGReID."""
import os

from .bases import DATASET_REGISTRY, ImageDataset, list_images
from .splits import NUM_SPLITS, SPLIT_SEED, random_id_splits, read_item_split, select_split


@DATASET_REGISTRY.register()
class VIPeR(ImageDataset):
    """VIPeR: 632 identities, one image in each of two cameras (1,264 images).

    The i-th file of ``cam_a`` (sorted) and the i-th of ``cam_b`` show the same person. A split puts half of the
    identities (316) in train (both images, pids ``"viper_<label>"``, camids ``"viper_0"`` / ``"viper_1"``) and the
    others in test: split ``2k`` queries camera A against camera B, split ``2k + 1`` the same identities the other way
    round, so there are 20 splits (10 random partitions), selected by ``split_id`` (default 0). Test pids are the
    positions of the identities in the partition's test list, camids 0 (A) and 1 (B).

    ``<root>/VIPeR/splits.json`` (torchreid's / ACL-DGReID's format: a list of ``{"train", "query", "gallery"}``
    lists of ``[img_path, pid, camid]``) is read as published when it exists; the stored image paths are re-rooted
    into the current ``cam_a`` / ``cam_b`` folders. Without it, the 10 partitions are drawn from a fixed seed
    (``splits.SPLIT_SEED``) and are the same on every run; the references draw them unseeded once and save them, so
    their numbers are not comparable split by split (only on average). Nothing is written into the dataset folder.
    """

    dataset_dir = "VIPeR"
    dataset_name = "viper"
    layout = """
  <root>/VIPeR/
      cam_a/  *.bmp         (632 images; the i-th sorted file of cam_a and of cam_b show the same person)
      cam_b/  *.bmp
      splits.json           (optional: torchreid's 20 splits; drawn from a fixed seed when absent)"""

    def __init__(self, root: str = "datasets", split_id: int = 0, **kwargs):
        self.root = root
        self.dataset_dir = os.path.join(root, self.dataset_dir)
        self.cam_a_dir = os.path.join(self.dataset_dir, "cam_a")
        self.cam_b_dir = os.path.join(self.dataset_dir, "cam_b")
        self.split_path = os.path.join(self.dataset_dir, "splits.json")
        self.check_before_run([self.dataset_dir, self.cam_a_dir, self.cam_b_dir])
        if os.path.isfile(self.split_path):
            train, query, gallery = self.read_split(split_id)
        else:
            train, query, gallery = self.draw_split(split_id)
        super().__init__(train, query, gallery, **kwargs)

    def read_split(self, split_id: int):
        return read_item_split(self.split_path, split_id, {"cam_a": self.cam_a_dir, "cam_b": self.cam_b_dir}, self.dataset_name,
                               type(self).__name__)

    def draw_split(self, split_id: int):
        cam_a, cam_b = list_images(self.cam_a_dir, (".bmp",)), list_images(self.cam_b_dir, (".bmp",))
        if len(cam_a) != len(cam_b) or len(cam_a) < 2:
            raise self.layout_error(f"{self.cam_a_dir!r} holds {len(cam_a)} and {self.cam_b_dir!r} {len(cam_b)} "
                                    f".bmp images; expected the same number (>= 2), one per person in each")
        partitions = random_id_splits(range(len(cam_a)), len(cam_a) // 2, NUM_SPLITS, SPLIT_SEED)
        source = f"the {2 * NUM_SPLITS} splits drawn from seed {SPLIT_SEED} (no {self.split_path})"
        train_ids, test_ids = select_split([p for p in partitions for _ in (0, 1)], split_id, source,
                                           type(self).__name__)
        train = []
        for label, index in enumerate(train_ids):
            train.append((cam_a[index], f"{self.dataset_name}_{label}", f"{self.dataset_name}_0"))
            train.append((cam_b[index], f"{self.dataset_name}_{label}", f"{self.dataset_name}_1"))
        test_a = [(cam_a[index], pid, 0) for pid, index in enumerate(test_ids)]
        test_b = [(cam_b[index], pid, 1) for pid, index in enumerate(test_ids)]
        return (train, test_a, test_b) if split_id % 2 == 0 else (train, test_b, test_a)
