"""Hook-driven training loop (FastReID/detectron2 ``engine/train_loop.py``) on MindSpore.

:class:`TrainerBase` runs ``for epoch: for iters_per_epoch: before_step, run_step, after_step`` inside an
:class:`~fastreid_ms.utils.events.EventStorage`, calling the registered hooks in order. :class:`SimpleTrainer`
implements the ordinary FastReID step (one loader, one optimizer) with the model's compiled training pass
(:class:`~fastreid_ms.modeling.passes.TrainPass`); its :meth:`SimpleTrainer.run_optimizer_step` is the one step body
(fetch the data, compute losses and gradients, record the metrics, update) that the ACL-DGReID meta-learning
trainer reuses for its basic and meta steps.
"""
import logging
import signal
import time
import weakref
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import mindspore
import numpy as np
from mindspore import amp, ops

from fastreid_ms.modeling.passes import TrainPass
from fastreid_ms.solver.optim import StickyGradMask
from fastreid_ms.utils import comm
from fastreid_ms.utils.events import EventStorage, get_event_storage
from fastreid_ms.utils.params import assign_values

__all__ = ["HookBase", "TrainerBase", "SimpleTrainer", "AMPTrainer", "DynamicGradScaler", "LossPass", "TrainingPreempted",
           "loader_state", "load_loader_state"]

logger = logging.getLogger(__name__)

#: One forward pass of a training step: its phase and loss dict (name -> scalar Tensor).
LossPass = Tuple[str, Dict[str, object]]


class HookBase:
    """A hook called by :class:`TrainerBase` around training, epochs and steps::

        hook.before_train()
        for epoch in range(start_epoch, max_epoch):
            hook.before_epoch()
            for _ in range(iters_per_epoch):
                hook.before_step(); trainer.run_step(); hook.after_step()
            hook.after_epoch()
        hook.after_train()

    ``self.trainer`` is a weak proxy of the trainer, set by :meth:`TrainerBase.register_hooks`. In ``after_step``
    ``trainer.iter`` is the iteration just run; in ``after_epoch`` it was already advanced past the epoch.
    """

    trainer = None

    def before_train(self):
        pass

    def after_train(self):
        pass

    def before_epoch(self):
        pass

    def after_epoch(self):
        pass

    def before_step(self):
        pass

    def after_step(self):
        pass


class TrainingPreempted(Exception):
    """Training stopped on a signal (SIGTERM / SIGINT) after a complete step, with a checkpoint to resume from."""

    def __init__(self, signum: int, iteration: int, checkpoint: str):
        name = signal.Signals(signum).name
        where = f"checkpoint {checkpoint} written" if checkpoint else "no checkpoint written (not the main process)"
        super().__init__(f"stopped by {name} before iteration {iteration}; {where}; continue with --resume")
        self.signum, self.iteration, self.checkpoint = signum, iteration, checkpoint
        self.exit_code = 128 + signum


