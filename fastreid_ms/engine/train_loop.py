"""Hook-driven training loop (FastReID/detectron2 ``engine/train_loop.py``) on MindSpore.

:class:`TrainerBase` runs ``for epoch: for iters_per_epoch: before_step, run_step, after_step`` inside an
:class:`~fastreid_ms.utils.events.EventStorage`, calling the registered hooks in order. :class:`SimpleTrainer`
implements the ordinary FastReID step (one loader, one optimizer) with ``mindspore.value_and_grad``;
:meth:`SimpleTrainer.loss_and_grads` is the reusable piece (losses and gradients of one batch for any weights and
any model ``opt``), on which the ACL-DGReID meta-learning steps are built.
"""
import logging
import time
import weakref
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from fastreid_ms.utils import comm
from fastreid_ms.utils.events import EventStorage, get_event_storage

__all__ = ["HookBase", "TrainerBase", "SimpleTrainer", "AMPTrainer", "DynamicGradScaler"]

logger = logging.getLogger(__name__)


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


class TrainerBase:
    """Epoch/iteration loop with hooks.

    Attributes: ``iter`` (global iteration, continuing across epochs), ``epoch``, ``start_iter``, ``max_epoch``,
    ``iters_per_epoch``, ``max_iter``, ``storage`` (the EventStorage open during :meth:`train`), and the values the
    standard hooks read: ``warmup_iters`` and ``delay_epochs`` (LRScheduler hook, 0 by default), ``grad_scaler``
    (None unless mixed precision), ``cfg`` (PeriodicCheckpointer: ``DATASETS.TESTS`` names the eval metric).
    """

    grad_scaler = None
    warmup_iters = 0
    delay_epochs = 0

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

    def train(self, start_epoch: int, max_epoch: int, iters_per_epoch: int) -> None:
        """Run epochs ``start_epoch .. max_epoch - 1`` of ``iters_per_epoch`` steps; ``iter`` starts at
        ``start_epoch * iters_per_epoch``."""
        logger.info("Starting training from epoch {}".format(start_epoch))
        self.max_epoch = max_epoch
        self.iters_per_epoch = iters_per_epoch
        self.max_iter = max_epoch * iters_per_epoch
        self.iter = self.start_iter = start_epoch * iters_per_epoch
        with EventStorage(self.start_iter) as self.storage:
            try:
                self.before_train()
                for self.epoch in range(start_epoch, max_epoch):
                    self.before_epoch()
                    for _ in range(iters_per_epoch):
                        self.before_step()
                        self.run_step()
                        self.after_step()
                        self.iter += 1
                    self.after_epoch()
            except Exception:
                logger.exception("Exception during training:")
                raise
            finally:
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

    def after_epoch(self):
        # as FastReID: epoch-end scalars (evaluation results) are recorded at the next iteration number
        self.storage.iter = self.iter
        for h in self._hooks:
            h.after_epoch()

    def run_step(self):
        raise NotImplementedError


def average_gradients(grads: Sequence) -> Tuple:
    """Average gradients over the data-parallel processes (one all-reduce each; identity for one process), as
    DistributedDataParallel does."""
    grads = tuple(grads)
    world = comm.get_world_size()
    if world == 1:
        return grads
    from mindspore import ops

    reduce = ops.AllReduce()
    return tuple(reduce(g) / world for g in grads)


def _loader_state(loader):
    return loader.state_dict() if hasattr(loader, "state_dict") else None


def _load_loader_state(loader, state) -> None:
    if state is not None and hasattr(loader, "load_state_dict"):
        loader.load_state_dict(state)


def _sum_losses(values):
    total = values[0]
    for v in values[1:]:
        total = total + v
    return total


