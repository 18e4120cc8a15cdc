"""Saving and loading a model with its training state: FastReID's ``Checkpointer`` the MindSpore way."""
import json
import logging
import os
from typing import Any, Dict, List, Mapping, Optional

import mindspore
import numpy as np

from .ckpt_reader import CheckpointError, read_ckpt
from .file_io import atomic_write, atomic_write_text
from .state_codec import ARRAY_PREFIX, RNGStates, decode_state, encode_state
from .state_dict import IncompatibleKeys, load_torch_state_dict, strip_prefix
from .torch_pickle import find_state_dict, load_pth_object

__all__ = ["CheckpointError", "CheckpointWriteError", "Checkpointer"]

_STATE_KEY = "__fastreid_ms_state__"
_FORMAT_VERSION = 1


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (disk full, folder not writable ...); the files written before are intact."""


class Checkpointer:
    """Save/load a model and checkpointable objects (anything with ``state_dict()``/``load_state_dict()``:
    optimizers, schedulers, samplers, grad scalers) - FastReID's ``Checkpointer`` the MindSpore way.

    ``save(name, **extra)`` writes ``<save_dir>/<name>.ckpt`` with ``mindspore.save_checkpoint``: every model
    Parameter and buffer under its own name (so ``mindspore.load_checkpoint(file, net)`` also works), every array of
    the checkpointables' state dicts as ``__state__/<n>`` tensors, and the rest of that state (numbers, strings,
    structure; plus ``extra`` such as epoch/metric) as a JSON string in the ``append_dict`` entry
    ``__fastreid_ms_state__`` - no pickle. The RNG states (Python, numpy, MindSpore) are saved as the checkpointable
    ``rng`` unless one is given. The file is written to a temporary name in the same directory, fsync-ed and renamed
    over the target (``last_checkpoint`` too), so a crash never leaves a truncated checkpoint under a final name;
    the file carries MindSpore's CRC32 of its content, verified at every load, so a checkpoint damaged later is
    detected before any weight is loaded (:class:`CheckpointError`). A failed write (disk full, folder not
    writable) raises :class:`CheckpointWriteError` naming the file and leaves the earlier checkpoints and
    ``last_checkpoint`` as they were. ``resume_or_load`` falls back from a damaged last checkpoint to the newest
    intact one in the folder, and says so.

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
        self.checkpointables.setdefault("rng", RNGStates())
        self.logger = logging.getLogger(__name__)

    # ------------------------------------------------------------------------------------------------ save
    def save(self, name: str, **kwargs: Any) -> Optional[str]:
        """Write ``<save_dir>/<name>.ckpt`` (model, checkpointables, ``kwargs``) and tag it in ``last_checkpoint``;
        returns the path (None when saving is disabled)."""
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
        skeleton = {"format": "fastreid_ms", "version": _FORMAT_VERSION, "crc32": True,
                    "empty_model_tensors": empty, "state": encode_state(state, arrays, "state")}
        tensors.extend({"name": k, "data": mindspore.Tensor(v)} for k, v in arrays.items())
        self.logger.info("Saving checkpoint to {}".format(save_file))
        try:
            with atomic_write(save_file) as tmp:
                mindspore.save_checkpoint(tensors, tmp, append_dict={_STATE_KEY: json.dumps(skeleton)},
                                          crc_check=True)
        except Exception as e:
            raise CheckpointWriteError(f"cannot write checkpoint {save_file}: {e}; the checkpoints written before "
                                       f"and last_checkpoint are unchanged") from e
        self.tag_last_checkpoint(basename)
        return save_file

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        path = os.path.join(self.save_dir, "last_checkpoint")
        try:
            atomic_write_text(path, last_filename_basename)
        except Exception as e:
            raise CheckpointWriteError(f"cannot write {path}: {e}; it still names the previous checkpoint") from e

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
            return self._resume(self.get_checkpoint_file())
        return self.load(path, checkpointables=[])

    def _resume(self, last: str) -> Dict[str, Any]:
        """Load ``last`` fully, or, when it is missing or damaged, the newest intact checkpoint of ``save_dir``."""
        tag = os.path.join(self.save_dir, "last_checkpoint")
        others = sorted((f for f in self.get_all_checkpoint_files() if f.endswith(".ckpt") and f != last),
                        key=os.path.getmtime, reverse=True)
        problems = []
        for candidate in [last] + others:
            try:
                if not os.path.isfile(candidate):
                    raise CheckpointError(f"{tag} names {candidate!r}, which does not exist")
                content = self._read(candidate)
                if not content[1]:
                    raise CheckpointError(f"checkpoint {candidate} holds no training state (truncated, or not "
                                          f"written by fastreid_ms)")
            except CheckpointError as e:
                self.logger.warning("Cannot resume from %s: %s", candidate, e)
                problems.append(str(e))
                continue
            if candidate != last:
                self.logger.warning("Resuming from %s, the newest intact checkpoint, instead of %s named by %s",
                                    candidate, last, tag)
            return self._apply(candidate, *content, checkpointables=None)
        raise CheckpointError(f"no intact checkpoint to resume from in {self.save_dir}: " + "; ".join(problems))

    def load(self, path: str, checkpointables: Optional[List[str]] = None) -> Dict[str, Any]:
        """Load ``path`` into the model and the named checkpointables (all if None); returns the remaining extra
        data (e.g. ``epoch``, ``metric``)."""
        if not path:
            self.logger.info("No checkpoint found. Training model from scratch")
            return {}
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Checkpoint {path!r} not found!")
        return self._apply(path, *self._read(path), checkpointables=checkpointables)

    def _read(self, path: str):
        """``(model_state, checkpointable states, extra)`` of the file ``path``, verified, nothing loaded yet."""
        if not os.access(path, os.R_OK):
            raise CheckpointError(f"checkpoint {path} is not readable (permission denied)")
        if path.endswith((".pth", ".pt", ".pkl")):
            return self._read_torch(path)
        return self._read_ckpt(path)

    def _apply(self, path: str, model_state, states, extra, checkpointables: Optional[List[str]]) -> Dict[str, Any]:
        self.logger.info("Loading checkpoint from {}".format(path))
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
        raw, crc_verified = read_ckpt(path)
        skeleton_text = raw.pop(_STATE_KEY, None)
        arrays = {k: v for k, v in raw.items() if k.startswith(ARRAY_PREFIX)}
        model_state = {k: v for k, v in raw.items() if not k.startswith(ARRAY_PREFIX) and not isinstance(v, str)}
        if skeleton_text is None:
            return model_state, {}, {}
        skeleton = json.loads(str(skeleton_text))
        if skeleton.get("format") != "fastreid_ms" or skeleton.get("version") != _FORMAT_VERSION:
            raise CheckpointError(f"{path}: unknown fastreid_ms checkpoint format {skeleton.get('format')!r} "
                                  f"version {skeleton.get('version')!r}")
        if skeleton.get("crc32") and not crc_verified:
            raise CheckpointError(f"checkpoint {path} is truncated (its CRC32 record is missing)")
        for k, (shape, dtype) in skeleton.get("empty_model_tensors", {}).items():
            model_state[k] = np.zeros(tuple(shape), dtype=np.dtype(dtype))
        state = decode_state(skeleton["state"], arrays)
        return model_state, state.get("checkpointables", {}), dict(state.get("extra", {}))

    def _read_torch(self, path: str):
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
        state = strip_prefix(state)
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
