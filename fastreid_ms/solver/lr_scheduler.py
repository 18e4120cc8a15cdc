"""Learning-rate schedulers with PyTorch's ``torch.optim.lr_scheduler`` semantics (chainable form).

Like PyTorch, a scheduler writes ``group["lr"]`` of its optimizer's param groups; several schedulers on one
optimizer compose through that value. FastReID/ACL-DGReID build the epoch scheduler first (``MultiStepLR`` or
``CosineAnnealingLR``), then :class:`WarmupLR`, and step them from the ``LRScheduler`` hook: the warm-up after
every iteration while ``iter + 1 <= warmup_iters``, the main scheduler after every epoch (see
``fastreid_ms.engine.hooks.LRScheduler``). Construction performs PyTorch's initial ``step()`` (``last_epoch`` 0).
"""
import math
from collections import Counter
from typing import Any, Dict, List, Sequence

__all__ = ["LRScheduler", "WarmupLR", "MultiStepLR", "CosineAnnealingLR"]


class LRScheduler:
    """Base class: ``base_lrs`` from each group's ``initial_lr`` (set on first construction), ``last_epoch``,
    ``step()``, ``get_last_lr()``, ``state_dict()`` / ``load_state_dict()`` (plain numbers, JSON-friendly)."""

    def __init__(self, optimizer, last_epoch: int = -1):
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(f"param 'initial_lr' is not specified in param_groups[{i}] when resuming")
        self.base_lrs: List[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self.step()

    def get_lr(self) -> List[float]:
        raise NotImplementedError

    def step(self) -> None:
        self._step_count += 1
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> List[float]:
        return list(self._last_lr)

    def state_dict(self) -> Dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        unknown = set(state_dict) - set(self.state_dict())
        if unknown:
            raise KeyError(f"{type(self).__name__}.load_state_dict: unknown keys {sorted(unknown)}")
        self.__dict__.update(state_dict)


def _warmup_factor(method: str, it: int, warmup_iters: int, warmup_factor: float) -> float:
    if it >= warmup_iters:
        return 1.0
    if method == "constant":
        return warmup_factor
    if method == "linear":
        alpha = it / warmup_iters
        return warmup_factor * (1 - alpha) + alpha
    if method == "exp":
        return warmup_factor ** (1 - it / warmup_iters)
    raise ValueError(f"Unknown warmup method: {method!r}; expected 'constant', 'linear' or 'exp'")


class WarmupLR(LRScheduler):
    """FastReID's iteration warm-up: ``lr = base_lr * factor(last_epoch)`` recomputed from the base lrs at every
    step (so it overwrites whatever another scheduler set), factor 1 from ``warmup_iters`` on.

    linear: ``wf * (1 - t/W) + t/W``; constant: ``wf``; exp: ``wf ** (1 - t/W)``.
    """

    def __init__(self, optimizer, warmup_factor: float = 0.1, warmup_iters: int = 1000,
                 warmup_method: str = "linear", last_epoch: int = -1):
        _warmup_factor(warmup_method, 0, 1, warmup_factor)
        self.warmup_factor = warmup_factor
        self.warmup_iters = warmup_iters
        self.warmup_method = warmup_method
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        factor = _warmup_factor(self.warmup_method, self.last_epoch, self.warmup_iters, self.warmup_factor)
        return [base_lr * factor for base_lr in self.base_lrs]


class MultiStepLR(LRScheduler):
    """PyTorch's chainable ``MultiStepLR``: at ``last_epoch`` in ``milestones`` the CURRENT group lr is multiplied by
    ``gamma ** count`` (so a milestone reached inside the warm-up scales that moment's warm-up lr, which the next
    warm-up step overwrites - the reference quirk the lr_schedule fixture pins)."""

    def __init__(self, optimizer, milestones: Sequence[int], gamma: float = 0.1, last_epoch: int = -1):
        self.milestones = Counter(int(m) for m in milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        groups = self.optimizer.param_groups
        if self.last_epoch not in self.milestones:
            return [group["lr"] for group in groups]
        return [group["lr"] * self.gamma ** self.milestones[self.last_epoch] for group in groups]

    def state_dict(self) -> Dict[str, Any]:
        state = super().state_dict()
        state["milestones"] = sorted(self.milestones.elements())
        return state

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        state = dict(state_dict)
        state["milestones"] = Counter(int(m) for m in state.get("milestones", []))
        super().load_state_dict(state)


class CosineAnnealingLR(LRScheduler):
    """PyTorch's recursive (chainable) ``CosineAnnealingLR``, as the reference uses it:
    ``lr_t = eta_min + (lr_{t-1} - eta_min) * (1 + cos(pi t / T)) / (1 + cos(pi (t-1) / T))``, with PyTorch's
    special cases for ``t == 0`` and the restart points ``(t - 1 - T) % 2T == 0``."""

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
        if T_max <= 0:
            raise ValueError(f"CosineAnnealingLR: T_max must be positive, got {T_max} (SOLVER.MAX_EPOCH minus the "
                             f"warm-up/delay epochs)")
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        groups = self.optimizer.param_groups
        t, T, eta_min = self.last_epoch, self.T_max, self.eta_min
        if t == 0:
            return [group["lr"] for group in groups]
        if self._step_count == 1 and t > 0:
            return [eta_min + (base - eta_min) * (1 + math.cos(t * math.pi / T)) / 2 for base in self.base_lrs]
        if (t - 1 - T) % (2 * T) == 0:
            return [group["lr"] + (base - eta_min) * (1 - math.cos(math.pi / T)) / 2
                    for base, group in zip(self.base_lrs, groups)]
        return [(1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T)) * (group["lr"] - eta_min)
                + eta_min for group in groups]
