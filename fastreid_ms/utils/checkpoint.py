"""Loading PyTorch FastReID / ACL-DGReID weights into fastreid_ms models.

fastreid_ms names every parameter and running statistic exactly as PyTorch's ``state_dict()`` does
(``layer1.0.bn1.IN.weight``, ``bn1.running_mean``, ``heads.bottleneck.0.weight`` ...), so a PyTorch state dict maps
one to one onto ``model.parameters_and_names()``; only ``num_batches_tracked`` (unused: the BN momentum is fixed) and
a DataParallel ``module.`` prefix are dropped.

:class:`Checkpointer` saves and restores a model with the training state (optimizers, schedulers, RNG, extra data)
in MindSpore ``.ckpt`` files, atomically; :class:`PeriodicCheckpointer` is the ACL-DGReID save schedule.
"""
import json
import logging
import os
from typing import Any, Dict, List, Mapping, NamedTuple, Optional

import numpy as np

from .params import assign_values

logger = logging.getLogger(__name__)


class IncompatibleKeys(NamedTuple):
    missing_keys: List[str]
    unexpected_keys: List[str]
    shape_mismatch_keys: List[str]


def _strip_prefix(state_dict: Mapping[str, np.ndarray], prefix: str = "module.") -> Dict[str, np.ndarray]:
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def load_torch_state_dict(model, state_dict: Mapping[str, np.ndarray], *, skip_shape_mismatch: bool = False,
                          source: str = "state_dict") -> IncompatibleKeys:
    """Copy a PyTorch-named ``state_dict`` (name -> numpy array) into ``model``'s parameters and buffers.

    Returns the model names absent from ``state_dict`` (missing), the ``state_dict`` names the model does not have
    (unexpected; ``num_batches_tracked`` entries are ignored), and, with ``skip_shape_mismatch``, the names skipped
    because their shapes differ. Without ``skip_shape_mismatch`` a shape mismatch raises ``ValueError`` naming the
    key and both shapes, and nothing is loaded.
    """
    state = {k: v for k, v in _strip_prefix(state_dict).items() if not k.endswith("num_batches_tracked")}
    params = dict(model.parameters_and_names())
    missing, mismatched, to_load = [], [], []
    for name, param in params.items():
        if name not in state:
            missing.append(name)
            continue
        value = np.asarray(state[name])
        if tuple(value.shape) != tuple(param.shape):
            if not skip_shape_mismatch:
                raise ValueError(f"{source}: shape mismatch for {name!r}: checkpoint has {tuple(value.shape)}, "
                                 f"the model expects {tuple(param.shape)}")
            mismatched.append(name)
            continue
        to_load.append((param, value))
    assign_values([param for param, _ in to_load], [value for _, value in to_load])
    unexpected = [k for k in state if k not in params]
    return IncompatibleKeys(missing, unexpected, mismatched)


# ---------------------------------------------------------------------------------------------------------------
# Checkpointer: model + training state in one MindSpore .ckpt, written atomically
# ---------------------------------------------------------------------------------------------------------------
_STATE_KEY = "__fastreid_ms_state__"
_ARRAY_PREFIX = "__state__/"
_FORMAT_VERSION = 1


