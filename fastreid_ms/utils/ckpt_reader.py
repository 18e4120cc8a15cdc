"""Reading a MindSpore ``.ckpt`` file into numpy arrays, its CRC32 verified first.

``mindspore.load_checkpoint`` (2.10) refuses a file larger than the machine's *free* memory (``SC_AVPHYS_PAGES``,
which counts the page cache as used): on a machine that has written a few checkpoints, 17 GB available but 200 MB
"free" made it refuse a 230 MB checkpoint at ``--resume``. This reader parses the same protobuf format
(``mindspore.train.checkpoint_pb2``) without that check, and reports a damaged file as such: a CRC32 that does not
match the content (files saved with ``crc_check=True``, as fastreid_ms saves them) or content that does not parse.
"""
import binascii
from typing import Dict, Tuple, Union

import numpy as np
from google.protobuf.message import DecodeError
from mindspore.train.checkpoint_pb2 import Checkpoint

__all__ = ["CheckpointError", "read_ckpt"]

_CRC_TAG = b"crc_num"
_DTYPES = {"Float16": np.float16, "Float32": np.float32, "Float64": np.float64, "Int8": np.int8, "Int16": np.int16,
           "Int32": np.int32, "Int64": np.int64, "UInt8": np.uint8, "UInt16": np.uint16, "UInt32": np.uint32,
           "UInt64": np.uint64, "Bool": np.bool_}


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used: unreadable, truncated, corrupt (CRC32 mismatch) or of unknown format."""


def read_ckpt(path: str) -> Tuple[Dict[str, Union[np.ndarray, str]], bool]:
    """``({name: array or str}, crc_verified)``: the tensors of the ``.ckpt`` file ``path`` and its string entries
    (``append_dict`` strings), and whether the file carried a CRC32 (then verified). A file saved without one that
    was cut at an entry boundary parses, so a caller that knows the file had a CRC32 checks ``crc_verified``.
    Raises :class:`CheckpointError` naming the file when it is damaged."""
    try:
        with open(path, "rb") as f:
            content = f.read()
    except OSError as e:
        raise CheckpointError(f"checkpoint {path} cannot be read: {e.strerror}") from None
    crc_verified = content[-17:-10] == _CRC_TAG
    if crc_verified:
        stored, content = int.from_bytes(content[-10:], byteorder="big"), content[:-17]
        if binascii.crc32(content, 0) != stored:
            raise CheckpointError(f"checkpoint {path} is damaged: its CRC32 does not match its content")
    proto = Checkpoint()
    try:
        proto.ParseFromString(content)
    except DecodeError:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt (it does not parse as a MindSpore "
                              f"checkpoint)") from None
    chunks: Dict[str, list] = {}
    for element in proto.value:
        if not element.HasField("tensor"):
            raise CheckpointError(f"checkpoint {path}: entry {element.tag!r} is not a tensor (map parameters are not "
                                  f"supported)")
        tensor = element.tensor
        chunks.setdefault(element.tag, [tensor.tensor_type, list(tensor.dims), []])[2].append(tensor.tensor_content)
    entries = {}
    for name, (kind, dims, parts) in chunks.items():
        data = b"".join(parts)
        if kind == "str":
            entries[name] = str(np.frombuffer(data, f"U{len(data) // 4}")[0]) if data else ""
            continue
        if kind not in _DTYPES:
            raise CheckpointError(f"checkpoint {path}: tensor {name!r} has type {kind!r}; expected one of "
                                  f"{sorted(_DTYPES)}")
        shape = () if dims == [0] else tuple(dims)
        array = np.frombuffer(data, _DTYPES[kind])
        if array.size != int(np.prod(shape)):
            raise CheckpointError(f"checkpoint {path} is truncated or corrupt: tensor {name!r} has {array.size} "
                                  f"values for shape {shape}")
        entries[name] = array.reshape(shape).copy()
    if not entries and content:
        raise CheckpointError(f"checkpoint {path} holds no tensors (not a MindSpore checkpoint?)")
    return entries, crc_verified