class TrainerBase:
    """Epoch/iteration loop with hooks.

    Attributes: ``iter`` (global iteration, continuing across epochs), ``epoch``, ``start_iter``, ``max_epoch``,
    ``iters_per_epoch``, ``max_iter``, ``storage`` (the EventStorage open during :meth:`train`), and the values the
    standard hooks read: ``warmup_iters`` and ``delay_epochs`` (LRScheduler hook, 0 by default), ``grad_scaler``
    (None unless mixed precision), ``cfg`` (PeriodicCheckpointer: ``DATASETS.TESTS`` names the eval metric);
    ``stop_request``: an exception a hook sets to end training after the current step (or epoch end) once all
    hooks have run.
    """

    grad_scaler = None
    warmup_iters = 0
    delay_epochs = 0
    stop_request = None

    def __init__(self):
        self._hooks: List[HookBase] = []
        self.iter = 0
        self.start_iter = 0
        self.epoch = 0
        self.max_epoch = 0
        self.iters_per_epoch = 0
        self.max_iter = 0

    def register_hooks(self, hooks: Sequence[Optional[HookBase]]) -> None:
        """Append hooks (None entries are skipped); they run in registration order."""
        hooks = [h for h in hooks if h is not None]
        for h in hooks:
            if not isinstance(h, HookBase):
                raise TypeError(f"register_hooks: {type(h).__name__} is not a HookBase")
            # a weak proxy: hooks and trainer must not own each other
            h.trainer = weakref.proxy(self)
        self._hooks.extend(hooks)

    def train(self, start_epoch: int, max_epoch: int, iters_per_epoch: int, start_iter: Optional[int] = None) -> None:
        """Run epochs ``start_epoch .. max_epoch - 1`` of ``iters_per_epoch`` steps; ``iter`` starts at
        ``start_epoch * iters_per_epoch``, or at ``start_iter`` (a run stopped within an epoch continues there: the
        first epoch runs its remaining steps). The hooks' ``after_train`` runs also when training stops on an
        error; that error is the one raised (an ``after_train`` failure meanwhile is logged)."""
        if start_iter is None:
            start_iter = start_epoch * iters_per_epoch
        start_epoch = start_iter // iters_per_epoch
        logger.info("Starting training from epoch {}, iteration {}".format(start_epoch, start_iter))
        self.max_epoch = max_epoch
        self.iters_per_epoch = iters_per_epoch
        self.max_iter = max_epoch * iters_per_epoch
        self.iter = self.start_iter = start_iter
        with EventStorage(self.start_iter) as self.storage:
            try:
                self.before_train()
                for self.epoch in range(start_epoch, max_epoch):
                    self.before_epoch()
                    for _ in range(self.iter - self.epoch * iters_per_epoch, iters_per_epoch):
                        self.before_step()
                        self.run_step()
                        self.after_step()
                        self.iter += 1
                    self.after_epoch()
            except BaseException as error:
                if not isinstance(error, TrainingPreempted):
                    logger.exception("Exception during training:")
                try:
                    self.after_train()
                except Exception:  # noqa: BLE001 - the training error above is the one to report
                    logger.exception("after_train failed while the run was stopping on the error above:")
                raise
            self.after_train()

    def before_train(self):
        for h in self._hooks:
            h.before_train()

    def after_train(self):
        self.storage.iter = self.iter
        for h in self._hooks:
            h.after_train()

    def before_epoch(self):
        self.storage.epoch = self.epoch
        for h in self._hooks:
            h.before_epoch()

    def before_step(self):
        # storage.iter == trainer.iter for the whole step
        self.storage.iter = self.iter
        for h in self._hooks:
            h.before_step()

    def after_step(self):
        for h in self._hooks:
            h.after_step()
        self._raise_stop_request()

    def after_epoch(self):
        # as FastReID: epoch-end scalars (evaluation results) are recorded at the next iteration number
        self.storage.iter = self.iter
        for h in self._hooks:
            h.after_epoch()
        self._raise_stop_request()

    def _raise_stop_request(self):
        """A hook's ``trainer.stop_request`` (an exception, e.g. TrainingPreempted) ends training once every hook
        has seen the step or epoch."""
        if self.stop_request is not None:
            request, self.stop_request = self.stop_request, None
            raise request

    def run_step(self):
        raise NotImplementedError


