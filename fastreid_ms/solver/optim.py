"""Optimizers with PyTorch ``torch.optim`` semantics that update the model's own Parameters in place, all of them in
one fused call per step (a compiled MindSpore graph by default, as mindcv's optimizers; ``compile=False`` runs the
same update op by op).

MindSpore computes gradients functionally (``mindspore.value_and_grad(fn, None, weights)``), so an optimizer here
is not a Cell the loss is wrapped in: :meth:`Optimizer.step` receives the gradients aligned with
:attr:`Optimizer.parameters` (the real Parameters of the model, never copies: gradients with respect to a copy are
zero, the fatal bug of an earlier port) and writes the new values into those Parameters.

Semantics reproduced from ``torch.optim`` (the reference used PyTorch 1.6, the fixtures PyTorch 2.x):

* param groups are dicts ``{"params": [Parameter, ...], "lr": ..., "weight_decay": ..., ...}``; schedulers change
  ``group["lr"]`` between steps;
* SGD: coupled weight decay ``d = g + wd * p``, momentum buffer ``b = d`` on a parameter's first update and
  ``b = m * b + d`` afterwards (dampening 0), ``p -= lr * (d + m * b if nesterov else b)``;
* Adam: coupled weight decay, bias-corrected moments, ``p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)``;
  AdamW: decoupled decay ``p *= 1 - lr * wd`` first;
* ``step(grads, has_grad)``: a parameter whose ``has_grad`` entry is False is left untouched - no update, no weight
  decay, no momentum change, no Adam step count - which is what PyTorch does for a parameter whose ``.grad`` is None
  (PyTorch >= 2 ``zero_grad()``). ``has_grad`` may be a device bool Tensor (as :class:`~fastreid_ms.modeling.passes.
  TrainPass` returns it), so the step needs no host synchronisation. PyTorch 1.x kept zero gradient tensors after
  the first backward; :class:`StickyGradMask` turns per-step gradient presence into that behaviour;
* per-parameter gradient clipping (FastReID's ``SOLVER.CLIP_GRADIENTS``) and the freeze-layer wrapper
  (``MODEL.FREEZE_LAYERS`` + ``SOLVER.FREEZE_ITERS``: the gradients of groups tagged ``freeze_status == "freeze"``
  are ignored during the first ``freeze_iters`` calls of :meth:`Optimizer.step`).

Optimizer state (momentum buffers, Adam moments, which parameters have been updated) lives in Parameters allocated
once; loading a state writes into them in place, so compiled graphs keep seeing it.
"""
import logging
import math
from typing import Any, Dict, Iterable, List, Optional, Sequence

import mindspore
import numpy as np
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops
from mindspore.ops import composite as C
from mindspore.ops import functional as F

from fastreid_ms.utils.params import assign_values

logger = logging.getLogger(__name__)

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "GradientClipper", "StickyGradMask"]


class GradientClipper:
    """Per-parameter gradient clipping of FastReID (``torch.nn.utils.clip_grad_{value,norm}_`` on each parameter).

    ``clip_type`` "value": every element is clamped to ``[-clip_value, clip_value]``. ``clip_type`` "norm": a
    gradient whose ``norm_type``-norm exceeds ``clip_value`` is scaled by ``clip_value / (norm + 1e-6)``
    (``norm_type`` may be ``inf``). Runs inside the optimizer's fused update.
    """

    def __init__(self, clip_type: str, clip_value: float, norm_type: float = 2.0):
        if clip_type not in ("value", "norm"):
            raise ValueError(f"SOLVER.CLIP_GRADIENTS.CLIP_TYPE={clip_type!r}: expected 'value' or 'norm'")
        if not clip_value > 0:
            raise ValueError(f"SOLVER.CLIP_GRADIENTS.CLIP_VALUE={clip_value!r}: expected a positive number")
        norm_type = float(norm_type)
        if not (norm_type > 0 or math.isinf(norm_type)):
            raise ValueError(f"SOLVER.CLIP_GRADIENTS.NORM_TYPE={norm_type!r}: expected a positive number or inf")
        self.clip_type = clip_type
        self.clip_value = float(clip_value)
        self.norm_type = norm_type

    def __call__(self, grad):
        return _clip(grad, self.clip_type, self.clip_value, self.norm_type)


