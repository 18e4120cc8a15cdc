"""ACL-DGReID's meta-learning training step (reference ``engine/train_loop.py`` ``run_step_meta_learning1/2`` and
``engine/defaults.py`` ``DefaultTrainer.run_step``) on MindSpore.

Per iteration: one *basic* step (``SOLVER.META.FIRST_ITER_BASIC_STEPS`` of them at iteration 0) on the mixed loader
with the main optimizer, BN running statistics updated; then, every ``SOLVER.META.PERIOD`` iterations, one *meta*
step with the meta optimizer:

1. a meta-test domain is drawn uniformly (the trainer's own seeded RandomState);
2. meta-train: one batch of every other source domain, concatenated in domain order; ``g = d L_mtr / d theta``;
3. meta-test: the held-out domain's batch through the fast weights ``theta' = theta - alpha * stop_gradient(g)``
   (``alpha`` = the meta optimizer's current lr, x ``SOLVER.META.ADAPTOR_STEP_FACTOR`` for ``adaptor`` parameters);
   ``g' = d L_mte(theta') / d theta`` (= dL/dtheta' since the fast gradient is a constant: first order). The
   trainer evaluates it by writing ``theta'`` into the Parameters for the meta-test pass (:func:`fast_weights`) and
   differentiating the plain forward there, which equals the model's functional fast-weight path
   (``opt.fast_grads``, what the reference does) and lets the meta-test pass run the same (compiled) graph as the
   other passes;
4. the meta optimizer steps on ``g + g'`` (the gradient of ``L_mtr + L_mte``).

Both meta forwards use batch statistics without touching the running statistics ('hold').

The reference (PyTorch) leaves ``.grad`` None for parameters a loss does not reach; MindSpore returns zeros. An
all-zero gradient is taken as "no gradient" (:func:`fastreid_ms.solver.optim.grad_presence`), and
``SOLVER.ZERO_GRAD_KEEPS_TENSORS`` (default True, the PyTorch 1.6 the reference ran on) makes a parameter that
once had a gradient keep being updated (weight decay, momentum) by both optimizers, as PyTorch 1.x's
``zero_grad()`` does.

``SOLVER.EMULATE_DP_REPLICAS = n > 1`` reproduces the reference's ``torch.nn.DataParallel`` over n GPUs on one
device: every batch is cut into n contiguous chunks (``torch.chunk`` sizes), each chunk's losses are computed with
its own BN batch statistics, the optimized loss is the mean of the chunk totals, and running statistics are updated
from the first chunk only (REFERENCE.md §5.7). With n = 1 (default) the step is the reference code on one device.
"""
import logging
import math
import time
from contextlib import contextmanager
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np

from fastreid_ms.modeling.ops import MetaOpt, meta_step_sizes, opt_setting
from fastreid_ms.solver.optim import StickyGradMask, grad_presence
from .train_loop import SimpleTrainer, _load_loader_state, _loader_state, _sum_losses, average_gradients

__all__ = ["MetaLearningTrainer", "concat_batches", "split_batch", "fast_weights"]

logger = logging.getLogger(__name__)