class _RNGStates:
    """Python ``random``, numpy's global generator and MindSpore's default generator, as one checkpointable."""

    def state_dict(self) -> Dict[str, Any]:
        import random

        import mindspore

        return {"python": random.getstate(), "numpy": np.random.get_state(),
                "mindspore": mindspore.get_rng_state().asnumpy()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        import random

        import mindspore

        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        np.random.set_state(tuple(state["numpy"]))
        mindspore.set_rng_state(mindspore.Tensor(np.asarray(state["mindspore"], dtype=np.uint8)))


def _encode_state(obj: Any, arrays: Dict[str, np.ndarray], path: str) -> Any:
    """JSON-able skeleton of ``obj``: arrays/Tensors go to ``arrays`` (referenced by key), dict keys keep their
    types, tuples stay tuples. Zero-size arrays (MindSpore's checkpoint writer drops them) are stored inline."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, float)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "asnumpy"):
        obj = obj.asnumpy()
    if isinstance(obj, np.ndarray):
        if obj.size == 0:
            return {"__empty__": [list(obj.shape), obj.dtype.str]}
        key = f"{_ARRAY_PREFIX}{len(arrays)}"
        arrays[key] = obj
        return {"__array__": key}
    if isinstance(obj, dict):
        return {"__map__": [[_encode_state(k, arrays, path), _encode_state(v, arrays, f"{path}.{k}")]
                            for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode_state(v, arrays, f"{path}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode_state(v, arrays, f"{path}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(f"checkpoint state {path}: cannot store a {type(obj).__name__} (allowed: numbers, strings, "
                    f"None, arrays/Tensors, and dicts/lists/tuples of them)")


def _decode_state(obj: Any, arrays: Mapping[str, np.ndarray]) -> Any:
    if isinstance(obj, list):
        return [_decode_state(v, arrays) for v in obj]
    if isinstance(obj, dict):
        if "__array__" in obj:
            return arrays[obj["__array__"]]
        if "__empty__" in obj:
            shape, dtype = obj["__empty__"]
            return np.zeros(tuple(shape), dtype=np.dtype(dtype))
        if "__tuple__" in obj:
            return tuple(_decode_state(v, arrays) for v in obj["__tuple__"])
        if "__map__" in obj:
            return {_decode_key(_decode_state(k, arrays)): _decode_state(v, arrays) for k, v in obj["__map__"]}
        raise ValueError(f"unknown checkpoint state entry {sorted(obj)}")
    return obj


def _decode_key(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def _new_file_mode() -> int:
    """The mode the process umask gives a new file (``mindspore.save_checkpoint`` writes 0400, which teammates
    cannot read and ``rm`` asks about)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: str) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _atomic_write_text(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(directory)


class Checkpointer:
    """Save/load a model and checkpointable objects (anything with ``state_dict()``/``load_state_dict()``:
    optimizers, schedulers, samplers, grad scalers) - FastReID's ``Checkpointer`` the MindSpore way.

    ``save(name, **extra)`` writes ``<save_dir>/<name>.ckpt`` with ``mindspore.save_checkpoint``: every model
    Parameter and buffer under its own name (so ``mindspore.load_checkpoint(file, net)`` also works), every array of
    the checkpointables' state dicts as ``__state__/<n>`` tensors, and the rest of that state (numbers, strings,
    structure; plus ``extra`` such as epoch/metric) as a JSON string in the ``append_dict`` entry
    ``__fastreid_ms_state__`` - no pickle. The RNG states (Python, numpy, MindSpore) are saved as the checkpointable
    ``rng`` unless one is given. The file is written to a temporary name in the same directory, fsync-ed and renamed
    over the target (``last_checkpoint`` too), so a crash never leaves a truncated checkpoint under a final name.

    ``load(path)`` reads such a ``.ckpt``, a plain MindSpore ``.ckpt`` of PyTorch-named parameters, or a PyTorch
    ``.pth`` (read without torch by :mod:`fastreid_ms.utils.torch_pickle`; a ``module.`` prefix is stripped; the
    torch optimizer/scheduler states in it are not restored). Tensors whose shape differs from the model's are
    skipped and reported in ONE info line; missing and unexpected names are logged.
    """

    def __init__(self, model, save_dir: str = "", *, save_to_disk: bool = True, **checkpointables: Any):
        self.model = model
        self.save_dir = save_dir
        self.save_to_disk = save_to_disk
        self.checkpointables = dict(checkpointables)
        self.checkpointables.setdefault("rng", _RNGStates())
        self.logger = logging.getLogger(__name__)

    # ------------------------------------------------------------------------------------------------ save
    def save(self, name: str, **kwargs: Any) -> Optional[str]:
        """Write ``<save_dir>/<name>.ckpt`` (model, checkpointables, ``kwargs``) and tag it in ``last_checkpoint``;
        returns the path (None when saving is disabled)."""
        import mindspore

        if not self.save_dir or not self.save_to_disk:
            return None
        basename = f"{name}.ckpt"
        if os.path.basename(basename) != basename:
            raise ValueError(f"Checkpointer.save: name {name!r} must not contain a directory")
        os.makedirs(self.save_dir, exist_ok=True)
        save_file = os.path.join(self.save_dir, basename)
        arrays: Dict[str, np.ndarray] = {}
        tensors, empty = [], {}
        for pname, param in self.model.parameters_and_names():
            if param.size == 0:
                empty[pname] = [list(param.shape), param.asnumpy().dtype.str]
            else:
                tensors.append({"name": pname, "data": param})
        state = {"checkpointables": {k: obj.state_dict() for k, obj in self.checkpointables.items()},
                 "extra": dict(kwargs)}
        skeleton = {"format": "fastreid_ms", "version": _FORMAT_VERSION, "empty_model_tensors": empty,
                    "state": _encode_state(state, arrays, "state")}
        tensors.extend({"name": k, "data": mindspore.Tensor(v)} for k, v in arrays.items())
        self.logger.info("Saving checkpoint to {}".format(save_file))
        tmp = os.path.join(self.save_dir, f".{name}.tmp{os.getpid()}.ckpt")
        try:
            mindspore.save_checkpoint(tensors, tmp, append_dict={_STATE_KEY: json.dumps(skeleton)})
            os.chmod(tmp, _new_file_mode())
            _fsync_file(tmp)
            os.replace(tmp, save_file)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        _fsync_dir(self.save_dir)
        self.tag_last_checkpoint(basename)
        return save_file

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        _atomic_write_text(os.path.join(self.save_dir, "last_checkpoint"), last_filename_basename)

    # ------------------------------------------------------------------------------------------------ query
    def has_checkpoint(self) -> bool:
        return bool(self.save_dir) and os.path.isfile(os.path.join(self.save_dir, "last_checkpoint"))

    def get_checkpoint_file(self) -> str:
        """The path named by ``last_checkpoint`` ("" if there is none)."""
        try:
            with open(os.path.join(self.save_dir, "last_checkpoint")) as f:
                last_saved = f.read().strip()
        except OSError:
            return ""
        return os.path.join(self.save_dir, last_saved) if last_saved else ""

    def get_all_checkpoint_files(self) -> List[str]:
        """All ``.ckpt`` / ``.pth`` files in ``save_dir`` (temporary files of interrupted saves excluded)."""
        if not self.save_dir or not os.path.isdir(self.save_dir):
            return []
        return sorted(os.path.join(self.save_dir, f) for f in os.listdir(self.save_dir)
                      if f.endswith((".ckpt", ".pth")) and not f.startswith(".")
                      and os.path.isfile(os.path.join(self.save_dir, f)))

    # ------------------------------------------------------------------------------------------------ load
    def resume_or_load(self, path: str, *, resume: bool = True) -> Dict[str, Any]:
        """With ``resume`` and a ``last_checkpoint`` in ``save_dir``: load that file fully (model, checkpointables,
        RNG). Otherwise load the model weights of ``path`` only ("" = nothing)."""
        if resume and self.has_checkpoint():
            last = self.get_checkpoint_file()
            if not os.path.isfile(last):
                raise FileNotFoundError(f"{os.path.join(self.save_dir, 'last_checkpoint')} names {last!r}, which "
                                        f"does not exist")
            return self.load(last)
        return self.load(path, checkpointables=[])

    def load(self, path: str, checkpointables: Optional[List[str]] = None) -> Dict[str, Any]:
        """Load ``path`` into the model and the named checkpointables (all if None); returns the remaining extra
        data (e.g. ``epoch``, ``metric``)."""
        if not path:
            self.logger.info("No checkpoint found. Training model from scratch")
            return {}
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Checkpoint {path!r} not found!")
        self.logger.info("Loading checkpoint from {}".format(path))
        if path.endswith((".pth", ".pt", ".pkl")):
            model_state, states, extra = self._read_torch(path)
        else:
            model_state, states, extra = self._read_ckpt(path)
        self._load_model(model_state, path)
        names = list(self.checkpointables) if checkpointables is None else list(checkpointables)
        for key in names:
            if key not in self.checkpointables:
                raise KeyError(f"Checkpointer.load: no checkpointable named {key!r}")
            if key in states:
                self.logger.info("Loading {} from {}".format(key, path))
                self.checkpointables[key].load_state_dict(states[key])
        return extra

    def _read_ckpt(self, path: str):
        import mindspore

        try:
            raw = mindspore.load_checkpoint(path)
        except ValueError as e:
            raise ValueError(f"cannot read checkpoint {path!r}: {e}") from None
        skeleton_text = raw.pop(_STATE_KEY, None)
        arrays = {k: v.asnumpy() for k, v in raw.items() if k.startswith(_ARRAY_PREFIX)}
        model_state = {k: v.asnumpy() for k, v in raw.items() if not k.startswith(_ARRAY_PREFIX)}
        if skeleton_text is None:
            return model_state, {}, {}
        skeleton = json.loads(str(skeleton_text))
        if skeleton.get("format") != "fastreid_ms" or skeleton.get("version") != _FORMAT_VERSION:
            raise ValueError(f"{path}: unknown fastreid_ms checkpoint format {skeleton.get('format')!r} version "
                             f"{skeleton.get('version')!r}")
        for k, (shape, dtype) in skeleton.get("empty_model_tensors", {}).items():
            model_state[k] = np.zeros(tuple(shape), dtype=np.dtype(dtype))
        state = _decode_state(skeleton["state"], arrays)
        return model_state, state.get("checkpointables", {}), dict(state.get("extra", {}))

    def _read_torch(self, path: str):
        from .torch_pickle import find_state_dict, load_pth_object

        obj = load_pth_object(path)
        model_state = find_state_dict(obj, path)
        extra = {}
        if isinstance(obj, Mapping) and "model" in obj:
            extra = {k: v for k, v in obj.items() if k != "model" and isinstance(v, (int, float, str))}
            ignored = [k for k in obj if k != "model" and k not in extra]
            if ignored:
                self.logger.info(f"{path}: PyTorch training state {ignored} is not restored (model weights only)")
        return model_state, {}, extra

    def _load_model(self, state: Dict[str, np.ndarray], path: str) -> IncompatibleKeys:
        state = _strip_prefix(state)
        params = dict(self.model.parameters_and_names())
        mismatched = [(k, tuple(np.shape(v)), tuple(params[k].shape)) for k, v in state.items()
                      if k in params and tuple(np.shape(v)) != tuple(params[k].shape)]
        incompatible = load_torch_state_dict(self.model, state, skip_shape_mismatch=True, source=path)
        if mismatched:
            self.logger.info("Skipped {} tensor(s) with a different shape in the checkpoint than in the model: {}"
                             .format(len(mismatched), "; ".join(f"{k} {c} vs {m}" for k, c, m in mismatched)))
        if incompatible.missing_keys:
            self.logger.info("Some model parameters or buffers are not found in the checkpoint: {}".format(
                ", ".join(incompatible.missing_keys)))
        if incompatible.unexpected_keys:
            self.logger.info("The checkpoint contains tensors that are not used by the model: {}".format(
                ", ".join(incompatible.unexpected_keys)))
        return incompatible


class PeriodicCheckpointer:
    """The ACL-DGReID checkpoint schedule, ``step(epoch, metric=...)`` after every epoch:

    * at an evaluation epoch (``(epoch + 1) % period == 0``, or the last epoch) whose ``metric`` beats the best
      so far: save ``model_best`` first (so that a crash in the saves that follow never leaves a remembered best
      without its file);
    * ``epoch + 1 > save_every_epoch_after`` (40 in the reference; negative = never): save ``model_{epoch:04d}``;
    * ``(epoch + 1) % period == 0`` and not the last epoch: save ``model_{epoch:04d}`` (again, so
      ``last_checkpoint`` names it);
    * last epoch (``epoch >= max_epoch - 1``): save ``model_final``.

    Every file holds ``epoch``, ``metric``, ``best_metric`` and ``best_epoch`` as extra data; :meth:`restore` takes
    the best back from a resumed checkpoint's extra data, so that the first evaluation after ``--resume`` only
    replaces ``model_best`` when it is better (the reference forgets it and overwrites it).
    """

    def __init__(self, checkpointer: Checkpointer, period: int, max_epoch: Optional[int] = None,
                 save_every_epoch_after: int = 40):
        self.checkpointer = checkpointer
        self.period = int(period)
        self.max_epoch = max_epoch
        self.save_every_epoch_after = int(save_every_epoch_after)
        self.best_metric = -1
        self.best_epoch = -1

    def restore(self, extra: Dict[str, Any]) -> None:
        """Take ``best_metric`` / ``best_epoch`` from a loaded checkpoint's extra data (kept when absent)."""
        self.best_metric = extra.get("best_metric", self.best_metric)
        self.best_epoch = int(extra.get("best_epoch", self.best_epoch))

    def step(self, epoch: int, **kwargs: Any) -> None:
        if self.max_epoch is None:
            raise ValueError("PeriodicCheckpointer.step: max_epoch is not set")
        epoch = int(epoch)
        periodic = (epoch + 1) % self.period == 0 and epoch < self.max_epoch - 1
        last = epoch >= self.max_epoch - 1
        improved = (periodic or last) and kwargs["metric"] > self.best_metric
        if improved:
            self.best_metric, self.best_epoch = kwargs["metric"], epoch
        state = {"epoch": epoch, **kwargs, "best_metric": self.best_metric, "best_epoch": self.best_epoch}
        if improved:
            self.checkpointer.save("model_best", **state)
        if 0 <= self.save_every_epoch_after < epoch + 1:
            self.checkpointer.save("model_{:04d}".format(epoch), **state)
        if periodic:
            self.checkpointer.save("model_{:04d}".format(epoch), **state)
        if last:
            self.checkpointer.save("model_final", **state)

    def save(self, name: str, **kwargs: Any) -> None:
        self.checkpointer.save(name, **kwargs)
