"""Re-id datasets, registered by name in ``DATASET_REGISTRY``.

Adding a dataset: subclass :class:`ImageDataset`, build ``train``/``query``/``gallery`` lists of
``(img_path, pid, camid)`` from ``root``, decorate the class with ``@DATASET_REGISTRY.register()`` and import its
module before building loaders; its class name is then a valid ``DATASETS.NAMES`` / ``DATASETS.TESTS`` entry.
"""
from .bases import DATASET_REGISTRY, Dataset, DatasetLayoutError, ImageDataset
from .cuhk02 import CUHK02
from .cuhk03 import CUHK03
from .cuhk_sysu import cuhkSYSU
from .dukemtmcreid import DukeMTMC
from .grid import GRID
from .ilids import iLIDS
from .market1501 import Market1501
from .msmt17 import MSMT17
from .prid import PRID
from .viper import VIPeR

__all__ = ["DATASET_REGISTRY", "Dataset", "DatasetLayoutError", "ImageDataset", "CUHK02", "CUHK03", "cuhkSYSU",
           "DukeMTMC", "GRID", "iLIDS", "Market1501", "MSMT17", "PRID", "VIPeR"]
