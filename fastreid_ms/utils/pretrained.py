"""Pretrained weight files: reading a PyTorch ``.pth`` or a converted MindSpore ``.ckpt``, checking the SHA-256
prefix that published files carry in their name, and writing converted backbones.

Published weights are named ``<name>-<first hex digits of the file's SHA-256>.pth`` (``resnet50_ibn_a-d9d0bb7b.pth``);
like ``torch.hub``'s ``check_hash`` the digest of the file must start with those digits, so a truncated or corrupt
download is refused before any weight is used. Only a run of at least :data:`MIN_HASH_DIGITS` hex digits between the
last ``-`` and the extension counts as a hash (``r50-ibn.pth`` or ``model-a.pth`` are not checked).
"""
import hashlib
import logging
import os
import re
from typing import Dict, Mapping, Optional, Tuple

import mindspore
import numpy as np

from .ckpt_reader import read_ckpt
from .file_io import atomic_write
from .state_dict import load_torch_state_dict
from .torch_pickle import load_pth

__all__ = ["MIN_HASH_DIGITS", "check_hash_prefix", "load_pretrained_backbone", "read_pretrained",
           "save_converted_backbone", "sha256_of"]

logger = logging.getLogger(__name__)

MIN_HASH_DIGITS = 6
_HASH_IN_NAME = re.compile(r"-([0-9a-f]+)\.[A-Za-z0-9]+$")
CONVERTED_MARKER = "__fastreid_ms_pretrained__"


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_hash_prefix(path: str) -> Optional[str]:
    """Raise ``ValueError`` when ``path``'s name carries a SHA-256 prefix its content does not have; returns the
    full digest when the name carries one, None otherwise."""
    match = _HASH_IN_NAME.search(os.path.basename(path))
    if match is None or len(match.group(1)) < MIN_HASH_DIGITS:
        return None
    expected = match.group(1)
    digest = sha256_of(path)
    if not digest.startswith(expected):
        raise ValueError(f"{path}: SHA-256 {digest[:len(expected)]}... does not match the {expected} in its name "
                         f"(the download is incomplete or corrupt): download the file again")
    return digest


def read_pretrained(path: str, key: str = "MODEL.BACKBONE.PRETRAIN_PATH") -> Tuple[Dict[str, np.ndarray], bool]:
    """``(tensors, converted)``: the tensors (name -> array) of the pretrained file ``path`` given by config ``key``
    (a PyTorch ``.pth`` or a ``.ckpt``) after :func:`check_hash_prefix`, and whether it is a backbone written by
    :func:`save_converted_backbone` (already in the model's names)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{key} {path!r} does not exist (expected a PyTorch .pth or a converted .ckpt)")
    check_hash_prefix(path)
    if path.endswith(".ckpt"):
        entries, _ = read_ckpt(path)
        tensors = {k: v for k, v in entries.items() if not isinstance(v, str)}
        return tensors, CONVERTED_MARKER in entries
    return load_pth(path), False


def save_converted_backbone(tensors: Mapping[str, np.ndarray], path: str, source: str) -> None:
    """Write ``tensors`` (backbone parameter name -> array, in the fastreid_ms model's names) to the ``.ckpt``
    ``path`` atomically, marked as converted from ``source``."""
    if not path.endswith(".ckpt"):
        raise ValueError(f"output {path!r}: expected a .ckpt file name")
    entries = [{"name": k, "data": mindspore.Tensor(np.asarray(v))} for k, v in tensors.items()]
    with atomic_write(path) as tmp:
        mindspore.save_checkpoint(entries, tmp, append_dict={CONVERTED_MARKER: os.path.basename(source)})


def load_pretrained_backbone(model, path: str, weights_name: str) -> None:
    """Load the ImageNet weights at ``path`` (``MODEL.BACKBONE.PRETRAIN_PATH``; a ``.pth`` or converted ``.ckpt``
    in the model's parameter names) into the backbone ``model``, leniently as FastReID does: tensors the file lacks
    keep their initial value, tensors the model lacks or of another shape are skipped, each list logged once.
    ``weights_name`` names the file to download when ``path`` is empty."""
    if not path:
        raise ValueError(f"MODEL.BACKBONE.PRETRAIN is True but MODEL.BACKBONE.PRETRAIN_PATH is empty: download the "
                         f"ImageNet weights {weights_name} (a PyTorch .pth) and set MODEL.BACKBONE.PRETRAIN_PATH")
    incompatible = load_torch_state_dict(model, read_pretrained(path)[0], skip_shape_mismatch=True, source=path)
    if incompatible.missing_keys:
        logger.info("Keys not in the pretrained weights (initialised randomly): %s",
                    ", ".join(incompatible.missing_keys))
    if incompatible.unexpected_keys:
        logger.info("Pretrained keys the model does not use: %s", ", ".join(incompatible.unexpected_keys))
    if incompatible.shape_mismatch_keys:
        logger.warning("Pretrained keys skipped for a shape mismatch: %s", ", ".join(incompatible.shape_mismatch_keys))
