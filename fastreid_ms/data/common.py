"""``CommDataset``: an image list with relabelled ids and domain ids (ACL-DGReID ``data/common.py``)."""
from typing import Dict, Optional, Sequence, Union

import numpy as np

from .data_utils import read_image


class CommDataset:
    """Re-id items ``(img_path, pid, camid)`` with contiguous labels and a domain id per item.

    Args:
        img_items: list of ``(img_path, pid, camid)``.
        transform: callable ``transform(pil_image, rng) -> float32 CHW array`` (see ``transforms.build_transforms``).
        relabel: map pids/camids to contiguous ints (train); False keeps the raw ints (query/gallery).
        domain_ids: one int for every item, or one int per item (the combined multi-domain train set).
        offset: added to every relabelled pid (ACL-DGReID per-domain datasets; they get the combined set's
            ``pid_dict`` assigned afterwards, which gives the same labels).

    Relabelling (reference behaviour): with per-item domain ids, the pid strings of each domain are sorted
    (lexicographic string order, ``"Market1501_10" < "Market1501_2"``) and the domains concatenated in domain order,
    so domain 0 gets labels ``[0, C0)``, domain 1 ``[C0, C0 + C1)`` and so on; cameras the same way.
    """

    def __init__(self, img_items: Sequence, transform=None, relabel: bool = True,
                 domain_ids: Union[int, Sequence[int]] = 0, offset: int = 0):
        self.img_items = list(img_items)
        self.transform = transform
        self.relabel = relabel
        if isinstance(domain_ids, (int, np.integer)):
            self.domainids = np.full(len(self.img_items), int(domain_ids), dtype=np.int64)
        else:
            self.domainids = np.asarray(domain_ids, dtype=np.int64)
            if len(self.domainids) != len(self.img_items):
                raise ValueError(f"CommDataset: {len(self.domainids)} domain ids for {len(self.img_items)} items")

        self.pids, self.cams = [], []
        for domain in sorted(set(self.domainids.tolist())):
            mask = self.domainids == domain
            self.pids += sorted({item[1] for item, m in zip(self.img_items, mask) if m})
            self.cams += sorted({item[2] for item, m in zip(self.img_items, mask) if m})
        if len(set(self.pids)) != len(self.pids):
            shared = sorted({p for p in self.pids if self.pids.count(p) > 1}, key=str)[:5]
            raise ValueError(f"CommDataset: person ids {shared} occur in more than one domain; train pids must be "
                             f"prefixed with a dataset name unique to their domain (dataset_name)")
        self.img_paths = np.array([item[0] for item in self.img_items], dtype=str)
        self._pid_dict: Optional[Dict] = None
        self.cam_dict: Optional[Dict] = None
        if relabel:
            self.cam_dict = {c: i for i, c in enumerate(self.cams)}
            self.camids = np.array([self.cam_dict[item[2]] for item in self.img_items], dtype=np.int64)
            self.pid_dict = {p: i + offset for i, p in enumerate(self.pids)}
        else:
            self.camids = np.array([int(item[2]) for item in self.img_items], dtype=np.int64)
            self.targets = np.array([int(item[1]) for item in self.img_items], dtype=np.int64)

    @property
    def pid_dict(self) -> Optional[Dict]:
        return self._pid_dict

    @pid_dict.setter
    def pid_dict(self, mapping: Dict) -> None:
        """Set the pid -> label map (the reference shares the combined set's map with the per-domain sets)."""
        self._pid_dict = mapping
        self.targets = np.array([mapping[item[1]] for item in self.img_items], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.img_items)

    def load(self, index: int, rng: Optional[np.random.Generator] = None) -> np.ndarray:
        """Read item ``index`` and apply the transform with ``rng`` (float32 CHW, 0..255)."""
        image = read_image(self.img_items[index][0])
        if self.transform is None:
            return np.ascontiguousarray(np.asarray(image, dtype=np.float32).transpose(2, 0, 1))
        return self.transform(image, rng if rng is not None else np.random.default_rng(index))

    def __getitem__(self, index: int) -> dict:
        """One sample as a dict (images, targets, camids, domainids, img_paths); the transform's randomness is seeded
        by ``index``. Loaders do not use this: they seed every sample from its position in the stream."""
        return {"images": self.load(index), "targets": int(self.targets[index]), "camids": int(self.camids[index]),
                "domainids": int(self.domainids[index]), "img_paths": str(self.img_paths[index])}

    def batch_info(self, indices: np.ndarray) -> dict:
        """The non-image fields of a batch of items, as numpy arrays."""
        return {"targets": self.targets[indices], "camids": self.camids[indices],
                "domainids": self.domainids[indices], "img_paths": self.img_paths[indices]}

    @property
    def num_classes(self) -> int:
        return len(self.pids)

    @property
    def num_cameras(self) -> int:
        return len(self.cams)
