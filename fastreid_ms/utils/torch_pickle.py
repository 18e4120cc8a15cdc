"""Read PyTorch ``.pth`` / ``.pt`` files without PyTorch, safely.

Two layouts are supported:

* zip (``torch.save`` since PyTorch 1.6): ``<archive>/data.pkl`` holds the pickled object, tensors refer by
  persistent id ``('storage', <torch.XStorage>, key, location, numel)`` to raw little-endian storages
  ``<archive>/data/<key>``;
* legacy (``_use_new_zipfile_serialization=False`` / PyTorch < 1.6): a sequence of pickles (magic number, protocol
  version, system info, the object, the list of storage keys) followed by every storage as an int64 element count
  and its raw bytes.

The pickle is read by a restricted unpickler: ``find_class`` resolves only the handful of globals needed to rebuild
tensors (``torch._utils._rebuild_tensor_v2``, ``_rebuild_parameter``, ``_rebuild_parameter_with_state``,
``collections.OrderedDict``, the ``torch.*Storage`` types, ``torch.device``) to local re-implementations and refuses
every other global with :class:`UnsafePickleError` naming it, so a malicious file cannot run code. Tensors become
numpy arrays (float32/float16/float64/bfloat16->float32/int64/int32/int16/int8/uint8/bool), honouring storage
offsets and strides (views, transposes and expanded tensors are materialised as independent contiguous arrays).
"""
import collections
import io
import os
import pickle
import struct
import zipfile
from typing import Any, Dict, Mapping

import numpy as np

