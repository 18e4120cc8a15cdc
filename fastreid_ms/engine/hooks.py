"""Standard training hooks (FastReID/ACL-DGReID ``engine/hooks.py``) for :class:`~.train_loop.TrainerBase`.

DefaultTrainer registers, in this order: IterationTimer, LRScheduler (one per optimizer), [PreciseBN],
[LayerFreeze], EvalHook, PeriodicCheckpointer, PeriodicWriter, TrainingCurves, Preemption.
"""
import datetime
import itertools
import logging
import os
import signal
import threading
import time
from collections import Counter
from typing import Callable, Dict, Optional, Sequence

import numpy as np
from mindspore import Tensor, ops

from fastreid_ms.modeling.passes import batch_arrays
from fastreid_ms.solver.lr_scheduler import MultiStepLR
from fastreid_ms.utils import comm
from fastreid_ms.utils.periodic_checkpointer import PeriodicCheckpointer as _PeriodicCheckpointer
from fastreid_ms.utils.curves import load_curves, save_training_curves
from fastreid_ms.utils.events import EventStorage, EventWriter, flatten_results_dict, get_event_storage
from fastreid_ms.utils.params import assign_values
from .train_loop import HookBase, TrainingPreempted

__all__ = ["CallbackHook", "IterationTimer", "PeriodicWriter", "PeriodicCheckpointer", "LRScheduler", "EvalHook",
           "TrainingCurves", "Preemption",
           "PreciseBN", "LayerFreeze", "get_bn_cells", "update_bn_stats"]

logger = logging.getLogger(__name__)


class CallbackHook(HookBase):
    """A hook from callables, each taking the trainer."""

    def __init__(self, *, before_train=None, after_train=None, before_epoch=None, after_epoch=None,
                 before_step=None, after_step=None):
        self._before_train = before_train
        self._after_train = after_train
        self._before_epoch = before_epoch
        self._after_epoch = after_epoch
        self._before_step = before_step
        self._after_step = after_step

    def before_train(self):
        if self._before_train:
            self._before_train(self.trainer)

    def after_train(self):
        if self._after_train:
            self._after_train(self.trainer)
        # the callables may be closures holding the trainer
        self._before_train = self._after_train = self._before_step = self._after_step = None
        self._before_epoch = self._after_epoch = None

    def before_epoch(self):
        if self._before_epoch:
            self._before_epoch(self.trainer)

    def after_epoch(self):
        if self._after_epoch:
            self._after_epoch(self.trainer)

    def before_step(self):
        if self._before_step:
            self._before_step(self.trainer)

    def after_step(self):
        if self._after_step:
            self._after_step(self.trainer)


class _Timer:
    def __init__(self):
        self.reset()

    def reset(self):
        self._start = time.perf_counter()
        self._paused: Optional[float] = None
        self._total_paused = 0.0

    def pause(self):
        if self._paused is None:
            self._paused = time.perf_counter()

    def resume(self):
        if self._paused is not None:
            self._total_paused += time.perf_counter() - self._paused
            self._paused = None

    def seconds(self) -> float:
        end = self._paused if self._paused is not None else time.perf_counter()
        return end - self._start - self._total_paused


