"""Seeding and device selection."""
import logging
import os
import random
from datetime import datetime

import numpy as np

logger = logging.getLogger(__name__)

_DEVICE_ALIASES = {"cpu": "CPU", "gpu": "GPU", "cuda": "GPU", "ascend": "Ascend", "npu": "Ascend"}


def seed_all_rng(seed: int = None) -> int:
    """Seed Python's, numpy's and MindSpore's global generators; a ``None`` or negative seed draws a fresh one.

    Returns the seed used, so that a run can be repeated by setting ``SEED`` to it.
    """
    if seed is None or seed < 0:
        seed = (os.getpid() + int(datetime.now().strftime("%S%f")) + int.from_bytes(os.urandom(2), "big")) % (2 ** 31)
        logger.info("Using a generated random seed %d", seed)
    random.seed(seed)
    np.random.seed(seed)
    import mindspore

    mindspore.set_seed(seed)
    return seed


def parse_device(device: str):
    """Parse a ``MODEL.DEVICE`` value ("cpu", "gpu:1", "cuda", "ascend:0") into (MindSpore target, device id)."""
    text = str(device).strip().lower()
    name, _, index = text.partition(":")
    if name not in _DEVICE_ALIASES:
        raise ValueError(f"MODEL.DEVICE={device!r} is not a known device; expected one of cpu, gpu, ascend "
                         f"(optionally with ':<id>', e.g. 'gpu:0'; 'cuda' means gpu)")
    if index and not index.isdigit():
        raise ValueError(f"MODEL.DEVICE={device!r}: the device id after ':' must be a non-negative integer")
    return _DEVICE_ALIASES[name], (int(index) if index else None)


def set_device(device: str) -> str:
    """Apply ``MODEL.DEVICE`` with ``mindspore.set_device``; fail clearly when MindSpore cannot use that device.

    Returns the MindSpore device target ("CPU", "GPU" or "Ascend").
    """
    import mindspore

    target, device_id = parse_device(device)
    current = mindspore.get_context("device_target")
    if target != "CPU" and not mindspore.hal.is_available(target):
        raise ValueError(f"MODEL.DEVICE={device!r}: MindSpore {mindspore.__version__} reports no usable {target} "
                         f"device on this machine (driver, toolkit or plugin missing); use MODEL.DEVICE cpu")
    if current == target and device_id is None:
        return target
    if device_id is None:
        mindspore.set_device(target)
    else:
        mindspore.set_device(target, device_id)
    return target