class SimpleTrainer(TrainerBase):
    """One loader, one optimizer: ``batch = next(loader)``, losses and gradients of the model's training pass
    (compiled unless ``compile=False``), metrics with a NaN/inf check, ``optimizer.step(grads, mask)``.

    The model must be trainable by :class:`~fastreid_ms.modeling.passes.TrainPass` (``model(images, targets,
    domainids, phase)`` returning the loss dict in training mode); the optimized loss is the sum of the dict's values.
    A parameter whose gradient is exactly zero (one the losses do not reach) is left untouched by the optimizer, as
    PyTorch leaves a parameter with ``.grad`` None; with ``zero_grad_keeps_tensors`` (PyTorch 1.x ``zero_grad``) a
    parameter keeps being updated once it has had a gradient. ``dp_replicas`` (``SOLVER.DP_REPLICAS``) reproduces
    ``torch.nn.DataParallel`` over that many devices, shared out over the processes of a data-parallel run (every
    process reads the same whole batches; see TrainPass).
    """

    def __init__(self, model, data_loader, optimizer, *, compile: bool = True, dp_replicas: int = 1,
                 zero_grad_keeps_tensors: bool = False):
        super().__init__()
        model.set_train(True)
        self.model = model
        self.data_loader = data_loader
        self._data_loader_iter = iter(data_loader)
        self.optimizer = optimizer
        self.train_pass = TrainPass(model, optimizer.parameters, compile=compile, replicas=dp_replicas,
                                    world_size=comm.get_world_size(), rank=comm.get_rank())
        self.grad_mask = StickyGradMask(len(optimizer.parameters), keeps_tensors=zero_grad_keeps_tensors)

    @property
    def weights(self) -> List:
        """The Parameters gradients are taken for: the optimizer's own (the model's real Parameters)."""
        return self.optimizer.parameters

    def run_step(self):
        if not self.model.training:
            raise RuntimeError(f"[{type(self).__name__}] model was changed to eval mode!")
        self.run_optimizer_step(self.next_batch, self.basic_passes, self.optimizer.step)

    def next_batch(self):
        return next(self._data_loader_iter)

    def basic_passes(self, batch) -> Tuple[List[LossPass], Tuple]:
        """The ordinary step's pass: ``([("basic", losses)], grads)``."""
        losses, grads = self.train_pass(batch, "basic")
        return [("basic", losses)], grads

    def run_optimizer_step(self, fetch: Callable, compute: Callable, apply: Callable):
        """The training step: ``data = fetch()`` (timed as data_time), ``passes, grads = compute(data)``, the
        metrics of the passes, then ``apply(grads, sticky=...)`` (an optimizer's ``step``, which skips parameters
        whose gradient is all zero unless :attr:`grad_mask` remembers them). Returns ``(passes, grads)``."""
        start = time.perf_counter()
        data = fetch()
        data_time = time.perf_counter() - start
        passes, grads = compute(data)
        self._write_metrics(passes, data_time)
        self.grad_mask.record(apply(grads, sticky=self.grad_mask.sticky()))
        return passes, grads

    def state_dict(self) -> Dict[str, object]:
        """What resuming needs besides model, optimizers and schedulers: which parameters have had a gradient
        (PyTorch 1.x ``zero_grad`` memory) and the data loader's position."""
        return {"grad_ever": [p.name for p, had in zip(self.weights, self.grad_mask.ever()) if had],
                "loader": loader_state(self.data_loader)}

    def load_state_dict(self, state: Dict[str, object]) -> None:
        ever = set(state.get("grad_ever", ()))
        self.grad_mask.reset([p.name in ever for p in self.weights])
        load_loader_state(self.data_loader, state.get("loader"))
        self._data_loader_iter = iter(self.data_loader)

    def _write_metrics(self, passes: Sequence[LossPass], data_time: float) -> None:
        """Record every pass's losses unsmoothed (``storage.put_step_losses``), and put ``total_loss``, every loss
        (if more than one; a name repeated by a later pass gets the suffix ``_<phase>``) and ``data_time`` into the
        storage; raise FloatingPointError naming the iteration and the losses when the total is NaN or infinite.

        One host read of all losses; they are averaged over processes (one all-reduce); data_time is this
        process's.
        """
        values = ops.stack([v for _, losses in passes for v in losses.values()]).asnumpy().astype(np.float64)
        world = comm.get_world_size()
        if world > 1:
            values = comm.all_reduce_sum(values.astype(np.float32)).astype(np.float64) / world
        if not comm.is_main_process():
            return
        storage = get_event_storage()
        metrics, offset = {}, 0
        for phase, losses in passes:
            pass_values = dict(zip(losses, values[offset:offset + len(losses)]))
            offset += len(losses)
            storage.put_step_losses(phase, pass_values)
            for k, v in pass_values.items():
                metrics[k if k not in metrics else f"{k}_{phase}"] = float(v)
        storage.put_scalar("data_time", data_time)
        total = sum(metrics.values())
        if not np.isfinite(total):
            raise FloatingPointError(f"Loss became infinite or NaN at iteration={self.iter}!\nloss_dict = {metrics}")
        storage.put_scalar("total_loss", total)
        if len(metrics) > 1:
            storage.put_scalars(**metrics)


