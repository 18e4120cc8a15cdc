"""The ACL-DGReID checkpoint schedule, with FastReID/detectron2's ``max_to_keep`` housekeeping."""
import logging
import os
import re
from typing import Any, Dict, Optional

from .checkpoint import Checkpointer

__all__ = ["PeriodicCheckpointer"]

logger = logging.getLogger(__name__)

_PERIODIC_NAME = re.compile(r"^model_(\d{4,})\.ckpt$")


class PeriodicCheckpointer:
    """``step(epoch, metric=...)`` after every epoch:

    * at an evaluation epoch (``(epoch + 1) % period == 0``, or the last epoch) whose ``metric`` beats the best
      so far: save ``model_best`` first (so that a crash in the saves that follow never leaves a remembered best
      without its file);
    * ``epoch + 1 > save_every_epoch_after`` (40 in the reference; negative = never): save ``model_{epoch:04d}``;
    * ``(epoch + 1) % period == 0`` and not the last epoch: save ``model_{epoch:04d}`` (again, so
      ``last_checkpoint`` names it);
    * last epoch (``epoch >= max_epoch - 1``): save ``model_final``.

    ``max_to_keep`` (``SOLVER.CHECKPOINT_KEEP``; 0 = keep all, the reference's behaviour): after each periodic
    save only the newest ``max_to_keep`` ``model_NNNN.ckpt`` files of the folder are kept (older ones, also those of
    an earlier run that was resumed, are deleted once the new file is complete); ``model_best``, ``model_final`` and
    any other name are never deleted.

    Every file holds ``epoch``, ``metric``, ``best_metric`` and ``best_epoch`` as extra data; :meth:`restore` takes
    the best back from a resumed checkpoint's extra data, so that the first evaluation after ``--resume`` only
    replaces ``model_best`` when it is better (the reference forgets it and overwrites it).
    """

    def __init__(self, checkpointer: Checkpointer, period: int, max_epoch: Optional[int] = None,
                 save_every_epoch_after: int = 40, max_to_keep: int = 0):
        if int(max_to_keep) < 0:
            raise ValueError(f"SOLVER.CHECKPOINT_KEEP must be >= 0 (0 keeps every checkpoint), got {max_to_keep}")
        self.checkpointer = checkpointer
        self.period = int(period)
        self.max_epoch = max_epoch
        self.save_every_epoch_after = int(save_every_epoch_after)
        self.max_to_keep = int(max_to_keep)
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
        every_epoch = 0 <= self.save_every_epoch_after < epoch + 1
        if every_epoch:
            self.checkpointer.save("model_{:04d}".format(epoch), **state)
        if periodic:
            self.checkpointer.save("model_{:04d}".format(epoch), **state)
        if every_epoch or periodic:
            self._remove_old_periodic()
        if last:
            self.checkpointer.save("model_final", **state)

    def save(self, name: str, **kwargs: Any) -> None:
        self.checkpointer.save(name, **kwargs)

    def _remove_old_periodic(self) -> None:
        if self.max_to_keep == 0:
            return
        save_dir = self.checkpointer.save_dir
        if not save_dir or not os.path.isdir(save_dir):
            return
        periodic = sorted((int(m.group(1)), name) for name in os.listdir(save_dir)
                          for m in [_PERIODIC_NAME.match(name)] if m)
        last = os.path.basename(self.checkpointer.get_checkpoint_file())
        for _, name in periodic[:-self.max_to_keep]:
            if name != last:
                logger.info("Removing %s (SOLVER.CHECKPOINT_KEEP %d)", os.path.join(save_dir, name), self.max_to_keep)
                os.remove(os.path.join(save_dir, name))
