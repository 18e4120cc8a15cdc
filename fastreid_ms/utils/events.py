"""Training event storage and writers (FastReID/detectron2 ``utils/events.py``).

:class:`EventStorage` collects scalars (losses, timings, lr, evaluation metrics) during training;
:class:`CommonMetricPrinter` logs them to the console, :class:`JSONWriter` appends them to ``metrics.json``.
There is no TensorBoard writer: it would need a tensorboard/torch dependency that fastreid_ms does not have
(``metrics.json`` holds the same scalars, one JSON object per line).
"""
import datetime
import json
import logging
import os
import resource
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from collections.abc import Mapping
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .file_io import atomic_write_text

__all__ = ["get_event_storage", "EventStorage", "HistoryBuffer", "EventWriter", "CommonMetricPrinter", "JSONWriter",
           "StepLossWriter", "flatten_results_dict", "max_memory_mb"]

_CURRENT_STORAGE_STACK: List["EventStorage"] = []


def get_event_storage() -> "EventStorage":
    """The :class:`EventStorage` of the innermost ``with EventStorage(...)`` block; error outside any."""
    if not _CURRENT_STORAGE_STACK:
        raise RuntimeError("get_event_storage() has to be called inside a 'with EventStorage(...)' context")
    return _CURRENT_STORAGE_STACK[-1]


class HistoryBuffer:
    """The values of one scalar with the iteration of each, plus a running global average."""

    def __init__(self, max_length: int = 1000000):
        self._max_length = max_length
        self._data: List[Tuple[float, float]] = []
        self._count = 0
        self._global_avg = 0.0

    def update(self, value: float, iteration: Optional[float] = None) -> None:
        if iteration is None:
            iteration = self._count
        if len(self._data) == self._max_length:
            self._data.pop(0)
        self._data.append((value, iteration))
        self._count += 1
        self._global_avg += (value - self._global_avg) / self._count

    def latest(self) -> float:
        return self._data[-1][0]

    def median(self, window_size: int) -> float:
        return float(np.median([x[0] for x in self._data[-window_size:]]))

    def avg(self, window_size: int) -> float:
        return float(np.mean([x[0] for x in self._data[-window_size:]]))

    def global_avg(self) -> float:
        return self._global_avg

    def values(self) -> List[Tuple[float, float]]:
        return self._data