__all__ = ["UnsafePickleError", "load_pth", "load_pth_object", "find_state_dict"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# storage type name -> (numpy dtype of the raw bytes, element size)
_STORAGE_TYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "BFloat16Storage": np.uint16,  # converted to float32 when the storage is read
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """The file references a Python global that is not needed to rebuild tensors; nothing was executed."""


class _StorageType:
    def __init__(self, name: str):
        self.name = name
        self.dtype = np.dtype(_STORAGE_TYPES[name])


class _Storage:
    """A flat numpy array of one storage's elements."""

    def __init__(self, array: np.ndarray, name: str):
        self.array = array
        self.name = name


def _decode_storage(raw: bytes, storage_type: _StorageType, numel: int, byteorder: str, where: str) -> _Storage:
    dtype = storage_type.dtype.newbyteorder("<" if byteorder == "little" else ">") \
        if storage_type.dtype.itemsize > 1 else storage_type.dtype
    need = numel * dtype.itemsize
    if len(raw) < need:
        raise ValueError(f"{where}: storage has {len(raw)} bytes, {need} expected for {numel} "
                         f"{storage_type.name} elements (truncated file?)")
    array = np.frombuffer(raw, dtype=dtype, count=numel).astype(dtype.newbyteorder("="), copy=True)
    if storage_type.name == "BFloat16Storage":
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return _Storage(array, storage_type.name)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    if not isinstance(storage, _Storage):
        raise pickle.UnpicklingError(f"_rebuild_tensor_v2 expects a storage, got {type(storage).__name__}")
    size = tuple(int(s) for s in size)
    stride = tuple(int(s) for s in stride)
    if len(size) != len(stride):
        raise pickle.UnpicklingError(f"tensor with size {size} but stride {stride}")
    flat = storage.array
    if any(s == 0 for s in size):
        return np.zeros(size, dtype=flat.dtype)
    offset = int(storage_offset)
    last = offset + sum((n - 1) * st for n, st in zip(size, stride))
    if offset < 0 or any(st < 0 for st in stride) or last >= flat.size:
        raise pickle.UnpicklingError(f"tensor of size {size}, stride {stride}, offset {offset} reads outside its "
                                     f"storage of {flat.size} elements")
    item = flat.itemsize
    view = np.lib.stride_tricks.as_strided(flat[offset:], shape=size, strides=tuple(st * item for st in stride),
                                           writeable=False)
    return np.array(view, copy=True, order="C")


def _rebuild_parameter(data, requires_grad=True, backward_hooks=None):
    return data


def _rebuild_parameter_with_state(data, requires_grad=True, backward_hooks=None, state=None):
    return data


def _device(*args):
    return str(args[0]) if args else "cpu"


_ALLOWED_FUNCTIONS = {
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch", "device"): _device,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the allowed globals; ``rebuild_tensor`` replaces ``_rebuild_tensor_v2`` (the legacy layout
    defers tensor construction until the storage bytes, stored after the pickle, have been read)."""

    def __init__(self, file, where: str, load_storage, rebuild_tensor=_rebuild_tensor_v2):
        super().__init__(file, encoding="utf-8")
        self._where = where
        self._load_storage = load_storage
        self._rebuild_tensor = rebuild_tensor

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self._rebuild_tensor
        func = _ALLOWED_FUNCTIONS.get((module, name))
        if func is not None:
            return func
        if module == "torch" and name in _STORAGE_TYPES:
            return _StorageType(name)
        raise UnsafePickleError(f"{self._where}: refusing to load the Python global '{module}.{name}': only the "
                                f"PyTorch tensor-rebuilding functions, storage types and OrderedDict are allowed "
                                f"(the file may contain code; it was not executed)")

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            kind = pid[0] if isinstance(pid, tuple) and pid else type(pid).__name__
            raise UnsafePickleError(f"{self._where}: unsupported persistent id {kind!r} (only tensor storages are "
                                    f"allowed)")
        storage_type = pid[1]
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"{self._where}: storage persistent id without a storage type: {pid[:3]}")
        return self._load_storage(pid)


def _load_zip(path: str) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = [n for n in names if n.endswith("data.pkl")]
        if not pkl:
            raise ValueError(f"{path}: zip archive without a data.pkl record: not a PyTorch checkpoint")
        pkl_name = min(pkl, key=len)
        prefix = pkl_name[: -len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = archive.read(prefix + "byteorder").decode().strip()
            if byteorder not in ("little", "big"):
                raise ValueError(f"{path}: unknown byteorder {byteorder!r}")
        cache: Dict[str, _Storage] = {}

        def load_storage(pid):
            _, storage_type, key, _location, numel = pid[:5]
            key = str(key)
            if key not in cache:
                record = f"{prefix}data/{key}"
                if record not in names:
                    raise ValueError(f"{path}: missing storage record {record!r}")
                cache[key] = _decode_storage(archive.read(record), storage_type, int(numel), byteorder,
                                             f"{path}:{record}")
            return cache[key]

        return _RestrictedUnpickler(io.BytesIO(archive.read(pkl_name)), f"{path}:{pkl_name}", load_storage).load()


def _load_legacy(path: str) -> Any:
    with open(path, "rb") as f:
        def plain(what):
            return _RestrictedUnpickler(f, f"{path} ({what})", _no_storage).load()

        def _no_storage(pid):
            raise UnsafePickleError(f"{path}: storage reference outside the object pickle")

        try:
            magic = plain("magic number")
        except (pickle.UnpicklingError, EOFError, ValueError) as e:
            raise ValueError(f"{path}: neither a zip archive nor a legacy PyTorch file ({e})") from None
        if magic != _LEGACY_MAGIC:
            raise ValueError(f"{path}: not a PyTorch checkpoint (no zip archive, no legacy magic number)")
        protocol = plain("protocol version")
        if protocol != _LEGACY_PROTOCOL:
            raise ValueError(f"{path}: unsupported legacy PyTorch protocol version {protocol!r}")
        sys_info = plain("system info")
        byteorder = "little" if not isinstance(sys_info, dict) or sys_info.get("little_endian", True) else "big"
        types: Dict[str, tuple] = {}
        views = []

        def record(pid):
            # legacy pid: ('storage', type, root_key, location, numel, view_metadata)
            _, storage_type, key, _location, numel = pid[:5]
            view = pid[5] if len(pid) > 5 else None
            key = str(key)
            types.setdefault(key, (storage_type, int(numel)))
            storage = _Storage(None, storage_type.name)
            views.append((storage, key, view))
            return storage

        obj = _RestrictedUnpickler(f, f"{path} (object)", record, rebuild_tensor=lambda *a: _PendingTensor(a)).load()
        keys = plain("storage keys")
        bytes_by_key = {}
        for key in keys:
            key = str(key)
            if key not in types:
                raise ValueError(f"{path}: storage {key!r} listed but never referenced")
            storage_type, _ = types[key]
            header = f.read(8)
            if len(header) != 8:
                raise ValueError(f"{path}: truncated before storage {key!r}")
            numel = struct.unpack("<q" if byteorder == "little" else ">q", header)[0]
            raw = f.read(numel * storage_type.dtype.itemsize)
            bytes_by_key[key] = _decode_storage(raw, storage_type, numel, byteorder, f"{path} storage {key}").array
    # Tensors were rebuilt while unpickling, before the raw data could be read: rebuild them now.
    return _fill_legacy(obj, views, bytes_by_key, path)


class _PendingTensor:
    def __init__(self, args):
        self.args = args


def _fill_legacy(obj, views, arrays, path):
    for storage, key, view in views:
        if key not in arrays:
            raise ValueError(f"{path}: storage {key!r} has no data")
        array = arrays[key]
        if view is not None:
            _view_key, offset, view_size = view
            array = array[int(offset): int(offset) + int(view_size)]
        storage.array = array

    def resolve(o):
        if isinstance(o, _PendingTensor):
            return _rebuild_tensor_v2(*o.args)
        if isinstance(o, collections.OrderedDict):
            return collections.OrderedDict((k, resolve(v)) for k, v in o.items())
        if isinstance(o, dict):
            return {k: resolve(v) for k, v in o.items()}
        if isinstance(o, list):
            return [resolve(v) for v in o]
        if isinstance(o, tuple):
            return tuple(resolve(v) for v in o)
        return o

    return resolve(obj)


def load_pth_object(path: str) -> Any:
    """The object stored in a PyTorch file (dicts, lists, numbers, strings; tensors as numpy arrays)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"PyTorch checkpoint {path!r} does not exist")
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(path)
        return _load_legacy(path)
    except ValueError:
        raise
    except Exception as e:
        raise ValueError(f"{path} is not a readable PyTorch checkpoint (truncated or corrupt): "
                         f"{type(e).__name__}: {e}") from None