def _clip(grad, clip_type, clip_value, norm_type):
    if clip_type == "value":
        return ops.clamp(grad, -clip_value, clip_value)
    if math.isinf(norm_type):
        norm = ops.abs(grad).max()
    elif norm_type == 2.0:
        norm = ops.sqrt((grad * grad).sum())
    else:
        norm = ops.pow(ops.pow(ops.abs(grad), norm_type).sum(), 1.0 / norm_type)
    return grad * ops.clamp(clip_value / (norm + 1e-6), max=1.0)


class StickyGradMask:
    """Gradient presence with PyTorch 1.x ``zero_grad()`` semantics (``SOLVER.ZERO_GRAD_KEEPS_TENSORS``).

    In PyTorch 1.x ``zero_grad()`` zeroes ``.grad`` tensors instead of deleting them, so a parameter that received a
    gradient once is updated (weight decay, momentum) by every later step of any optimizer holding it, even when
    the current loss does not reach it. Share ONE instance between all optimizers over the same parameters (the
    reference's main and meta optimizers share them and hence their ``.grad``).

    ``optimizer.step(grads, sticky=mask.sticky())`` then ``mask.record(present)`` with the presence the step returns.
    Without ``keeps_tensors`` (PyTorch >= 2) :meth:`sticky` is all False. The memory is a device Tensor (no host
    synchronisation).
    """

    def __init__(self, num_params: int, keeps_tensors: bool = True):
        self.keeps_tensors = bool(keeps_tensors)
        self.num_params = int(num_params)
        self._ever = Tensor(np.zeros(self.num_params, dtype=np.bool_))

    def sticky(self) -> Tensor:
        """The parameters to update even with an all-zero gradient."""
        return self._ever

    def record(self, present) -> None:
        """Remember the parameters that had a gradient in a step (the Tensor ``Optimizer.step`` returns; None, for
        a skipped step, records nothing)."""
        if self.keeps_tensors and present is not None:
            self._ever = ops.logical_or(self._ever, _bool_tensor(present, self.num_params, "StickyGradMask.record"))

    def ever(self) -> np.ndarray:
        """Which parameters are remembered as having had a gradient (bool array; host read)."""
        return self._ever.asnumpy().copy()

    def reset(self, ever: Optional[Sequence[bool]] = None) -> None:
        """Forget all gradients (a new process in PyTorch starts with ``.grad = None`` everywhere), or set the
        memory to ``ever``."""
        values = np.zeros(self.num_params, dtype=np.bool_) if ever is None else np.asarray(ever, dtype=np.bool_)
        if values.shape != (self.num_params,):
            raise ValueError(f"StickyGradMask.reset: {values.shape[0]} flags for {self.num_params} parameters")
        self._ever = Tensor(values)


def _bool_tensor(flags, n: int, where: str, default: bool = True) -> Tensor:
    if flags is None:
        return Tensor(np.full(n, default, dtype=np.bool_))
    if not isinstance(flags, Tensor):
        flags = np.asarray(flags, dtype=np.bool_)
        if flags.shape != (n,):
            raise ValueError(f"{where}: {flags.shape[0] if flags.ndim else 0} has_grad flags for {n} parameters")
        return Tensor(flags)
    if tuple(flags.shape) != (n,):
        raise ValueError(f"{where}: has_grad has shape {tuple(flags.shape)} for {n} parameters")
    return flags.astype(mindspore.bool_)


_SGD_UPDATE = C.MultitypeFuncGraph("sgd_update")
_ADAM_UPDATE = C.MultitypeFuncGraph("adam_update")