class EventStorage:
    """Scalars of a training run with their iteration (``storage.iter``) and epoch (``storage.epoch``).

    ``put_scalar(name, value, smoothing_hint)``: ``smoothing_hint=True`` means writers report the median over a
    window (losses, times), False the latest value (lr, evaluation metrics). A name keeps its hint.
    """

    def __init__(self, start_iter: int = 0):
        self._history: Dict[str, HistoryBuffer] = defaultdict(HistoryBuffer)
        self._smoothing_hints: Dict[str, bool] = {}
        self._latest_scalars: Dict[str, Tuple[float, int]] = {}
        self._iter = start_iter
        self.epoch = 0
        self._current_prefix = ""
        self._step_losses: List[Dict[str, Any]] = []

    def put_scalar(self, name: str, value, smoothing_hint: bool = True) -> None:
        name = self._current_prefix + name
        existing = self._smoothing_hints.get(name)
        if existing is not None and existing != smoothing_hint:
            raise ValueError(f"Scalar {name!r} was put with a different smoothing_hint before")
        value = float(value)
        self._history[name].update(value, self._iter)
        self._latest_scalars[name] = (value, self._iter)
        self._smoothing_hints[name] = smoothing_hint

    def put_scalars(self, *, smoothing_hint: bool = True, **kwargs) -> None:
        for k, v in kwargs.items():
            self.put_scalar(k, v, smoothing_hint=smoothing_hint)

    def put_step_losses(self, phase: str, losses: Mapping[str, float]) -> None:
        """Record the losses of ONE forward pass of the current iteration (``phase``: e.g. 'basic', 'mtrain',
        'mtest'), unsmoothed, in order; several passes of one iteration are all kept (e.g. the extra basic steps at
        iteration 0), so that two runs can be compared step by step (:class:`StepLossWriter`)."""
        record = {"iteration": self._iter, "phase": str(phase)}
        record.update((k, float(v)) for k, v in losses.items())
        self._step_losses.append(record)

    def step_losses(self) -> List[Dict[str, Any]]:
        """The per-pass loss records (:meth:`put_step_losses`) not yet taken by :meth:`pop_step_losses`."""
        return list(self._step_losses)

    def pop_step_losses(self) -> List[Dict[str, Any]]:
        """Return and forget the pending per-pass loss records."""
        records, self._step_losses = self._step_losses, []
        return records

    def history(self, name: str) -> HistoryBuffer:
        ret = self._history.get(name)
        if ret is None:
            raise KeyError(f"No history metric available for {name}!")
        return ret

    def histories(self) -> Dict[str, HistoryBuffer]:
        return self._history

    def latest(self) -> Dict[str, Tuple[float, int]]:
        """name -> (latest value, iteration it was put at)."""
        return self._latest_scalars

    def latest_with_smoothing_hint(self, window_size: int = 20) -> Dict[str, Tuple[float, int]]:
        """Like :meth:`latest`, with smoothed scalars replaced by their median over the last ``window_size``."""
        return {k: (self._history[k].median(window_size) if self._smoothing_hints[k] else v, itr)
                for k, (v, itr) in self._latest_scalars.items()}

    def smoothing_hints(self) -> Dict[str, bool]:
        return self._smoothing_hints

    def step(self) -> None:
        self._iter += 1

    @property
    def iter(self) -> int:
        return self._iter

    @iter.setter
    def iter(self, val: int) -> None:
        self._iter = int(val)

    @property
    def iteration(self) -> int:
        return self._iter

    def __enter__(self) -> "EventStorage":
        _CURRENT_STORAGE_STACK.append(self)
        return self

    def __exit__(self, exc_type, exc_val, exc_tb) -> None:
        if not _CURRENT_STORAGE_STACK or _CURRENT_STORAGE_STACK[-1] is not self:
            raise RuntimeError("EventStorage contexts were exited out of order")
        _CURRENT_STORAGE_STACK.pop()

    @contextmanager
    def name_scope(self, name: str):
        """Prefix the names of the scalars put inside the block with ``name/``."""
        old_prefix = self._current_prefix
        self._current_prefix = name.rstrip("/") + "/"
        try:
            yield
        finally:
            self._current_prefix = old_prefix


def flatten_results_dict(results: Mapping) -> Dict[str, Any]:
    """``{"Market1501": {"Rank-1": 90.1}}`` -> ``{"Market1501/Rank-1": 90.1}`` (any nesting depth; for the event
    storage, metrics.json and evaluation_results.json)."""
    flat = {}
    for k, v in results.items():
        if isinstance(v, Mapping):
            for kk, vv in flatten_results_dict(v).items():
                flat[f"{k}/{kk}"] = vv
        else:
            flat[k] = v
    return flat


