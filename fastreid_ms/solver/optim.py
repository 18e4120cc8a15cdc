"""Optimizers with PyTorch ``torch.optim`` semantics that update the model's own Parameters in place.

MindSpore computes gradients functionally (``mindspore.value_and_grad(fn, None, weights)``), so an optimizer here
is not a Cell: :meth:`Optimizer.step` receives the gradients aligned with :attr:`Optimizer.parameters` (the real
Parameters of the model, never copies: gradients with respect to a copy are zero, the fatal bug of an earlier
port) and writes the new values into those Parameters with MindSpore's fused update kernels
(``ops.SGD`` / ``ops.Adam``, one kernel launch per parameter).

Semantics reproduced from ``torch.optim`` (the reference used PyTorch 1.6, the fixtures PyTorch 2.x):

* param groups are dicts ``{"params": [Parameter, ...], "lr": ..., "weight_decay": ..., ...}``; schedulers change
  ``group["lr"]`` between steps;
* SGD: coupled weight decay ``d = g + wd * p``, momentum buffer ``b = d`` on a parameter's first update and
  ``b = m * b + d`` afterwards (dampening 0), ``p -= lr * (d + m * b if nesterov else b)``;
* Adam: coupled weight decay, bias-corrected moments, ``p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)``;
  AdamW: decoupled decay ``p *= 1 - lr * wd`` first;
* ``step(grads, has_grad)``: a parameter whose ``has_grad`` entry is False (or whose gradient is None) is left
  untouched - no update, no weight decay, no momentum change, no Adam step count - which is what PyTorch does for a
  parameter whose ``.grad`` is None (PyTorch >= 2 ``zero_grad()``). PyTorch 1.x kept zero gradient tensors after the
  first backward; :class:`StickyGradMask` turns per-step gradient presence into that behaviour;
* per-parameter gradient clipping (FastReID's ``SOLVER.CLIP_GRADIENTS``) and the freeze-layer wrapper
  (``MODEL.FREEZE_LAYERS`` + ``SOLVER.FREEZE_ITERS``: the gradients of groups tagged ``freeze_status == "freeze"``
  are ignored during the first ``freeze_iters`` calls of :meth:`Optimizer.step`).
"""
import logging
import math
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "GradientClipper", "StickyGradMask", "grad_presence"]

_ZERO_CACHE_MAX_ELEMENTS = 1 << 20


def _ms():
    import mindspore

    return mindspore


