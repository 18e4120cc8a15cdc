"""Dataset base classes (FastReID ``bases.py``) and ``DATASET_REGISTRY``.

A dataset class turns the folders of one benchmark into three lists of ``(img_path, pid, camid)`` tuples:
``train`` (pid/camid prefixed with the dataset name, e.g. ``"Market1501_2"``, relabelled later by ``CommDataset``),
``query`` and ``gallery`` (raw int pid/camid). Roots always come from the caller (``DATASETS.ROOT``).
"""
import copy
import logging
import os
from typing import Callable, Iterable, List, Sequence, Tuple, Union

from tabulate import tabulate

from fastreid_ms.utils.registry import Registry

logger = logging.getLogger(__name__)

# Registry of re-id datasets: ``DATASET_REGISTRY.get(name)(root=..., combineall=...)``.
DATASET_REGISTRY = Registry("DATASET")

Item = Tuple[str, Union[str, int], Union[str, int]]


class DatasetLayoutError(FileNotFoundError):
    """A dataset folder or list file is missing; the message names the path and the layout that was expected."""


class Dataset:
    """Train/query/gallery lists of ``(img_path, pid, camid)``; each list may be given lazily as a callable.

    Subclasses set ``dataset_name`` (the prefix of train pids/camids; defaults to the class name, which is what the
    ACL-DGReID fork uses for Market1501/MSMT17/cuhkSYSU) and, for error messages, ``layout`` (a text drawing of the
    expected folders).
    """

    _junk_pids: Sequence[int] = []
    layout: str = ""

    def __init__(self, train, query, gallery, combineall: bool = False, verbose: bool = True, **kwargs):
        self._train = train
        self._query = query
        self._gallery = gallery
        self.combineall = combineall
        self.verbose = verbose
        if self.combineall:
            self.combine_all()

    dataset_name: str = "Dataset"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "dataset_name" not in cls.__dict__:
            cls.dataset_name = cls.__name__

    @property
    def train(self) -> List[Item]:
        if callable(self._train):
            self._train = self._train()
        return self._train

    @property
    def query(self) -> List[Item]:
        if callable(self._query):
            self._query = self._query()
        return self._query

    @property
    def gallery(self) -> List[Item]:
        if callable(self._gallery):
            self._gallery = self._gallery()
        return self._gallery

    @property
    def num_train_pids(self) -> int:
        return self.get_num_pids(self.train)

    @staticmethod
    def parse_data(data: Iterable[Item]) -> Tuple[int, int]:
        """Number of distinct person ids and cameras in ``data``."""
        pids, cams = set(), set()
        for info in data:
            pids.add(info[1])
            cams.add(info[2])
        return len(pids), len(cams)

    def get_num_pids(self, data: Iterable[Item]) -> int:
        return self.parse_data(data)[0]

    def get_num_cams(self, data: Iterable[Item]) -> int:
        return self.parse_data(data)[1]

    def combine_all(self) -> None:
        """Append query and gallery (minus junk ids) to train, with pids/camids ``"<name>_test_<x>"``."""
        combined = copy.deepcopy(self.train)
        for data in (self.query, self.gallery):
            for img_path, pid, camid in data:
                if pid in self._junk_pids:
                    continue
                combined.append((img_path, f"{self.dataset_name}_test_{pid}", f"{self.dataset_name}_test_{camid}"))
        self._train = combined

    def check_before_run(self, required_files: Union[str, Sequence[str]]) -> None:
        """Fail with :class:`DatasetLayoutError` naming the first missing path and the expected layout."""
        if isinstance(required_files, str):
            required_files = [required_files]
        for fpath in required_files:
            if not os.path.exists(fpath):
                raise self.layout_error(f"{fpath!r} is not found")

    def layout_error(self, problem: str) -> DatasetLayoutError:
        hint = f"\nExpected layout under DATASETS.ROOT:\n{self.layout.rstrip()}" if self.layout else ""
        return DatasetLayoutError(f"{type(self).__name__}: {problem}.{hint}")


class ImageDataset(Dataset):
    """Base class of image re-id datasets; ``show_train`` / ``show_test`` log FastReID's summary tables."""

    def show_train(self) -> None:
        num_pids, num_cams = self.parse_data(self.train)
        table = tabulate([["train", num_pids, len(self.train), num_cams]], tablefmt="pipe",
                         headers=["subset", "# ids", "# images", "# cameras"], numalign="left")
        logger.info(f"=> Loaded {type(self).__name__} in csv format: \n{table}")

    def show_test(self) -> None:
        num_query_pids, num_query_cams = self.parse_data(self.query)
        num_gallery_pids, num_gallery_cams = self.parse_data(self.gallery)
        table = tabulate([["query", num_query_pids, len(self.query), num_query_cams],
                          ["gallery", num_gallery_pids, len(self.gallery), num_gallery_cams]],
                         tablefmt="pipe", headers=["subset", "# ids", "# images", "# cameras"], numalign="left")
        logger.info(f"=> Loaded {type(self).__name__} in csv format: \n{table}")


def list_images(dir_path: str, extensions: Sequence[str] = (".jpg",)) -> List[str]:
    """Sorted full paths of the files in ``dir_path`` with one of ``extensions`` (case-sensitive, like a glob).

    FastReID uses ``glob`` order, which depends on the file system; sorting makes item order (and so the sampler's
    index streams) reproducible.
    """
    names = sorted(n for n in os.listdir(dir_path) if n.endswith(tuple(extensions)))
    return [os.path.join(dir_path, n) for n in names]


def first_existing(candidates: Sequence[str], is_ok: Callable[[str], bool] = os.path.isdir) -> Union[str, None]:
    """The first path in ``candidates`` accepted by ``is_ok``, else None."""
    for path in candidates:
        if is_ok(path):
            return path
    return None