def max_memory_mb() -> float:
    """Peak resident memory of this process in MB (``ru_maxrss``; kilobytes on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0


class EventWriter:
    """Base class of writers that read the current :class:`EventStorage`."""

    def write(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class CommonMetricPrinter(EventWriter):
    """Log ``eta, epoch/iter, <losses: median of the last 200>, time, data_time, lr, max_mem`` (FastReID format).

    ``max_mem`` is the peak resident memory of the process (the CPU analogue of FastReID's CUDA
    ``max_memory_allocated``), in MB.
    """

    def __init__(self, max_iter: int):
        self.logger = logging.getLogger(__name__)
        self._max_iter = max_iter
        self._last_write: Optional[Tuple[int, float]] = None

    def write(self) -> None:
        storage = get_event_storage()
        iteration = storage.iter
        epoch = storage.epoch
        if iteration == self._max_iter:
            # only training progress is reported; nothing after the last iteration
            return
        try:
            data_time = storage.history("data_time").avg(20)
        except KeyError:
            data_time = None
        eta_string = None
        try:
            iter_time = storage.history("time").global_avg()
            eta_seconds = storage.history("time").median(1000) * (self._max_iter - iteration - 1)
            storage.put_scalar("eta_seconds", eta_seconds, smoothing_hint=False)
            eta_string = str(datetime.timedelta(seconds=int(eta_seconds)))
        except KeyError:
            iter_time = None
            if self._last_write is not None and iteration > self._last_write[0]:
                estimate = (time.perf_counter() - self._last_write[1]) / (iteration - self._last_write[0])
                eta_string = str(datetime.timedelta(seconds=int(estimate * (self._max_iter - iteration - 1))))
            self._last_write = (iteration, time.perf_counter())
        try:
            lr = "{:.2e}".format(storage.history("lr").latest())
        except KeyError:
            lr = "N/A"
        losses = "  ".join(f"{k}: {v.median(200):.4g}" for k, v in storage.histories().items() if "loss" in k)
        self.logger.info(
            " {eta}epoch/iter: {epoch}/{iter}  {losses}  {time}{data_time}lr: {lr}  {memory}".format(
                eta=f"eta: {eta_string}  " if eta_string else "",
                epoch=epoch,
                iter=iteration,
                losses=losses,
                time=f"time: {iter_time:.4f}  " if iter_time is not None else "",
                data_time=f"data_time: {data_time:.4f}  " if data_time is not None else "",
                lr=lr,
                memory=f"max_mem: {max_memory_mb():.0f}M",
            )
        )


class JSONWriter(EventWriter):
    """Append the scalars put since the last write to ``json_file``, one JSON object per iteration and line
    (``{"iteration": i, "<name>": value, ...}``; smoothed scalars as the median over ``window_size``; evaluation
    results as flattened ``"<dataset>/<metric>"`` names when the evaluator returned a nested dict)."""

    def __init__(self, json_file: str, window_size: int = 20):
        directory = os.path.dirname(os.path.abspath(json_file))
        os.makedirs(directory, exist_ok=True)
        self._file_handle = open(json_file, "a")
        self._window_size = window_size
        self._last_write = -1

    def write(self) -> None:
        storage = get_event_storage()
        to_save: Dict[int, Dict[str, float]] = defaultdict(dict)
        for k, (v, itr) in storage.latest_with_smoothing_hint(self._window_size).items():
            if itr <= self._last_write:
                continue
            to_save[itr][k] = v
        if to_save:
            self._last_write = max(to_save)
        for itr in sorted(to_save):
            scalars = dict(to_save[itr])
            scalars["iteration"] = itr
            self._file_handle.write(json.dumps(scalars, sort_keys=True) + "\n")
        self._file_handle.flush()
        os.fsync(self._file_handle.fileno())

    def close(self) -> None:
        self._file_handle.close()


class StepLossWriter(EventWriter):
    """Append every forward pass's losses (:meth:`EventStorage.put_step_losses`) to ``json_file``, one JSON object
    per pass and line: ``{"iteration": i, "phase": "basic", "loss_cls": ..., ...}``, unsmoothed and in execution
    order, so that two runs (e.g. an interrupted and resumed one and an uninterrupted one) can be compared step by
    step. The file holds the history of the run that produced the current model: at its first write the writer
    drops the records at or after that write's first iteration (passes of an interrupted attempt that a resumed run
    repeats, or of an earlier run in the folder) and any line cut short by a crash."""

    def __init__(self, json_file: str):
        directory = os.path.dirname(os.path.abspath(json_file))
        os.makedirs(directory, exist_ok=True)
        self._json_file = json_file
        self._file_handle = None

    def _open(self, start_iteration: int) -> None:
        kept = []
        if os.path.isfile(self._json_file):
            with open(self._json_file) as f:
                for line in f:
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    if record["iteration"] < start_iteration:
                        kept.append(line if line.endswith("\n") else line + "\n")
        atomic_write_text(self._json_file, "".join(kept))
        self._file_handle = open(self._json_file, "a")

    def write(self) -> None:
        records = get_event_storage().pop_step_losses()
        if not records:
            return
        if self._file_handle is None:
            self._open(records[0]["iteration"])
        for record in records:
            self._file_handle.write(json.dumps(record, sort_keys=True) + "\n")
        self._file_handle.flush()
        os.fsync(self._file_handle.fileno())

    def close(self) -> None:
        if self._file_handle is not None:
            self._file_handle.close()