def _use(grad, sticky, allowed):
    """(has a non-zero gradient, update this step): a parameter is updated when its gradient is not all zero (PyTorch:
    ``.grad`` is not None) or ``sticky`` (PyTorch 1.x: it had one before), and ``allowed``."""
    has_grad = ops.abs(grad).max() > 0
    return has_grad, ops.logical_and(ops.logical_or(has_grad, sticky), allowed)


@_SGD_UPDATE.register("Number", "Bool", "Tuple", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor",
                      "Tensor")
def _sgd_param_update(momentum, nesterov, clip, lr, weight_decay, sticky, allowed, param, buf, grad):
    """One parameter's masked SGD step (not updated: parameter and buffer untouched, exactly). Returns
    ``[has_grad, updated]``."""
    has_grad, use = _use(grad, sticky, allowed)
    if clip:
        grad = _clip(grad, clip[0], clip[1], clip[2])
    d = grad + weight_decay * param
    if momentum > 0:
        b = ops.select(use, momentum * buf + d, buf)
        ops.assign(buf, b)
        step = d + momentum * b if nesterov else b
    else:
        step = d
    ops.assign(param, param - (lr * use.astype(param.dtype)) * step)
    return ops.stack((has_grad, use))


@_ADAM_UPDATE.register("Tuple", "Bool", "Tuple", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor",
                       "Tensor", "Tensor", "Tensor")
def _adam_param_update(hyper, decoupled, clip, lr, weight_decay, sticky, allowed, count, param, exp_avg,
                       exp_avg_sq, grad):
    """One parameter's masked Adam/AdamW step; ``count`` is its step count before this step. Returns
    ``[has_grad, updated]``."""
    beta1, beta2, eps = hyper
    has_grad, use = _use(grad, sticky, allowed)
    count = count + use.astype(mindspore.float32)
    if clip:
        grad = _clip(grad, clip[0], clip[1], clip[2])
    if decoupled:
        param_in = param * (1.0 - lr * weight_decay)
    else:
        param_in = param
        grad = grad + weight_decay * param
    m = ops.select(use, beta1 * exp_avg + (1.0 - beta1) * grad, exp_avg)
    v = ops.select(use, beta2 * exp_avg_sq + (1.0 - beta2) * grad * grad, exp_avg_sq)
    ops.assign(exp_avg, m)
    ops.assign(exp_avg_sq, v)
    bias_correction1 = 1.0 - beta1 ** count
    bias_correction2 = 1.0 - beta2 ** count
    denom = ops.sqrt(v) / ops.sqrt(bias_correction2) + eps
    # not updated (count may still be 0): the parameter exactly as it was
    ops.assign(param, ops.select(use, param_in - (lr / bias_correction1) * (m / denom), param))
    return ops.stack((has_grad, use))


class _FusedUpdate(nn.Cell):
    """The update of every parameter in one call: ``construct(grads, lrs, weight_decays, sticky, allowed)`` with
    (P,) Tensors of per-parameter lrs and weight decays and bool masks; returns the (P,) bool Tensor of parameters
    whose gradient is not all zero. Holds the parameters and the state Parameters."""

    def __init__(self, params: Sequence[Parameter], state_names: Sequence[str], kind: str, hyper, clip, tag: str):
        super().__init__(auto_prefix=False)
        self.params = ParameterTuple(params)
        slots = [ParameterTuple([Parameter(ops.zeros(p.shape, p.dtype), name=f"{tag}.{suffix}.{p.name}",
                                           requires_grad=False) for p in params]) for suffix in state_names]
        self.slot0 = slots[0] if slots else self.params
        self.slot1 = slots[1] if len(slots) > 1 else self.params
        self.state = tuple(slots)
        self.updated = Parameter(Tensor(np.zeros(len(params), dtype=np.bool_)), name=f"{tag}.updated",
                                 requires_grad=False)
        self.counts = Parameter(Tensor(np.zeros(len(params), dtype=np.float32)), name=f"{tag}.counts",
                                requires_grad=False)
        self.kind = kind
        self.hyper = hyper
        self.clip = clip
        self.hyper_map = C.HyperMap()

    def construct(self, grads, lrs, weight_decays, sticky, allowed):
        lrs = ops.unstack(lrs)
        weight_decays = ops.unstack(weight_decays)
        sticky = ops.unstack(sticky)
        allowed = ops.unstack(allowed)
        if self.kind == "sgd":
            momentum, nesterov = self.hyper
            results = self.hyper_map(F.partial(_SGD_UPDATE, momentum, nesterov, self.clip), lrs, weight_decays,
                                     sticky, allowed, self.params, self.slot0, grads)
        else:
            hyper, decoupled = self.hyper
            results = self.hyper_map(F.partial(_ADAM_UPDATE, hyper, decoupled, self.clip), lrs, weight_decays,
                                     sticky, allowed, ops.unstack(self.counts), self.params, self.slot0, self.slot1,
                                     grads)
        flags = ops.stack(results)
        has_grad, use = flags[:, 0], flags[:, 1]
        ops.assign(self.counts, self.counts + use.astype(mindspore.float32))
        ops.assign(self.updated, ops.logical_or(self.updated, use))
        return has_grad


