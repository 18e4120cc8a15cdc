"""ACL-DGReID's meta-learning training step (reference ``engine/train_loop.py`` ``run_step_meta_learning1/2`` and
``engine/defaults.py`` ``DefaultTrainer.run_step``) on MindSpore.

Per iteration: one *basic* step (``SOLVER.META.FIRST_ITER_BASIC_STEPS`` of them at iteration 0) on the mixed loader
with the main optimizer, BN running statistics updated; then, every ``SOLVER.META.PERIOD`` iterations, one *meta*
step with the meta optimizer:

1. a meta-test domain is drawn uniformly (the trainer's own seeded RandomState, :meth:`draw_meta_test_domain`);
2. meta-train: one batch of every other source domain, concatenated in domain order; ``g = d L_mtr / d theta``;
3. meta-test: the held-out domain's batch through the fast weights ``theta' = theta - alpha * g`` (``alpha`` = the
   meta optimizer's current lr, x ``SOLVER.META.ADAPTOR_STEP_FACTOR`` for parameters of ``adaptor`` modules; g is a
   constant: first order): the trainer writes ``theta'`` into the Parameters (:class:`FastWeights`), runs the
   model's ordinary compiled pass there and restores ``theta`` afterwards, also after an error. ``g' = d L_mte /
   d theta'`` equals the reference's gradient with respect to ``theta`` since ``d theta' / d theta = I``;
4. the meta optimizer steps on ``g + g'`` (the gradient of ``L_mtr + L_mte``).

Any number D >= 1 of source domains (the reference has three, ``np.random.choice(3)``, and meta-trains on the two
others). The rule generalises as: the meta-test domain is uniform over the D domains and the meta-train batch holds
one batch (``SOLVER.IMS_PER_BATCH / 2`` images) of each of the D - 1 others, so it grows with D (five domains:
4 x IMS_PER_BATCH / 2 images; under ``SOLVER.DP_REPLICAS`` chunks it splits like the reference's DataParallel
scatter). With a single source domain there is no other domain to meta-train on: the domain is both, the
meta-train batch is its next batch and the meta-test batch the one after (a within-domain first-order meta step).

Both meta passes use batch statistics without touching the running statistics. Both steps are
:meth:`SimpleTrainer.run_optimizer_step` (fetch, passes, metrics, optimizer update).

The reference (PyTorch) leaves ``.grad`` None for parameters a loss does not reach; MindSpore returns zeros. An
all-zero gradient is taken as "no gradient", and ``SOLVER.ZERO_GRAD_KEEPS_TENSORS`` (default True, the PyTorch 1.6
the reference ran on) makes a parameter that once had a gradient keep being updated (weight decay, momentum) by
both optimizers, as PyTorch 1.x's ``zero_grad()`` does.
"""
from contextlib import contextmanager
from typing import Dict, Optional, Sequence, Tuple

import mindspore
import numpy as np
from mindspore import ParameterTuple, Tensor, nn, ops
from mindspore.ops import composite as C

from .train_loop import SimpleTrainer, load_loader_state, loader_state

__all__ = ["MetaLearningTrainer", "FastWeights", "concat_batches", "meta_step_sizes", "sum_gradients"]

_SWAP = C.MultitypeFuncGraph("fast_weight_swap")
_RESTORE = C.MultitypeFuncGraph("fast_weight_restore")
_ADD = C.MultitypeFuncGraph("add")


@_SWAP.register("Tensor", "Tensor", "Tensor")
def _swap(step, param, grad):
    slow = param * 1.0   # an exact copy (keeps -0.0), taken before the write below
    ops.assign(param, ops.depend(param - step * grad, slow))
    return slow


@_RESTORE.register("Tensor", "Tensor")
def _restore(param, slow):
    ops.assign(param, slow)
    return slow


@_ADD.register("Tensor", "Tensor")
def _add(a, b):
    return a + b


_HYPER_MAP = C.HyperMap()


def sum_gradients(a, b):
    """Element-wise sums of two gradient tuples (one fused call when compiled)."""
    return _HYPER_MAP(_ADD, a, b)