class GradientClipper:
    """Per-parameter gradient clipping of FastReID (``torch.nn.utils.clip_grad_{value,norm}_`` on each parameter).

    ``clip_type`` "value": every element is clamped to ``[-clip_value, clip_value]``. ``clip_type`` "norm": a
    gradient whose ``norm_type``-norm exceeds ``clip_value`` is scaled by ``clip_value / (norm + 1e-6)``
    (``norm_type`` may be ``inf``).
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
        from mindspore import ops

        if self.clip_type == "value":
            return ops.clamp(grad, -self.clip_value, self.clip_value)
        g = grad.astype(_ms().float32)
        if math.isinf(self.norm_type):
            norm = ops.abs(g).max()
        elif self.norm_type == 2.0:
            norm = ops.sqrt((g * g).sum())
        else:
            norm = ops.pow(ops.pow(ops.abs(g), self.norm_type).sum(), 1.0 / self.norm_type)
        coef = ops.clamp(self.clip_value / (norm + 1e-6), max=1.0)
        return (grad * coef.astype(grad.dtype)).astype(grad.dtype)


class StickyGradMask:
    """Gradient presence with PyTorch 1.x ``zero_grad()`` semantics (``SOLVER.ZERO_GRAD_KEEPS_TENSORS``).

    In PyTorch 1.x ``zero_grad()`` zeroes ``.grad`` tensors instead of deleting them, so a parameter that received a
    gradient once is updated (weight decay, momentum) by every later step of any optimizer holding it, even when
    the current loss does not reach it. Share ONE instance between all optimizers over the same model (the
    reference's main and meta optimizers share the parameters and hence their ``.grad``).

    ``mask(params, has_grad)`` returns the mask to pass to :meth:`Optimizer.step`: with ``keeps_tensors`` the
    parameters that had a gradient now or in any earlier call, else ``has_grad`` unchanged (PyTorch >= 2).
    """

    def __init__(self, keeps_tensors: bool = True):
        self.keeps_tensors = bool(keeps_tensors)
        self._ever = set()

    def mask(self, params: Sequence, has_grad: Sequence[bool]) -> List[bool]:
        if len(params) != len(has_grad):
            raise ValueError(f"StickyGradMask: {len(params)} parameters but {len(has_grad)} has_grad entries")
        current = [bool(h) for h in has_grad]
        if not self.keeps_tensors:
            return current
        for p, h in zip(params, current):
            if h:
                self._ever.add(id(p))
        return [id(p) in self._ever for p in params]

    def reset(self) -> None:
        """Forget all gradients (a new process in PyTorch starts with ``.grad = None`` everywhere)."""
        self._ever.clear()


def grad_presence(grads) -> List[bool]:
    """``[bool(any(g != 0)) for g in grads]`` with one device synchronisation.

    MindSpore returns a zero gradient for a parameter the loss does not depend on, where PyTorch leaves ``.grad``
    None. This heuristic treats an all-zero gradient as "no gradient"; it differs from PyTorch only for a
    parameter that takes part in the loss with an exactly zero gradient (e.g. behind dead ReLUs), for which PyTorch
    would still apply weight decay and momentum. Prefer structural knowledge of the unused parameters when known.
    """
    from mindspore import ops

    if not grads:
        return []
    flags = ops.stack([ops.abs(g).max().astype(_ms().float32) if g.size else ops.zeros((), _ms().float32)
                       for g in grads])
    return [bool(x) for x in (flags.asnumpy() > 0)]


class Optimizer:
    """Base class: param groups, step bookkeeping, clipping, freezing, has_grad masking and state (de)serialisation.

    Subclasses implement :meth:`_update` (one parameter) and :meth:`_state_arrays` (the names of the per-parameter
    buffers). ``params`` is an iterable of Parameters or of param-group dicts; ``defaults`` fills missing group keys.
    """

    _HYPER_KEYS = ("lr", "weight_decay")

    def __init__(self, params: Iterable, defaults: Dict[str, Any]):
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
        self.state: Dict[int, Dict[str, Any]] = {}
        self.grad_clipper: Optional[GradientClipper] = None
        self.freeze_iters = 0
        self._freeze_steps_done = 0
        self._step_count = 0
        self._scalar_cache: Dict[float, Any] = {}
        self._zero_cache: Dict[tuple, Any] = {}

    # ----------------------------------------------------------------------------------------------- groups
    def add_param_group(self, group: Dict[str, Any]) -> None:
        from mindspore import Parameter

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

    # ----------------------------------------------------------------------------------------------- helpers
    def _scalar(self, value: float):
        t = self._scalar_cache.get(value)
        if t is None:
            t = _ms().Tensor(value, _ms().float32)
            self._scalar_cache[value] = t
        return t

    def _zeros_like(self, p):
        """A zero tensor of ``p``'s shape for the fused kernels (which only read it): shared per shape for tensors
        up to ``_ZERO_CACHE_MAX_ELEMENTS`` elements, allocated per call above (no resident copy of the large
        classifier/center matrices)."""
        from mindspore import ops

        key = (tuple(p.shape), p.dtype)
        if p.size > _ZERO_CACHE_MAX_ELEMENTS:
            return ops.zeros(key[0], key[1])
        z = self._zero_cache.get(key)
        if z is None:
            z = ops.zeros(key[0], key[1])
            self._zero_cache[key] = z
        return z

    def _new_buffer(self, p, suffix: str):
        from mindspore import Parameter, ops

        return Parameter(ops.zeros(tuple(p.shape), p.dtype), name=f"{p.name}.{suffix}", requires_grad=False)

    def _frozen_mask(self) -> Optional[List[bool]]:
        """Per-parameter True where the freeze wrapper drops the gradient in this step (and counts the step)."""
        if self.freeze_iters <= 0 or self._freeze_steps_done >= self.freeze_iters:
            return None
        self._freeze_steps_done += 1
        frozen = []
        for group in self.param_groups:
            frozen.extend([group.get("freeze_status") == "freeze"] * len(group["params"]))
        return frozen

    # ----------------------------------------------------------------------------------------------- step
    def step(self, grads: Sequence, has_grad: Optional[Sequence[bool]] = None) -> None:
        """Update every parameter ``i`` with ``grads[i]`` unless ``has_grad[i]`` is False or ``grads[i]`` is None.

        ``grads`` must be aligned with :attr:`parameters` (as returned by ``value_and_grad`` for those weights).
        """
        n = len(self._params)
        if len(grads) != n:
            raise ValueError(f"{type(self).__name__}.step: got {len(grads)} gradients for {n} parameters")
        if has_grad is None:
            mask = [True] * n
        else:
            if len(has_grad) != n:
                raise ValueError(f"{type(self).__name__}.step: has_grad has {len(has_grad)} entries for {n} "
                                 f"parameters")
            mask = [bool(h) for h in has_grad]
        frozen = self._frozen_mask()
        self._scalar_cache.clear()
        i = 0
        for group in self.param_groups:
            for p in group["params"]:
                g = grads[i]
                if mask[i] and g is not None and not (frozen is not None and frozen[i]):
                    if g.dtype != p.dtype:
                        g = g.astype(p.dtype)
                    if self.grad_clipper is not None:
                        g = self.grad_clipper(g)
                    self._update(group, i, p, g)
                i += 1
        self._step_count += 1

    def _update(self, group: Dict[str, Any], index: int, param, grad) -> None:
        raise NotImplementedError

    # ----------------------------------------------------------------------------------------------- state
    def _state_arrays(self) -> Sequence[str]:
        return ()

    def state_dict(self) -> Dict[str, Any]:
        """Numpy/JSON-friendly state: per-parameter buffers, group hyper-parameters (without the Parameters) and
        the step counters. ``param_names`` records which Parameter each index refers to."""
        state = {}
        for idx, st in self.state.items():
            entry = {}
            for k, v in st.items():
                entry[k] = v.asnumpy() if hasattr(v, "asnumpy") else v
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

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; the parameter count, group sizes and buffer shapes must match."""
        from mindspore import Tensor

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
        new_state = {}
        for idx, entry in state_dict.get("state", {}).items():
            idx = int(idx)
            if not 0 <= idx < len(self._params):
                raise ValueError(f"{name}.load_state_dict: state for parameter index {idx} out of range")
            p = self._params[idx]
            st = {}
            for k, v in entry.items():
                if k in self._state_arrays():
                    v = np.asarray(v)
                    if tuple(v.shape) != tuple(p.shape):
                        raise ValueError(f"{name}.load_state_dict: {k} of parameter {p.name!r} has shape "
                                         f"{tuple(v.shape)}, the parameter {tuple(p.shape)}")
                    buf = self._new_buffer(p, k)
                    buf.set_data(Tensor(v).astype(p.dtype))
                    st[k] = buf
                else:
                    st[k] = v
            new_state[idx] = st
        self.state = new_state
        for saved, group in zip(groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    group[k] = tuple(v) if isinstance(v, list) and k == "betas" else v
        self._step_count = int(state_dict.get("step_count", 0))
        self._freeze_steps_done = int(state_dict.get("freeze_steps_done", 0))


class SGD(Optimizer):
    """``torch.optim.SGD`` (dampening 0): coupled weight decay, momentum with first-step buffer = d_p, nesterov.

    One ``ops.SGD`` kernel per parameter. Its ``stat`` input ("first step") is always a zero tensor: a zero-filled
    momentum buffer gives ``b = m * 0 + d = d`` on the first update, exactly PyTorch's initialisation. With momentum
    0 the kernel does not touch the accumulator (checked in tests), so no buffer is allocated. (Kernel semantics
    verified on the CPU backend.)
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
        if momentum < 0:
            raise ValueError(f"SGD: invalid momentum {momentum}")
        if nesterov and momentum <= 0:
            raise ValueError("SGD: nesterov momentum requires a momentum > 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov,
                                      dampening=0.0))
        self._kernels = {}

    def _kernel(self, weight_decay: float, nesterov: bool):
        key = (float(weight_decay), bool(nesterov))
        k = self._kernels.get(key)
        if k is None:
            from mindspore import ops

            k = ops.SGD(dampening=0.0, weight_decay=key[0], nesterov=key[1])
            self._kernels[key] = k
        return k

    def _state_arrays(self):
        return ("momentum_buffer",)

    def _update(self, group, index, param, grad):
        if group.get("dampening", 0.0) != 0.0:
            raise ValueError("SGD: dampening != 0 is not supported")
        momentum = float(group["momentum"])
        kernel = self._kernel(group["weight_decay"], group["nesterov"] and momentum > 0)
        zeros = self._zeros_like(param)
        if momentum > 0:
            st = self.state.setdefault(index, {})
            buf = st.get("momentum_buffer")
            if buf is None:
                buf = self._new_buffer(param, "momentum_buffer")
                st["momentum_buffer"] = buf
        else:
            buf = zeros
        kernel(param, grad, self._scalar(float(group["lr"])), buf, self._scalar(momentum), zeros)


class Adam(Optimizer):
    """``torch.optim.Adam`` (amsgrad False; coupled weight decay ``g + wd * p``) with the fused ``ops.Adam`` kernel.

    ``ops.Adam`` computes ``p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps')``; passing
    ``eps' = eps * sqrt(1 - b2^t)`` makes it PyTorch's ``p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)``.
    """

    decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 amsgrad: bool = False):
        if amsgrad:
            raise ValueError(f"{type(self).__name__}: amsgrad is not supported")
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"{type(self).__name__}: invalid betas {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))
        from mindspore import ops

        self._kernel = ops.Adam()

    def _state_arrays(self):
        return ("exp_avg", "exp_avg_sq")

    def _update(self, group, index, param, grad):
        from mindspore import ops

        lr = float(group["lr"])
        wd = float(group["weight_decay"])
        beta1, beta2 = (float(b) for b in group["betas"])
        st = self.state.setdefault(index, {})
        if "step" not in st:
            st["step"] = 0
            st["exp_avg"] = self._new_buffer(param, "exp_avg")
            st["exp_avg_sq"] = self._new_buffer(param, "exp_avg_sq")
        st["step"] += 1
        t = st["step"]
        if wd != 0.0:
            if self.decoupled:
                ops.assign(param, param * (1.0 - lr * wd))
            else:
                grad = grad + wd * param
        eps = float(group["eps"]) * math.sqrt(1.0 - beta2 ** t)
        self._kernel(param, st["exp_avg"], st["exp_avg_sq"], self._scalar(beta1 ** t), self._scalar(beta2 ** t),
                     self._scalar(lr), self._scalar(beta1), self._scalar(beta2), self._scalar(eps), grad)


class AdamW(Adam):
    """``torch.optim.AdamW``: decoupled weight decay ``p *= 1 - lr * wd`` before the Adam update (default wd 1e-2)."""

    decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
                 amsgrad: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