class Optimizer:
    """Base class: param groups, step bookkeeping, clipping, freezing, has_grad masking and state (de)serialisation.

    ``params`` is an iterable of Parameters or of param-group dicts; ``defaults`` fills missing group keys.
    Subclasses define :meth:`_fused` (the update Cell) and ``state_names`` (the per-parameter buffers).
    ``compile=False`` runs the update op by op (PyNative, for debugging).
    """

    state_names: Sequence[str] = ()

    def __init__(self, params: Iterable, defaults: Dict[str, Any], compile: bool = True):
        self.defaults = dict(defaults)
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.param_groups: List[Dict[str, Any]] = []
        self._seen = set()
        self._params: List = []
        for g in groups:
            self.add_param_group(g)
        self.compile = bool(compile)
        self.grad_clipper: Optional[GradientClipper] = None
        self.freeze_iters = 0
        self._freeze_steps_done = 0
        self._step_count = 0
        self._update = None

    # ----------------------------------------------------------------------------------------------- groups
    def add_param_group(self, group: Dict[str, Any]) -> None:
        if getattr(self, "_update", None) is not None:
            raise RuntimeError(f"{type(self).__name__}: add param groups before the first step")
        if not isinstance(group, dict) or "params" not in group:
            raise ValueError(f"{type(self).__name__}: a param group must be a dict with a 'params' list, got "
                             f"{type(group).__name__}")
        group = dict(group)
        params = group["params"]
        params = [params] if isinstance(params, Parameter) else list(params)
        for p in params:
            if not isinstance(p, Parameter):
                raise TypeError(f"{type(self).__name__} can only optimize mindspore Parameters, got "
                                f"{type(p).__name__}")
            if not p.requires_grad:
                raise ValueError(f"{type(self).__name__}: parameter {p.name!r} has requires_grad=False")
            if id(p) in self._seen:
                raise ValueError(f"{type(self).__name__}: parameter {p.name!r} appears in more than one group")
            self._seen.add(id(p))
        group["params"] = params
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        if "lr" not in group:
            raise ValueError(f"{type(self).__name__}: param group without 'lr' and no default lr")
        group.setdefault("freeze_status", "normal")
        self.param_groups.append(group)
        self._params.extend(params)

    @property
    def parameters(self) -> List:
        """The optimized Parameters in group order: pass them as ``weights`` to ``mindspore.value_and_grad``."""
        return list(self._params)

    def _per_param(self, key: str) -> Tensor:
        values = [float(group[key]) for group in self.param_groups for _ in group["params"]]
        return Tensor(np.asarray(values, dtype=np.float32))

    def _fused_update(self) -> _FusedUpdate:
        if self._update is None:
            clip = () if self.grad_clipper is None else (self.grad_clipper.clip_type, self.grad_clipper.clip_value,
                                                         self.grad_clipper.norm_type)
            cell = self._fused(clip)
            self._update = (cell, mindspore.jit(cell.construct) if self.compile else cell.construct)
        return self._update[0]

    def _frozen_mask(self) -> Optional[np.ndarray]:
        """Per-parameter True where the freeze wrapper drops the gradient in this step (and counts the step)."""
        if self.freeze_iters <= 0 or self._freeze_steps_done >= self.freeze_iters:
            return None
        self._freeze_steps_done += 1
        return np.asarray([group.get("freeze_status") == "freeze" for group in self.param_groups
                           for _ in group["params"]], dtype=np.bool_)

    # ----------------------------------------------------------------------------------------------- step
    def step(self, grads: Sequence, has_grad=None, sticky=None):
        """Update every parameter ``i`` whose gradient ``grads[i]`` is not all zero (PyTorch: ``.grad`` is not
        None), or whose ``sticky[i]`` is True (PyTorch 1.x ``zero_grad``: it had a gradient before; see
        :class:`StickyGradMask`), unless ``has_grad[i]`` is False. Returns the (P,) bool Tensor of the parameters
        whose gradient is not all zero (no host synchronisation).

        ``grads`` must be aligned with :attr:`parameters` (as returned by ``value_and_grad`` for those weights);
        ``has_grad`` and ``sticky`` are None, sequences of bools or (P,) bool Tensors.
        """
        n = len(self._params)
        if len(grads) != n:
            raise ValueError(f"{type(self).__name__}.step: got {len(grads)} gradients for {n} parameters")
        allowed = _bool_tensor(has_grad, n, f"{type(self).__name__}.step has_grad")
        frozen = self._frozen_mask()
        if frozen is not None:
            allowed = ops.logical_and(allowed, Tensor(~frozen))
        sticky = _bool_tensor(sticky, n, f"{type(self).__name__}.step sticky", default=False)
        grads = tuple(g if g.dtype == p.dtype else g.astype(p.dtype) for g, p in zip(grads, self._params))
        self._fused_update()
        # a tuple of Tensors must be mutable(), or jit treats it as a constant and recompiles for every new value
        present = self._update[1](mindspore.mutable(grads), self._per_param("lr"), self._per_param("weight_decay"),
                                  sticky, allowed)
        self._step_count += 1
        return present

    # ----------------------------------------------------------------------------------------------- state
    def state_dict(self) -> Dict[str, Any]:
        """Numpy/JSON-friendly state: per-parameter buffers of the parameters updated so far (as PyTorch creates
        them on the first update), group hyper-parameters (without the Parameters) and the step counters.
        ``param_names`` records which Parameter each index refers to."""
        state = {}
        if self._update is not None:
            cell = self._update[0]
            updated = cell.updated.asnumpy()
            counts = cell.counts.asnumpy()
            for idx in np.flatnonzero(updated):
                entry = {name: buffers[idx].asnumpy() for name, buffers in zip(self.state_names, cell.state)}
                if self.counts_steps:
                    entry["step"] = int(counts[idx])
                if entry:
                    state[int(idx)] = entry
        groups = []
        start = 0
        for group in self.param_groups:
            g = {k: v for k, v in group.items() if k != "params"}
            g["params"] = list(range(start, start + len(group["params"])))
            start += len(group["params"])
            groups.append(g)
        return {"state": state, "param_groups": groups, "param_names": [p.name for p in self._params],
                "step_count": self._step_count, "freeze_steps_done": self._freeze_steps_done}

    counts_steps = False

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; the parameter count, group sizes and buffer shapes must match."""
        name = type(self).__name__
        groups = state_dict.get("param_groups")
        if groups is None or len(groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the saved state has "
                             f"{None if groups is None else len(groups)} param groups, this optimizer "
                             f"{len(self.param_groups)}")
        for i, (saved, group) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{name}.load_state_dict: param group {i} has {len(saved['params'])} parameters in "
                                 f"the saved state but {len(group['params'])} here")
        n = len(self._params)
        updated = np.zeros(n, dtype=np.bool_)
        counts = np.zeros(n, dtype=np.float32)
        buffers = {k: {} for k in self.state_names}
        for idx, entry in state_dict.get("state", {}).items():
            idx = int(idx)
            if not 0 <= idx < n:
                raise ValueError(f"{name}.load_state_dict: state for parameter index {idx} out of range")
            p = self._params[idx]
            for k in self.state_names:
                if k not in entry:
                    raise ValueError(f"{name}.load_state_dict: the state of parameter {p.name!r} has no {k!r}")
                v = np.asarray(entry[k], dtype=np.float32)
                if tuple(v.shape) != tuple(p.shape):
                    raise ValueError(f"{name}.load_state_dict: {k} of parameter {p.name!r} has shape "
                                     f"{tuple(v.shape)}, the parameter {tuple(p.shape)}")
                buffers[k][idx] = v
            updated[idx] = True
            counts[idx] = float(entry.get("step", 0))
        cell = self._fused_update()
        targets, values = [cell.updated, cell.counts], [updated, counts]
        for k, state_params in zip(self.state_names, cell.state):
            for idx, param in enumerate(state_params):
                targets.append(param)
                values.append(buffers[k].get(idx, np.zeros(param.shape, dtype=np.float32)))
        assign_values(targets, values)
        for saved, group in zip(groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    group[k] = tuple(v) if isinstance(v, list) and k == "betas" else v
        self._step_count = int(state_dict.get("step_count", 0))
        self._freeze_steps_done = int(state_dict.get("freeze_steps_done", 0))

    def _fused(self, clip) -> _FusedUpdate:
        raise NotImplementedError


class SGD(Optimizer):
    """``torch.optim.SGD`` (dampening 0): coupled weight decay, momentum with first-step buffer = d_p, nesterov.
    Momentum and nesterov are per optimizer (not per group). A zero-initialised momentum buffer gives exactly
    PyTorch's first-update buffer ``0 * m + d = d``; with momentum 0 no buffer is allocated."""

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 compile: bool = True):
        if momentum < 0:
            raise ValueError(f"SGD: invalid momentum {momentum}")
        if nesterov and momentum <= 0:
            raise ValueError("SGD: nesterov momentum requires a momentum > 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov,
                                      dampening=0.0), compile=compile)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.state_names = ("momentum_buffer",) if self.momentum > 0 else ()

    def _fused(self, clip):
        for group in self.param_groups:
            if group.get("dampening", 0.0) != 0.0:
                raise ValueError("SGD: dampening != 0 is not supported")
            if float(group["momentum"]) != self.momentum or bool(group["nesterov"]) != self.nesterov:
                raise ValueError("SGD: momentum and nesterov must be the same in every param group")
        return _FusedUpdate(self._params, self.state_names, "sgd", (self.momentum, self.nesterov), clip,
                            f"SGD{id(self)}")


class Adam(Optimizer):
    """``torch.optim.Adam`` (amsgrad False; coupled weight decay ``g + wd * p``); betas and eps per optimizer."""

    decoupled = False
    state_names = ("exp_avg", "exp_avg_sq")
    counts_steps = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 amsgrad: bool = False, compile: bool = True):
        if amsgrad:
            raise ValueError(f"{type(self).__name__}: amsgrad is not supported")
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"{type(self).__name__}: invalid betas {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay),
                         compile=compile)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)

    def _fused(self, clip):
        for group in self.param_groups:
            if tuple(float(b) for b in group["betas"]) != self.betas or float(group["eps"]) != self.eps:
                raise ValueError(f"{type(self).__name__}: betas and eps must be the same in every param group")
        hyper = ((self.betas[0], self.betas[1], self.eps), self.decoupled)
        return _FusedUpdate(self._params, self.state_names, "adam", hyper, clip, f"{type(self).__name__}{id(self)}")


class AdamW(Adam):
    """``torch.optim.AdamW``: decoupled weight decay ``p *= 1 - lr * wd`` before the Adam update (default wd 1e-2)."""

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
                 amsgrad: bool = False, compile: bool = True):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         compile=compile)