class IterationTimer(HookBase):
    """Put the duration of every ``run_step`` (``time``) after ``warmup_iter`` steps; log the overall speed at the
    end. Register it first so that its ``before_step``/``after_step`` bracket the step closely."""

    def __init__(self, warmup_iter: int = 3):
        self._warmup_iter = warmup_iter
        self._step_timer = _Timer()
        self._start_time = time.perf_counter()
        self._total_timer = _Timer()

    def before_train(self):
        self._start_time = time.perf_counter()
        self._total_timer.reset()
        self._total_timer.pause()

    def after_train(self):
        total_time = time.perf_counter() - self._start_time
        total_time_minus_hooks = self._total_timer.seconds()
        hook_time = total_time - total_time_minus_hooks
        num_iter = self.trainer.iter + 1 - self.trainer.start_iter - self._warmup_iter
        if num_iter > 0 and total_time_minus_hooks > 0:
            logger.info("Overall training speed: {} iterations in {} ({:.4f} s / it)".format(
                num_iter, str(datetime.timedelta(seconds=int(total_time_minus_hooks))),
                total_time_minus_hooks / num_iter))
        logger.info("Total training time: {} ({} on hooks)".format(
            str(datetime.timedelta(seconds=int(total_time))), str(datetime.timedelta(seconds=int(hook_time)))))

    def before_step(self):
        self._step_timer.reset()
        self._total_timer.resume()

    def after_step(self):
        iter_done = self.trainer.iter - self.trainer.start_iter + 1
        if iter_done >= self._warmup_iter:
            self.trainer.storage.put_scalars(time=self._step_timer.seconds())
        else:
            self._start_time = time.perf_counter()
            self._total_timer.reset()
        self._total_timer.pause()


class PeriodicWriter(HookBase):
    """Call every writer each ``period`` iterations, after the last iteration and after every epoch; close them
    after training."""

    def __init__(self, writers: Sequence[EventWriter], period: int = 20):
        for w in writers:
            if not isinstance(w, EventWriter):
                raise TypeError(f"PeriodicWriter: {type(w).__name__} is not an EventWriter")
        self._writers = list(writers)
        self._period = period

    def after_step(self):
        if (self.trainer.iter + 1) % self._period == 0 or self.trainer.iter == self.trainer.max_iter - 1:
            for writer in self._writers:
                writer.write()

    def after_epoch(self):
        for writer in self._writers:
            writer.write()

    def after_train(self):
        for writer in self._writers:
            writer.close()


class PeriodicCheckpointer(_PeriodicCheckpointer, HookBase):
    """The checkpoint schedule of :class:`fastreid_ms.utils.checkpoint.PeriodicCheckpointer` run after each epoch,
    with ``metric`` = the latest ``metric`` scalar of the storage (``<first test set>/metric`` when
    ``trainer.cfg.DATASETS.TESTS`` names several sets), -1 before the first evaluation."""

    def before_train(self):
        self.max_epoch = self.trainer.max_epoch
        cfg = getattr(self.trainer, "cfg", None)
        tests = list(cfg.DATASETS.TESTS) if cfg is not None else []
        self.metric_name = "metric" if len(tests) <= 1 else f"{tests[0]}/metric"

    def after_epoch(self):
        latest = get_event_storage().latest()
        metric = latest[self.metric_name][0] if self.metric_name in latest else -1
        self.step(self.trainer.epoch, metric=metric, iteration=self.trainer.iter)