def loader_state(loader):
    """A data loader's position (``loader.state_dict()``), None for a loader that cannot resume."""
    return loader.state_dict() if hasattr(loader, "state_dict") else None


def load_loader_state(loader, state) -> None:
    """Restore :func:`loader_state` output (nothing for None or a loader that cannot resume)."""
    if state is not None and hasattr(loader, "load_state_dict"):
        loader.load_state_dict(state)


class DynamicGradScaler:
    """Dynamic loss scaling for mixed precision (``torch.cuda.amp.GradScaler`` semantics) over
    ``mindspore.amp.DynamicLossScaler``.

    The loss is multiplied by :meth:`get_scale` before differentiation; :meth:`step` unscales the gradients and
    applies the optimizer only if all of them are finite, then :meth:`update`-s the scale (divided by
    ``backoff``=``growth_factor`` after an overflow, multiplied by ``growth_factor`` after ``growth_interval``
    finite steps in a row).
    """

    def __init__(self, init_scale: float = 2.0 ** 16, growth_factor: int = 2, growth_interval: int = 2000):
        self._scaler = amp.DynamicLossScaler(float(init_scale), int(growth_factor), int(growth_interval))
        self._finite = None

    def get_scale(self) -> float:
        return float(self._scaler.scale_value.asnumpy())

    @property
    def scale_tensor(self):
        return self._scaler.scale_value

    def step(self, optimizer, grads: Sequence, sticky=None):
        """Unscale ``grads`` and step ``optimizer`` if they are all finite; returns the optimizer step's gradient
        presence, or None when it skipped the step."""
        finite = amp.all_finite(tuple(grads))
        self._finite = finite
        if not bool(finite.asnumpy()):
            return None
        return optimizer.step(self._scaler.unscale(tuple(grads)), sticky=sticky)

    def update(self) -> None:
        """Adjust the scale from the finiteness seen by the last :meth:`step`."""
        if self._finite is not None:
            self._scaler.adjust(self._finite)
            self._finite = None

    def state_dict(self) -> Dict[str, float]:
        return {"scale": self.get_scale(), "counter": int(self._scaler.counter.asnumpy())}

    def load_state_dict(self, state: Dict[str, float]) -> None:
        assign_values([self._scaler.scale_value, self._scaler.counter],
                      [np.float32(state["scale"]), np.int32(state["counter"])])


class AMPTrainer(SimpleTrainer):
    """:class:`SimpleTrainer` with MindSpore mixed precision (``mindspore.amp.auto_mixed_precision``, level
    ``amp_level``) and dynamic loss scaling (:class:`DynamicGradScaler`). GPU/Ascend only: MindSpore's CPU backend
    gains nothing from float16, so construction on CPU raises."""

    def __init__(self, model, data_loader, optimizer, grad_scaler: Optional["DynamicGradScaler"] = None,
                 amp_level: str = "O1", **kwargs):
        target = mindspore.get_context("device_target")
        if target not in ("GPU", "Ascend"):
            raise RuntimeError(f"AMPTrainer (SOLVER.AMP.ENABLED=True) needs a GPU or Ascend device, but MindSpore's "
                               f"device target is {target}: the CPU backend has no float16 speed-up. Set "
                               f"SOLVER.AMP.ENABLED False, or MODEL.DEVICE gpu/ascend.")
        model = amp.auto_mixed_precision(model, amp_level)
        super().__init__(model, data_loader, optimizer, **kwargs)
        self.grad_scaler = grad_scaler if grad_scaler is not None else DynamicGradScaler()
        self.train_pass.loss_scale = self.grad_scaler.scale_tensor

    def run_step(self):
        if not self.model.training:
            raise RuntimeError("[AMPTrainer] model was changed to eval mode!")
        self.run_optimizer_step(self.next_batch, self.basic_passes, self._scaled_step)

    def _scaled_step(self, grads, sticky=None):
        present = self.grad_scaler.step(self.optimizer, grads, sticky)
        self.grad_scaler.update()
        return present