def concat_batches(batches: Sequence[Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """Concatenate batch dicts key by key along the first axis (the reference's ``torch.cat`` of domain batches)."""
    keys = list(batches[0])
    for b in batches[1:]:
        if list(b) != keys:
            raise KeyError(f"cannot concatenate batches with different keys: {keys} vs {list(b)}")
    return {k: np.concatenate([np.asarray(b[k]) for b in batches], axis=0) for k in keys}


def split_batch(batch: Dict[str, np.ndarray], chunks: int) -> List[Dict[str, np.ndarray]]:
    """Contiguous chunks of a batch dict as ``torch.nn.DataParallel`` scatters it (``torch.chunk``: chunk size
    ``ceil(N / chunks)``, so fewer chunks when N is small)."""
    n = len(batch["images"])
    size = int(math.ceil(n / chunks))
    return [{k: np.asarray(v)[start:start + size] for k, v in batch.items()} for start in range(0, n, size)]


@contextmanager
def fast_weights(params: Sequence, fast_grads: Mapping[str, object], step_sizes: Mapping[str, float]):
    """Within the block, every Parameter with an entry in ``fast_grads`` holds its fast weight
    ``param - step_sizes[name] * fast_grads[name]`` (the same float32 expression as
    :func:`fastreid_ms.modeling.ops.fast_param`); the slow values are restored on exit, also after an error."""
    saved = []
    try:
        for p in params:
            grad = fast_grads.get(p.name)
            if grad is None:
                continue
            saved.append((p, p.value()))
            p.set_data(p.value() - float(step_sizes[p.name]) * grad)
        yield
    finally:
        for p, value in saved:
            p.set_data(value)


class MetaLearningTrainer(SimpleTrainer):
    """The ACL-DGReID trainer step (see the module docstring).

    Args:
        model: a ``Baseline`` with a ``MetaEmbeddingHead`` (it takes ``opt``).
        data_loader: the mixed-domain training loader (basic steps).
        domain_loaders: one training loader per source domain, in ``DATASETS.NAMES`` order (meta steps).
        optimizer / optimizer_meta: the main optimizer and the meta optimizer (same Parameters, same order).
        meta_period, first_iter_basic_steps, adaptor_step_factor: ``SOLVER.META.*``.
        zero_grad_keeps_tensors: ``SOLVER.ZERO_GRAD_KEEPS_TENSORS``.
        dp_replicas: ``SOLVER.EMULATE_DP_REPLICAS``.
        seed: seed of the meta-test domain draws.
    """

    def __init__(self, model, data_loader, domain_loaders: Sequence, optimizer, optimizer_meta, *,
                 meta_period: int = 3, first_iter_basic_steps: int = 10, adaptor_step_factor: float = 0.5,
                 zero_grad_keeps_tensors: bool = True, dp_replicas: int = 1, seed: Optional[int] = None):
        super().__init__(model, data_loader, optimizer)
        if [id(p) for p in optimizer.parameters] != [id(p) for p in optimizer_meta.parameters]:
            raise ValueError("the main and the meta optimizer must hold the same Parameters in the same order")
        if meta_period < 1 or first_iter_basic_steps < 1 or dp_replicas < 1:
            raise ValueError(f"SOLVER.META.PERIOD ({meta_period}), SOLVER.META.FIRST_ITER_BASIC_STEPS "
                             f"({first_iter_basic_steps}) and SOLVER.EMULATE_DP_REPLICAS ({dp_replicas}) must be >= 1")
        if meta_period and len(domain_loaders) < 2:
            raise ValueError(f"meta-learning needs at least 2 source domains (DATASETS.NAMES), got "
                             f"{len(domain_loaders)}")
        self.domain_loaders = list(domain_loaders)
        self._domain_iters = [iter(loader) for loader in self.domain_loaders]
        self.optimizer_meta = optimizer_meta
        self.meta_period = int(meta_period)
        self.first_iter_basic_steps = int(first_iter_basic_steps)
        self.adaptor_step_factor = float(adaptor_step_factor)
        self.dp_replicas = int(dp_replicas)
        self.grad_mask = StickyGradMask(keeps_tensors=zero_grad_keeps_tensors)
        self.meta_rng = np.random.RandomState(seed)
        self._names = [p.name for p in self.weights]

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
        """``run_step_meta_learning1``: mixed batch, 'basic' opt (running statistics updated), main optimizer.
        Returns the loss dict and the gradients (aligned with :attr:`weights`)."""
        start = time.perf_counter()
        batch = next(self._data_loader_iter)
        data_time = time.perf_counter() - start
        loss_dict, grads = self.losses_and_grads(batch, opt_setting("basic"))
        self._write_metrics(loss_dict, data_time, [("basic", loss_dict)])
        self.optimizer.step(grads, self.grad_mask.mask(self.weights, grad_presence(grads)))
        return loss_dict, grads

    def run_meta_step(self, meta_test_domain: Optional[int] = None):
        """``run_step_meta_learning2``: meta-train on the other domains, meta-test on ``meta_test_domain`` (drawn
        uniformly when None) through first-order fast weights, one meta-optimizer step on the summed gradient.
        Returns the meta-train and meta-test loss dicts and the summed gradients."""
        start = time.perf_counter()
        num_domains = len(self.domain_loaders)
        if meta_test_domain is None:
            meta_test_domain = self.draw_meta_test_domain()
        mtrain_batch = concat_batches([next(self._domain_iters[d]) for d in range(num_domains)
                                       if d != meta_test_domain])
        mtest_batch = next(self._domain_iters[meta_test_domain])
        data_time = time.perf_counter() - start

        mtrain_losses, mtrain_grads = self.losses_and_grads(mtrain_batch, opt_setting("mtrain"))
        present = grad_presence(mtrain_grads)
        fast_grads = {name: g for name, g, has in zip(self._names, mtrain_grads, present) if has}
        step_sizes = meta_step_sizes(fast_grads, self.meta_lr, self.adaptor_step_factor)
        with fast_weights(self.weights, fast_grads, step_sizes):
            mtest_losses, mtest_grads = self.losses_and_grads(mtest_batch, opt_setting("mtest"))

        grads = tuple(a + b for a, b in zip(mtrain_grads, mtest_grads))
        merged = dict(mtrain_losses)
        for k, v in mtest_losses.items():
            merged[k if k not in merged else f"{k}_mtest"] = v
        self._write_metrics(merged, data_time, [("mtrain", mtrain_losses), ("mtest", mtest_losses)])
        self.optimizer_meta.step(grads, self.grad_mask.mask(self.weights, grad_presence(grads)))
        return mtrain_losses, mtest_losses, grads

    def draw_meta_test_domain(self) -> int:
        """The held-out domain of the next meta step: uniform over the source domains (the reference's
        ``np.random.choice(3)``), from the trainer's own seeded RandomState."""
        return int(self.meta_rng.choice(len(self.domain_loaders)))

    @property
    def meta_lr(self) -> float:
        """The meta optimizer's current lr (its first group's; all groups share it in the DR50 configuration)."""
        return float(self.optimizer_meta.param_groups[0]["lr"])

    # ------------------------------------------------------------------------------------------------ losses
    def losses_and_grads(self, batch: Dict[str, np.ndarray], opt: MetaOpt):
        """Loss dict (mean over emulated DataParallel replicas) and gradients of its total wrt :attr:`weights`."""
        if self.dp_replicas == 1:
            loss_dict, _, grads = self.loss_and_grads(batch, self.weights, opt)
            return loss_dict, grads
        import mindspore

        chunks = split_batch(batch, self.dp_replicas)
        chunk_opts = [opt] + [MetaOpt(type=opt.type, type_running_stats="hold", meta=opt.meta,
                                      fast_grads=opt.fast_grads, step_sizes=opt.step_sizes)] * (len(chunks) - 1)
        names: List[str] = []

        def forward():
            per_chunk = [self.model(chunk, chunk_opt) for chunk, chunk_opt in zip(chunks, chunk_opts)]
            names[:] = list(per_chunk[0])
            means = [_sum_losses([d[k] for d in per_chunk]) / len(per_chunk) for k in names]
            return (_sum_losses(means), *means)

        outputs, grads = mindspore.value_and_grad(forward, None, list(self.weights), has_aux=True)()
        return dict(zip(names, outputs[1:])), average_gradients(grads)

    # ------------------------------------------------------------------------------------------------ state
    def state_dict(self) -> Dict[str, object]:
        """What resuming needs besides model and optimizers: the meta-test RNG, the gradient-presence memory and the
        loaders' positions."""
        ever = self.grad_mask.mask(self.weights, [False] * len(self.weights))
        state = super().state_dict()
        state.update({"meta_rng": _rng_state(self.meta_rng),
                      "grad_ever": [n for n, had in zip(self._names, ever) if had],
                      "domain_loaders": [_loader_state(loader) for loader in self.domain_loaders]})
        return state

    def load_state_dict(self, state: Dict[str, object]) -> None:
        self.meta_rng.set_state(_rng_from_state(state["meta_rng"]))
        ever = set(state["grad_ever"])
        self.grad_mask.reset()
        self.grad_mask.mask(self.weights, [n in ever for n in self._names])
        super().load_state_dict(state)
        for loader, s in zip(self.domain_loaders, state["domain_loaders"]):
            _load_loader_state(loader, s)
        self._domain_iters = [iter(loader) for loader in self.domain_loaders]


def _rng_state(rng: np.random.RandomState) -> Dict[str, object]:
    name, keys, pos, has_gauss, cached = rng.get_state()
    return {"name": name, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)}


def _rng_from_state(state: Dict[str, object]):
    return (state["name"], np.asarray(state["keys"], dtype=np.uint32), int(state["pos"]), int(state["has_gauss"]),
            float(state["cached"]))