class SimpleTrainer(TrainerBase):
    """One loader, one optimizer: ``batch = next(loader)``, losses and gradients with ``mindspore.value_and_grad``
    over the optimizer's real Parameters, NaN/inf check, ``optimizer.step(grads)``.

    ``model(batch)`` (or ``model(batch, opt)``) must return a dict of scalar loss Tensors in training mode; the
    optimized loss is ``sum(loss_dict.values())`` (the reference also takes ``.mean()`` of that sum over
    DataParallel replicas, the identity on one device). Every parameter of the optimizer is updated each step
    (ordinary FastReID models use all of them); use :meth:`loss_and_grads` and ``optimizer.step(grads,
    has_grad)`` directly for partial updates.
    """

    def __init__(self, model, data_loader, optimizer):
        super().__init__()
        model.set_train(True)
        self.model = model
        self.data_loader = data_loader
        self._data_loader_iter = iter(data_loader)
        self.optimizer = optimizer

    @property
    def weights(self) -> List:
        """The Parameters gradients are taken for: the optimizer's own (the model's real Parameters)."""
        return self.optimizer.parameters

    def loss_and_grads(self, batch, weights: Sequence, opt=None, loss_scale=None
                       ) -> Tuple[Dict[str, object], object, Tuple]:
        """Run ``model(batch[, opt])`` under ``mindspore.value_and_grad`` with respect to ``weights``.

        Returns ``(loss_dict, total_loss, grads)``: the model's loss Tensors (constants), their sum, and the
        gradients of that sum (times ``loss_scale`` if given, for mixed precision) aligned with ``weights``. A
        weight the losses do not depend on gets a zero gradient (MindSpore), where PyTorch would leave ``.grad``
        None.
        """
        import mindspore

        names: List[str] = []

        def forward():
            loss_dict = self.model(batch) if opt is None else self.model(batch, opt)
            if not isinstance(loss_dict, dict) or not loss_dict:
                raise TypeError(f"the model must return a non-empty dict of losses in training mode, got "
                                f"{type(loss_dict).__name__}")
            names[:] = list(loss_dict)
            values = [loss_dict[k] for k in names]
            total = _sum_losses(values)
            objective = total if loss_scale is None else total * loss_scale
            return (objective, total, *values)

        grad_fn = mindspore.value_and_grad(forward, None, list(weights), has_aux=True)
        outputs, grads = grad_fn()
        total, values = outputs[1], outputs[2:]
        return dict(zip(names, values)), total, average_gradients(grads)

    def state_dict(self) -> Dict[str, object]:
        """The data loader's position (what an exact resume needs besides model, optimizer and schedulers)."""
        return {"loader": _loader_state(self.data_loader)}

    def load_state_dict(self, state: Dict[str, object]) -> None:
        _load_loader_state(self.data_loader, state.get("loader"))
        self._data_loader_iter = iter(self.data_loader)

    def run_step(self):
        if not self.model.training:
            raise RuntimeError("[SimpleTrainer] model was changed to eval mode!")
        start = time.perf_counter()
        batch = next(self._data_loader_iter)
        data_time = time.perf_counter() - start
        loss_dict, _, grads = self.loss_and_grads(batch, self.weights)
        self._write_metrics(loss_dict, data_time)
        self.optimizer.step(grads)

    def _write_metrics(self, loss_dict: Dict[str, object], data_time: float, passes=None) -> None:
        """Put ``total_loss``, every loss (if more than one) and ``data_time`` into the storage, and record each
        forward pass's losses unsmoothed (``storage.put_step_losses``); raise FloatingPointError naming the
        iteration and the losses when the total is NaN or infinite.

        ``passes`` lists ``(phase, loss_dict)`` of the forward passes of this step (default: one pass "train" with
        ``loss_dict``). Losses are averaged over processes (one all-reduce); data_time is this process's.
        """
        from mindspore import ops

        passes = [("train", loss_dict)] if passes is None else list(passes)
        names = list(loss_dict)
        keys = names + [k for _, d in passes for k in d]
        tensors = [loss_dict[k] for k in names] + [d[k] for _, d in passes for k in d]
        values = ops.stack([t.mean().astype("float32") for t in tensors]).asnumpy().astype(np.float64)
        world = comm.get_world_size()
        if world > 1:
            values = comm.all_reduce_sum(values.astype(np.float32)).astype(np.float64) / world
        metrics = {k: float(v) for k, v in zip(names, values)}
        if not comm.is_main_process():
            return
        storage = get_event_storage()
        offset = len(names)
        for phase, d in passes:
            storage.put_step_losses(phase, dict(zip(d, values[offset:offset + len(d)])))
            offset += len(d)
        storage.put_scalar("data_time", data_time)
        total = sum(metrics.values())
        if not np.isfinite(total):
            raise FloatingPointError(f"Loss became infinite or NaN at iteration={self.iter}!\nloss_dict = {metrics}")
        storage.put_scalar("total_loss", total)
        if len(metrics) > 1:
            storage.put_scalars(**metrics)