def find_state_dict(obj: Any, where: str = "checkpoint") -> Dict[str, np.ndarray]:
    """The ``name -> array`` state dict inside a loaded checkpoint: ``obj`` itself when all its values are arrays,
    else its ``"model"`` / ``"state_dict"`` / ``"model_state_dict"`` / ``"net"`` / ``"module"`` entry (searched
    recursively in that order)."""
    if isinstance(obj, Mapping):
        if obj and all(isinstance(v, np.ndarray) for v in obj.values()):
            return dict(obj)
        for key in ("model", "state_dict", "model_state_dict", "net", "module"):
            if key in obj and isinstance(obj[key], Mapping):
                return find_state_dict(obj[key], f"{where}[{key!r}]")
        keys = ", ".join(repr(k) for k in list(obj)[:10])
        raise ValueError(f"{where}: no state dict found (expected a mapping of names to tensors, or one under "
                         f"'model'/'state_dict'); top-level keys: {keys}")
    raise ValueError(f"{where}: expected a dict, got {type(obj).__name__}")


def load_pth(path: str) -> Dict[str, np.ndarray]:
    """The state dict (``name -> numpy array``) of a PyTorch ``.pth`` file, found by :func:`find_state_dict`."""
    return find_state_dict(load_pth_object(path), os.fspath(path))