def concat_batches(batches: Sequence[Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """Concatenate batch dicts key by key along the first axis (the reference's ``torch.cat`` of domain batches)."""
    keys = list(batches[0])
    for b in batches[1:]:
        if list(b) != keys:
            raise KeyError(f"cannot concatenate batches with different keys: {keys} vs {list(b)}")
    return {k: np.concatenate([np.asarray(b[k]) for b in batches], axis=0) for k in keys}


def meta_step_sizes(names: Sequence[str], lr: float, adaptor_factor: float = 0.5) -> np.ndarray:
    """Inner step size per parameter name: ``lr``, times ``adaptor_factor`` when the name contains 'adaptor'
    (the reference sets ``w_step_size = lr * (0.5 if 'adaptor' in module_path else 1)``; both the adaptorN_base and
    adaptorN_sub modules match)."""
    lr = float(lr)
    return np.asarray([lr * adaptor_factor if "adaptor" in n else lr for n in names], dtype=np.float32)


class _FastWeightWrites(nn.Cell):
    """The in-place writes of :class:`FastWeights` over a tuple of Parameters."""

    def __init__(self, params: Sequence):
        super().__init__(auto_prefix=False)
        self.params = ParameterTuple(list(params))
        self.hyper_map = C.HyperMap()

    def swap(self, grads, steps):
        return self.hyper_map(_SWAP, ops.unstack(steps), self.params, grads)

    def restore(self, slow):
        return self.hyper_map(_RESTORE, self.params, slow)


class FastWeights:
    """Writes first-order fast weights into Parameters and restores them, each in one compiled call.

    ``with fast_weights(grads, step_sizes):`` every Parameter holds ``param - step_sizes[i] * grads[i]`` (the
    reference's ``update_parameter``: a parameter without gradient, whose gradient is zero, keeps its value
    exactly); on exit, also after an error, the slow values are restored bit for bit. The writes are in place
    (``ops.assign``), so compiled graphs see them.
    """

    def __init__(self, params: Sequence, compile: bool = True):
        self._writes = _FastWeightWrites(params)
        self.num_params = len(self._writes.params)
        self._swap = mindspore.jit(self._writes.swap) if compile else self._writes.swap
        self._restore = mindspore.jit(self._writes.restore) if compile else self._writes.restore

    @contextmanager
    def __call__(self, grads, step_sizes):
        if len(grads) != self.num_params or len(step_sizes) != self.num_params:
            raise ValueError(f"FastWeights: {len(grads)} gradients and {len(step_sizes)} step sizes for "
                             f"{self.num_params} parameters")
        # tuples of Tensors passed to a compiled function must be mutable() (else: constants, recompiled per value)
        slow = self._swap(mindspore.mutable(tuple(grads)), Tensor(np.asarray(step_sizes, dtype=np.float32)))
        try:
            yield
        finally:
            self._restore(mindspore.mutable(slow))


class MetaLearningTrainer(SimpleTrainer):
    """The ACL-DGReID trainer step (see the module docstring).

    Args:
        model: a ``Baseline`` with a ``MetaEmbeddingHead`` (phases basic / mtrain / mtest).
        data_loader: the mixed-domain training loader (basic steps).
        domain_loaders: one training loader per source domain, in ``DATASETS.NAMES`` order (meta steps; at least
            one).
        optimizer / optimizer_meta: the main optimizer and the meta optimizer (same Parameters, same order).
        meta_period, first_iter_basic_steps, adaptor_step_factor: ``SOLVER.META.*``.
        zero_grad_keeps_tensors: ``SOLVER.ZERO_GRAD_KEEPS_TENSORS``.
        dp_replicas: ``SOLVER.DP_REPLICAS``.
        seed: seed of the meta-test domain draws.
        compile: run the passes, the fast-weight writes and the updates as compiled graphs (``MODEL.COMPILE``).
    """

    def __init__(self, model, data_loader, domain_loaders: Sequence, optimizer, optimizer_meta, *,
                 meta_period: int = 3, first_iter_basic_steps: int = 10, adaptor_step_factor: float = 0.5,
                 zero_grad_keeps_tensors: bool = True, dp_replicas: int = 1, seed: Optional[int] = None,
                 compile: bool = True):
        if [id(p) for p in optimizer.parameters] != [id(p) for p in optimizer_meta.parameters]:
            raise ValueError("the main and the meta optimizer must hold the same Parameters in the same order")
        if meta_period < 1 or first_iter_basic_steps < 1 or dp_replicas < 1:
            raise ValueError(f"SOLVER.META.PERIOD ({meta_period}), SOLVER.META.FIRST_ITER_BASIC_STEPS "
                             f"({first_iter_basic_steps}) and SOLVER.DP_REPLICAS ({dp_replicas}) must be >= 1")
        if len(domain_loaders) < 1:
            raise ValueError("meta-learning needs at least one source domain loader (DATASETS.NAMES), got none")
        super().__init__(model, data_loader, optimizer, compile=compile, dp_replicas=dp_replicas,
                         zero_grad_keeps_tensors=zero_grad_keeps_tensors)
        self.domain_loaders = list(domain_loaders)
        self._domain_iters = [iter(loader) for loader in self.domain_loaders]
        self.optimizer_meta = optimizer_meta
        self.meta_period = int(meta_period)
        self.first_iter_basic_steps = int(first_iter_basic_steps)
        self.adaptor_step_factor = float(adaptor_step_factor)
        self.meta_rng = np.random.RandomState(seed)
        self.fast_weights = FastWeights(self.weights, compile=compile)
        self._names = [p.name for p in self.weights]
        self._sum_gradients = mindspore.jit(sum_gradients) if compile else sum_gradients

    # ------------------------------------------------------------------------------------------------ schedule
    def run_step(self):
        if not self.model.training:
            raise RuntimeError("[MetaLearningTrainer] model was changed to eval mode!")
        repeats = self.first_iter_basic_steps if self.iter == 0 else 1
        for _ in range(repeats):
            self.run_basic_step()
        if self.iter % self.meta_period == 0:
            self.run_meta_step()

    def run_basic_step(self):
        """``run_step_meta_learning1``: mixed batch, phase 'basic' (running statistics updated), main optimizer.
        Returns ``(passes, grads)``."""
        return self.run_optimizer_step(self.next_batch, self.basic_passes, self.optimizer.step)

    def run_meta_step(self):
        """``run_step_meta_learning2``: meta-train on the other domains, meta-test on the drawn domain through
        first-order fast weights, one meta-optimizer step on the summed gradient. Returns ``(passes, grads)``."""
        return self.run_optimizer_step(self.next_meta_batches, self.meta_passes, self.optimizer_meta.step)

    def draw_meta_test_domain(self) -> int:
        """The held-out domain of the next meta step: uniform over the D source domains (the reference's
        ``np.random.choice(3)`` is D = 3), from the trainer's own seeded RandomState."""
        return int(self.meta_rng.choice(len(self.domain_loaders)))

    def meta_train_domains(self, test_domain: int) -> Tuple[int, ...]:
        """The domains whose batches form the meta-train batch, in domain order: every domain but ``test_domain``;
        with a single source domain, that domain itself (see the module docstring)."""
        others = tuple(d for d in range(len(self.domain_loaders)) if d != test_domain)
        return others if others else (test_domain,)

    def next_meta_batches(self):
        """``(meta-train batch, meta-test batch)``: one batch of every :meth:`meta_train_domains` domain,
        concatenated in domain order, then one of the drawn domain."""
        test_domain = self.draw_meta_test_domain()
        mtrain = concat_batches([next(self._domain_iters[d]) for d in self.meta_train_domains(test_domain)])
        return mtrain, next(self._domain_iters[test_domain])

    def meta_passes(self, batches):
        """The meta-train pass, then the meta-test pass at the fast weights; the summed gradient."""
        mtrain_batch, mtest_batch = batches
        mtrain_losses, mtrain_grads = self.train_pass(mtrain_batch, "mtrain")
        steps = meta_step_sizes(self._names, self.meta_lr, self.adaptor_step_factor)
        with self.fast_weights(mtrain_grads, steps):
            mtest_losses, mtest_grads = self.train_pass(mtest_batch, "mtest")
        passes = [("mtrain", mtrain_losses), ("mtest", mtest_losses)]
        # a parameter has a gradient in the meta step when either pass reaches it: its summed gradient is not zero
        return passes, self._sum_gradients(mindspore.mutable(mtrain_grads), mindspore.mutable(mtest_grads))

    @property
    def meta_lr(self) -> float:
        """The meta optimizer's current lr (its first group's; all groups share it in the DR50 configuration)."""
        return float(self.optimizer_meta.param_groups[0]["lr"])

    # ------------------------------------------------------------------------------------------------ state
    def state_dict(self) -> Dict[str, object]:
        """What resuming needs besides model and optimizers: the meta-test RNG, the gradient-presence memory and the
        loaders' positions."""
        state = super().state_dict()
        state.update({"meta_rng": _rng_state(self.meta_rng),
                      "domain_loaders": [loader_state(loader) for loader in self.domain_loaders]})
        return state

    def load_state_dict(self, state: Dict[str, object]) -> None:
        self.meta_rng.set_state(_rng_from_state(state["meta_rng"]))
        super().load_state_dict(state)
        for loader, s in zip(self.domain_loaders, state["domain_loaders"]):
            load_loader_state(loader, s)
        self._domain_iters = [iter(loader) for loader in self.domain_loaders]


def _rng_state(rng: np.random.RandomState) -> Dict[str, object]:
    name, keys, pos, has_gauss, cached = rng.get_state()
    return {"name": name, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)}


def _rng_from_state(state: Dict[str, object]):
    return (state["name"], np.asarray(state["keys"], dtype=np.uint32), int(state["pos"]), int(state["has_gauss"]),
            float(state["cached"]))