class Preemption(HookBase):
    """Stop cleanly on SIGTERM / SIGINT (cluster preemption, Ctrl-C): the step running when the signal arrives is
    finished (at the last step of an epoch: the epoch's evaluation and checkpoints too), then ``model_preempted``
    is saved with everything ``--resume`` needs to continue at the next iteration exactly, and
    :class:`~.train_loop.TrainingPreempted` (as ``trainer.stop_request``, after the other hooks) ends the run
    (the tools exit with code 128 + signal number). A second SIGINT interrupts at once (``KeyboardInterrupt``). With several processes the stop is agreed on after every
    step (a one-number all-reduce), so all stop at the same iteration; only the main process writes. The previous
    handlers are restored after training. ``checkpointer`` is the trainer's Checkpointer; ``periodic`` (main
    process) supplies the best metric to keep in the file.

    MindSpore installs its own SIGINT handler, which sends the process SIGTERM, whenever it runs a compiled graph;
    the handlers are installed again before and after every step, so a SIGINT between graphs (data loading, hooks)
    is a SIGINT, and one that arrives while a graph runs counts as SIGTERM: the same clean stop, exit code 143, and
    no immediate interrupt on a second Ctrl-C."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, checkpointer, periodic: Optional[PeriodicCheckpointer] = None):
        self.checkpointer = checkpointer
        self.periodic = periodic
        self.signum = 0
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        logger.warning("Received %s: stopping after the current step with a checkpoint", signal.Signals(signum).name)

    def before_train(self):
        self.signum = 0
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}

    def _reinstall(self):
        for s in self._previous:
            signal.signal(s, self._handle)

    def before_step(self):
        self._reinstall()

    def after_train(self):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def _requested(self) -> int:
        if comm.get_world_size() > 1:
            return int(comm.all_reduce_sum(np.array([self.signum], dtype=np.float32))[0])
        return self.signum

    def after_step(self):
        self._reinstall()
        if (self.trainer.iter + 1) % self.trainer.iters_per_epoch and self._requested():
            self._stop(self.trainer.iter + 1)

    def after_epoch(self):
        if self.trainer.epoch + 1 < self.trainer.max_epoch and self._requested():
            self._stop(self.trainer.iter)

    def _stop(self, iteration: int):
        signum = self.signum or signal.SIGTERM
        extra = {"epoch": self.trainer.epoch, "iteration": iteration, "metric": -1}
        if self.periodic is not None:
            extra.update(best_metric=self.periodic.best_metric, best_epoch=self.periodic.best_epoch)
        path = self.checkpointer.save("model_preempted", **extra) if comm.is_main_process() else None
        self.trainer.stop_request = TrainingPreempted(signum, iteration, path or "")


class LRScheduler(HookBase):
    """Step a ``{"lr_sched", "warmup_sched"}`` scheduler dict (``fastreid_ms.solver.build_lr_scheduler``) like the
    reference hook, and put the lr of the most common initial lr's first group as scalar ``lr``.

    ``after_step``: put ``lr`` (the value used by this step), then step the warm-up while ``iter + 1 <=
    trainer.warmup_iters`` (with mixed precision only if the loss scale did not change in this step).
    ``after_epoch`` (``iter`` already advanced): a MultiStepLR steps whenever ``epoch + 1 > trainer.delay_epochs``
    (ACL-DGReID's special case, so its epoch count stays aligned even during the warm-up); any other scheduler
    only once ``iter + 1 > trainer.warmup_iters`` as well.
    """

    def __init__(self, optimizer, scheduler: Dict):
        self._optimizer = optimizer
        self._scheduler = scheduler
        self._scale = 0.0
        groups = optimizer.param_groups
        largest_group = max(len(g["params"]) for g in groups)
        if largest_group == 1:
            lr = Counter([g["lr"] for g in groups]).most_common()[0][0]
            self._best_param_group_id = next(i for i, g in enumerate(groups) if g["lr"] == lr)
        else:
            self._best_param_group_id = next(i for i, g in enumerate(groups) if len(g["params"]) == largest_group)

    def before_step(self):
        if self.trainer.grad_scaler is not None:
            self._scale = self.trainer.grad_scaler.get_scale()

    def after_step(self):
        lr = self._optimizer.param_groups[self._best_param_group_id]["lr"]
        self.trainer.storage.put_scalar("lr", lr, smoothing_hint=False)
        next_iter = self.trainer.iter + 1
        if next_iter <= self.trainer.warmup_iters and "warmup_sched" in self._scheduler:
            scaler = self.trainer.grad_scaler
            if scaler is None or self._scale == scaler.get_scale():
                self._scheduler["warmup_sched"].step()

    def after_epoch(self):
        next_iter = self.trainer.iter + 1
        next_epoch = self.trainer.epoch + 1
        sched = self._scheduler["lr_sched"]
        if isinstance(sched, MultiStepLR):
            if next_epoch > self.trainer.delay_epochs:
                sched.step()
        elif next_iter > self.trainer.warmup_iters and next_epoch > self.trainer.delay_epochs:
            sched.step()


class EvalHook(HookBase):
    """Run ``eval_function()`` after every ``eval_period``-th epoch and after training when the last epoch was not
    one; its (nested) dict of numbers is flattened (``"<dataset>/<metric>"``) into the storage (no smoothing)."""

    def __init__(self, eval_period: int, eval_function: Callable[[], Optional[Dict]]):
        self._period = eval_period
        self._func = eval_function

    def _do_eval(self):
        results = self._func()
        if results:
            if not isinstance(results, dict):
                raise TypeError(f"EvalHook: the eval function must return a dict, got {type(results).__name__}")
            flattened = flatten_results_dict(results)
            for k, v in flattened.items():
                try:
                    float(v)
                except (TypeError, ValueError):
                    raise ValueError(f"[EvalHook] eval_function should return a nested dict of float. Got "
                                     f"'{k}: {v}' instead.") from None
            self.trainer.storage.put_scalars(**flattened, smoothing_hint=False)
        # evaluation time differs between processes: start the next epoch together
        comm.synchronize()

    def after_epoch(self):
        next_epoch = self.trainer.epoch + 1
        if self._period > 0 and next_epoch % self._period == 0:
            self._do_eval()

    def after_train(self):
        next_epoch = self.trainer.epoch + 1
        # only after a complete training (not after an exception or a preemption) and if the last epoch had no
        # evaluation
        if self._period > 0 and next_epoch % self._period != 0 and self.trainer.iter >= self.trainer.max_iter:
            self._do_eval()
        self._func = None


class TrainingCurves(HookBase):
    """Redraw ``output_dir/training_curves.png`` (:func:`fastreid_ms.utils.curves.save_training_curves`: every
    loss, ``lr``, the evaluation metrics, basic and meta step totals) after every ``period``-th epoch (the
    evaluation epochs) and at the end of training, once ``metrics.json`` holds a series. Register it after the
    writers, so that the files it reads hold the epoch's records."""

    def __init__(self, output_dir: str, period: int):
        self.output_dir = output_dir
        self.period = int(period)

    def _draw(self):
        if os.path.isfile(os.path.join(self.output_dir, "metrics.json")) and load_curves(self.output_dir):
            save_training_curves(self.output_dir)

    def after_epoch(self):
        if self.period > 0 and (self.trainer.epoch + 1) % self.period == 0:
            self._draw()

    def after_train(self):
        self._draw()


def get_bn_cells(model) -> list:
    """The batch-norm cells of ``model`` in training mode: cells with ``running_mean``/``running_var`` and a
    (PyTorch-convention) ``momentum`` attribute (fastreid_ms's BatchNorm and its subclasses)."""
    return [cell for _, cell in model.cells_and_names()
            if cell.training and hasattr(cell, "running_mean") and hasattr(cell, "running_var")
            and hasattr(cell, "momentum")]


def basic_forward(model, batch) -> None:
    """One op-by-op (PyNative) training forward of a batch dict in phase 'basic' (batch statistics, running
    statistics updated). Not compiled: :func:`update_bn_stats` changes the norms' momentum between passes."""
    meta = bool(getattr(model, "is_meta", False))
    arrays = batch_arrays(batch, num_channels=int(getattr(model, "num_channels", 3)), domains=meta)
    domainids = Tensor(arrays["domainids"]) if meta else None
    model(Tensor(arrays["images"]), Tensor(arrays["targets"]), domainids, "basic", True)


def update_bn_stats(model, batches, num_iters: int, forward: Optional[Callable] = None) -> None:
    """Precise BN (FastReID ``utils/precision_bn.py``): set every training-mode BN cell's running mean/variance to
    the average of the batch statistics of ``num_iters`` batches (momentum 1 during the passes, restored after).

    ``forward(model, batch)`` runs one pass that updates running statistics (default :func:`basic_forward`).
    """
    bn_cells = get_bn_cells(model)
    if not bn_cells:
        return
    forward = forward or basic_forward
    momenta = [bn.momentum for bn in bn_cells]
    for bn in bn_cells:
        bn.momentum = 1.0
    means = [ops.zeros_like(bn.running_mean) for bn in bn_cells]
    variances = [ops.zeros_like(bn.running_var) for bn in bn_cells]
    count = 0
    try:
        for ind, batch in enumerate(itertools.islice(batches, num_iters)):
            forward(model, batch)
            for i, bn in enumerate(bn_cells):
                means[i] = means[i] + (bn.running_mean - means[i]) / (ind + 1)
                variances[i] = variances[i] + (bn.running_var - variances[i]) / (ind + 1)
            count = ind + 1
        if count != num_iters:
            raise ValueError(f"update_bn_stats: the data loader ran out after {count} of {num_iters} batches")
        assign_values([bn.running_mean for bn in bn_cells] + [bn.running_var for bn in bn_cells], means + variances)
    finally:
        for bn, m in zip(bn_cells, momenta):
            bn.momentum = m


class PreciseBN(HookBase):
    """Recompute BN running statistics over ``num_iter`` batches of ``data_loader`` after the final epoch
    (FastReID ``TEST.PRECISE_BN``); scalars put meanwhile go to a throw-away storage."""

    def __init__(self, model, data_loader, num_iter: int, forward: Optional[Callable] = None):
        self._model = model
        self._data_loader = data_loader
        self._num_iter = num_iter
        self._forward = forward
        self._data_iter = None
        self._disabled = not get_bn_cells(model)
        if self._disabled:
            logger.info("PreciseBN is disabled because model does not contain BN layers in training mode.")

    def after_epoch(self):
        if self.trainer.epoch + 1 == self.trainer.max_epoch:
            self.update_stats()

    def update_stats(self):
        if self._disabled:
            return
        if self._data_iter is None:
            self._data_iter = iter(self._data_loader)

        def batches():
            for num_iter in itertools.count(1):
                if num_iter % 100 == 0:
                    logger.info("Running precise-BN ... {}/{} iterations.".format(num_iter, self._num_iter))
                yield next(self._data_iter)

        with EventStorage():
            logger.info("Running precise-BN for {} iterations...  Note that this could produce different "
                        "statistics every time.".format(self._num_iter))
            update_bn_stats(self._model, batches(), self._num_iter, self._forward)


class LayerFreeze(HookBase):
    """``MODEL.FREEZE_LAYERS`` / ``SOLVER.FREEZE_ITERS``: while ``iter < freeze_iters`` the named top-level child
    cells are in eval mode (BN statistics frozen; their gradients are dropped by the optimizer's freeze wrapper),
    then training mode is restored."""

    def __init__(self, model, freeze_layers: Sequence[str], freeze_iters: int):
        self.model = model
        self.freeze_layers = list(freeze_layers)
        self.freeze_iters = freeze_iters
        self.is_frozen = False

    def before_step(self):
        if self.trainer.iter < self.freeze_iters and not self.is_frozen:
            self.freeze_specific_layer()
        if self.trainer.iter >= self.freeze_iters and self.is_frozen:
            self.open_all_layer()

    def freeze_specific_layer(self):
        children = self.model.name_cells()
        for layer in self.freeze_layers:
            if layer not in children:
                logger.info(f"{layer} is not an attribute of the model, will skip this layer")
        for name, cell in children.items():
            if name in self.freeze_layers:
                cell.set_train(False)
        self.is_frozen = True
        logger.info(f'Freeze layer group "{", ".join(self.freeze_layers)}" training for {self.freeze_iters:d} '
                    f'iterations')

    def open_all_layer(self):
        for name, cell in self.model.name_cells().items():
            if name in self.freeze_layers:
                cell.set_train(True)
        self.is_frozen = False
        logger.info(f'Open layer group "{", ".join(self.freeze_layers)}" training')