class DynamicGradScaler:
    """Dynamic loss scaling for mixed precision (``torch.cuda.amp.GradScaler`` semantics) over
    ``mindspore.amp.DynamicLossScaler``.

    The loss is multiplied by :meth:`get_scale` before differentiation; :meth:`step` unscales the gradients and
    applies the optimizer only if all of them are finite, then :meth:`update`-s the scale (divided by
    ``backoff``=``growth_factor`` after an overflow, multiplied by ``growth_factor`` after ``growth_interval``
    finite steps in a row).
    """

    def __init__(self, init_scale: float = 2.0 ** 16, growth_factor: int = 2, growth_interval: int = 2000):
        from mindspore import amp

        self._scaler = amp.DynamicLossScaler(float(init_scale), int(growth_factor), int(growth_interval))
        self._finite = None

    def get_scale(self) -> float:
        return float(self._scaler.scale_value.asnumpy())

    @property
    def scale_tensor(self):
        return self._scaler.scale_value

    def step(self, optimizer, grads: Sequence, has_grad: Optional[Sequence[bool]] = None) -> bool:
        """Unscale ``grads`` and step ``optimizer`` if they are all finite; returns whether it stepped."""
        from mindspore import amp

        present = [g for g in grads if g is not None]
        finite = amp.all_finite(tuple(present)) if present else None
        self._finite = finite
        ok = True if finite is None else bool(finite.asnumpy())
        if ok:
            optimizer.step(self._scaler.unscale(tuple(grads)), has_grad)
        return ok

    def update(self) -> None:
        """Adjust the scale from the finiteness seen by the last :meth:`step`."""
        if self._finite is not None:
            self._scaler.adjust(self._finite)
            self._finite = None

    def state_dict(self) -> Dict[str, float]:
        return {"scale": self.get_scale(), "counter": int(self._scaler.counter.asnumpy())}

    def load_state_dict(self, state: Dict[str, float]) -> None:
        import mindspore

        self._scaler.scale_value.set_data(mindspore.Tensor(float(state["scale"]), mindspore.float32))
        self._scaler.counter.set_data(mindspore.Tensor(int(state["counter"]), mindspore.int32))


class AMPTrainer(SimpleTrainer):
    """:class:`SimpleTrainer` with MindSpore mixed precision (``mindspore.amp.auto_mixed_precision``, level
    ``amp_level``) and dynamic loss scaling (:class:`DynamicGradScaler`). GPU/Ascend only: MindSpore's CPU backend
    gains nothing from float16, so construction on CPU raises."""

    def __init__(self, model, data_loader, optimizer, grad_scaler: Optional[DynamicGradScaler] = None,
                 amp_level: str = "O1"):
        import mindspore

        target = mindspore.get_context("device_target")
        if target not in ("GPU", "Ascend"):
            raise RuntimeError(f"AMPTrainer (SOLVER.AMP.ENABLED=True) needs a GPU or Ascend device, but MindSpore's "
                               f"device target is {target}: the CPU backend has no float16 speed-up. Set "
                               f"SOLVER.AMP.ENABLED False, or MODEL.DEVICE gpu/ascend.")
        model = mindspore.amp.auto_mixed_precision(model, amp_level)
        super().__init__(model, data_loader, optimizer)
        self.grad_scaler = grad_scaler if grad_scaler is not None else DynamicGradScaler()

    def run_step(self):
        if not self.model.training:
            raise RuntimeError("[AMPTrainer] model was changed to eval mode!")
        start = time.perf_counter()
        batch = next(self._data_loader_iter)
        data_time = time.perf_counter() - start
        loss_dict, _, grads = self.loss_and_grads(batch, self.weights, loss_scale=self.grad_scaler.scale_tensor)
        self._write_metrics(loss_dict, data_time)
        self.grad_scaler.step(self.optimizer, grads)
        self.grad_scaler.update()
