"""Running a model: batch dicts -> validated Tensors -> compiled MindSpore graphs (``mindspore.jit``, the default) or
op-by-op PyNative calls (``compile=False``, config ``MODEL.COMPILE False``, for debugging).

* :class:`EvalPass` - the eval-mode features of a batch of images;
* :class:`TrainPass` - the loss dict of one forward mode (``phase``) and the gradients of its total with respect to
  given Parameters, optionally emulating PyTorch's ``torch.nn.DataParallel`` over R replicas on this device.

Inputs are checked on the host, before the graph runs (shapes, dtypes, the label conditions the losses need), so
that a bad batch fails with a message naming the key and what was expected. Each pass compiles one graph per input
shape (and per phase); the eval pass pads a smaller batch (e.g. a test set's last one) to the largest batch size it
has compiled for, so that a test set costs one compilation.
"""
import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import mindspore
import numpy as np
from mindspore import Tensor, nn, ops
from mindspore.ops import composite as C
from mindspore.ops import functional as F

__all__ = ["EvalPass", "FusedAllReduceSum", "TrainPass", "batch_arrays", "process_chunks", "replica_chunks"]


_HYPER_MAP = C.HyperMap()
_FLATTEN = C.MultitypeFuncGraph("flatten")
_UNFLATTEN = C.MultitypeFuncGraph("unflatten")
_ADD = C.MultitypeFuncGraph("add")


@_FLATTEN.register("Tensor")
def _flatten(tensor):
    return tensor.reshape(-1)


@_UNFLATTEN.register("Tensor", "Number", "Number", "Tuple")
def _unflatten(flat, start, size, shape):
    return flat[start:start + size].reshape(shape)


class FusedAllReduceSum(nn.Cell):
    """The sum of a tuple of Tensors over all processes in one collective call (as DistributedDataParallel's
    buckets do): flattened into one buffer, all-reduced and cut back into the original shapes. ``shapes`` are those
    of the tuple it will sum."""

    def __init__(self, shapes: Sequence[Tuple[int, ...]]):
        super().__init__()
        self.shapes = tuple(tuple(int(d) for d in shape) for shape in shapes)
        self.sizes = tuple(int(np.prod(shape)) for shape in self.shapes)
        self.starts = tuple(int(start) for start in np.cumsum((0,) + self.sizes[:-1]))
        self.all_reduce = ops.AllReduce()

    def construct(self, tensors):
        flat = self.all_reduce(ops.concat(_HYPER_MAP(_FLATTEN, tensors)))
        return _HYPER_MAP(F.partial(_UNFLATTEN, flat), self.starts, self.sizes, self.shapes)


@_ADD.register("Tensor", "Tensor")
def _add(a, b):
    return a + b


def _array(batch: Mapping, key: str, dtype, ndim: int) -> np.ndarray:
    if key not in batch:
        raise KeyError(f"the batch has no {key!r} (keys: {sorted(batch)})")
    value = batch[key]
    value = value.asnumpy() if isinstance(value, Tensor) else np.asarray(value)
    if value.ndim != ndim:
        raise ValueError(f"batch[{key!r}] must be a {ndim}-D array, got shape {value.shape}")
    if dtype == np.int64 and value.size and not np.issubdtype(value.dtype, np.integer):
        raise ValueError(f"batch[{key!r}] must hold integers, got dtype {value.dtype}")
    return np.ascontiguousarray(value, dtype=dtype)


def batch_arrays(batch, *, num_channels: int = 3, training: bool = True, domains: bool = True
                 ) -> Dict[str, np.ndarray]:
    """``images`` (float32, (N, num_channels, H, W), 0..255) and, for training, ``targets`` and (with
    ``domains``) ``domainids`` (int64, (N,)) of a batch dict (numpy arrays, Tensors or lists); a bare image array
    is accepted for evaluation. Raises naming the key and the expected form."""
    if not isinstance(batch, Mapping):
        batch = {"images": batch}
    images = _array(batch, "images", np.float32, 4)
    if images.shape[1] != num_channels or images.shape[0] == 0:
        raise ValueError(f"batch['images'] must be (N, {num_channels}, H, W) with N > 0, got shape {images.shape}")
    out = {"images": images}
    if training:
        keys = ("targets", "domainids") if domains else ("targets",)
        for key in keys:
            out[key] = _array(batch, key, np.int64, 1)
            if out[key].shape[0] != images.shape[0]:
                raise ValueError(f"batch[{key!r}] has {out[key].shape[0]} entries for {images.shape[0]} images")
    return out


def replica_chunks(n: int, replicas: int) -> Tuple[Tuple[int, int], ...]:
    """``(start, size)`` of the contiguous chunks ``torch.nn.DataParallel`` scatters a batch of ``n`` into over
    ``replicas`` devices (``torch.chunk``: chunk size ``ceil(n / replicas)``, so fewer chunks when n is small)."""
    size = int(math.ceil(n / replicas))
    return tuple((start, min(size, n - start)) for start in range(0, n, size))


def process_chunks(n: int, replicas: int, rank: int = 0, world_size: int = 1) -> Tuple[Tuple[int, int], ...]:
    """The chunks of :func:`replica_chunks` that process ``rank`` of ``world_size`` computes: chunks
    ``rank * R / P`` to ``(rank + 1) * R / P - 1`` (all of them for one process). With several processes every
    process needs its share, so the batch must give all R chunks (``n`` >= R and the chunks not collapsing)."""
    chunks = replica_chunks(n, replicas)
    if world_size == 1:
        return chunks
    if replicas % world_size:
        raise ValueError(f"SOLVER.DP_REPLICAS={replicas} must be a multiple of the number of processes "
                         f"{world_size}")
    if len(chunks) != replicas:
        raise ValueError(f"a batch of {n} images gives {len(chunks)} torch.chunk chunks, not SOLVER.DP_REPLICAS="
                         f"{replicas}: with {world_size} processes every replica needs images (use batches that "
                         f"are multiples of {replicas})")
    per_process = replicas // world_size
    return chunks[rank * per_process:(rank + 1) * per_process]


class EvalPass:
    """``features = EvalPass(model)(images)``: the model's eval-mode output for float32 (N, C, H, W) images in
    0..255 (numpy or Tensor, or a batch dict with "images"), as a numpy (N, D) array. The model is put in eval mode
    for the call and restored afterwards."""

    def __init__(self, model, compile: bool = True):
        self.model = model
        self.compile = bool(compile)
        self._batch_size = 0

        def forward(images):
            return model(images)

        self._forward = mindspore.jit(forward) if self.compile else forward

    def __call__(self, images) -> np.ndarray:
        images = batch_arrays(images, num_channels=_num_channels(self.model), training=False)["images"]
        n = images.shape[0]
        if self.compile and n < self._batch_size:
            pad = np.zeros((self._batch_size - n,) + images.shape[1:], dtype=np.float32)
            images = np.concatenate([images, pad])
        self._batch_size = max(self._batch_size, images.shape[0])
        training = self.model.training
        self.model.set_train(False)
        try:
            features = self._forward(Tensor(images)).asnumpy()
        finally:
            self.model.set_train(training)
        return features[:n]


def _num_channels(model) -> int:
    return int(getattr(model, "num_channels", 3))


class TrainPass:
    """Loss dict and gradients of one forward pass of a model in training mode.

    The model is called as ``model(images, targets, domainids, phase, update_stats)`` and must return a dict of
    scalar losses in training mode; it provides ``loss_names(phase)`` (the dict's keys), ``is_meta`` (whether it
    takes domain ids) and optionally ``check_labels(targets, domainids, phase)`` (host-side validation of a batch or
    DataParallel chunk, raising ValueError), as :class:`~fastreid_ms.modeling.meta_arch.Baseline` does.

    ``losses, grads = TrainPass(model, weights)(batch, phase)``: ``losses`` maps the loss names
    (``model.loss_names(phase)``) to scalar Tensors and ``grads`` are the gradients of their sum with respect to
    ``weights`` (a sequence of the model's Parameters; zero for parameters the losses do not reach, where PyTorch
    would leave ``.grad`` None).

    ``replicas = R > 1`` reproduces ``torch.nn.DataParallel`` over R devices: the batch is cut into
    ``torch.chunk``'s contiguous chunks, each chunk's losses are computed with its own batch statistics, every loss
    is the mean over the chunks (each chunk's gradient is taken of its losses / R and the chunks' gradients are
    summed, as DataParallel's backward does), and only the first chunk updates running statistics (DataParallel
    keeps replica 0's buffers). The chunks run one after the other through one compiled graph per chunk shape, so
    R costs no extra compilation and holds one chunk's activations at a time. With ``world_size = P`` processes
    every process is given the same whole batch and computes its share of the chunks (:func:`process_chunks`), and
    the gradients are summed over the processes with one fused all-reduce (:class:`FusedAllReduceSum`), which gives
    the gradient of the mean over all R chunks; the returned losses are the means over this process's chunks. Only
    process 0 (chunk 0) updates running statistics; the trainer gives the others process 0's before they are used.

    ``loss_scale`` (None or a scalar Tensor, for mixed precision) multiplies the differentiated total; the returned
    losses are unscaled.
    """

    def __init__(self, model, weights: Sequence, compile: bool = True, replicas: int = 1, world_size: int = 1,
                 rank: int = 0):
        if replicas < 1:
            raise ValueError(f"SOLVER.DP_REPLICAS must be >= 1, got {replicas}")
        if replicas % world_size:
            raise ValueError(f"SOLVER.DP_REPLICAS={replicas} must be a multiple of the number of processes "
                             f"{world_size} (each process computes DP_REPLICAS / processes chunks of every batch)")
        self.model = model
        self.weights = list(weights)
        self.compile = bool(compile)
        self.replicas = int(replicas)
        self.world_size = int(world_size)
        self.rank = int(rank)
        self.loss_scale = None
        self._unit_scale = Tensor(1.0, mindspore.float32)
        self._passes = {}

        def add(accumulated, new):
            return _HYPER_MAP(_ADD, accumulated, new)

        self._add = mindspore.jit(add) if self.compile else add
        self._all_reduce = None
        if self.world_size > 1:
            reduce_cell = FusedAllReduceSum([w.shape for w in self.weights])

            def all_reduce(grads):
                return reduce_cell(grads)

            self._all_reduce = mindspore.jit(all_reduce) if self.compile else all_reduce

    def __call__(self, batch, phase: str = "basic"):
        if not self.model.training:
            raise RuntimeError("TrainPass needs the model in training mode (model.set_train(True))")
        names = self.model.loss_names(phase)
        meta = bool(getattr(self.model, "is_meta", False))
        arrays = batch_arrays(batch, num_channels=_num_channels(self.model), domains=meta)
        chunks = process_chunks(arrays["images"].shape[0], self.replicas, self.rank, self.world_size)
        for start, size in chunks:
            self._check_labels(arrays, start, size, phase, meta)
        scale = self._unit_scale if self.loss_scale is None else self.loss_scale
        if self.replicas > 1:
            scale = scale / self.replicas
        total = None
        for index, (start, size) in enumerate(chunks):
            update_stats = phase == "basic" and self.rank == 0 and index == 0
            run = self._pass(phase, names, update_stats, (size,) + arrays["images"].shape[1:])
            end = start + size
            domainids = Tensor(arrays["domainids"][start:end]) if meta else None
            values, grads = run(Tensor(arrays["images"][start:end]), Tensor(arrays["targets"][start:end]),
                                domainids, scale)
            new = mindspore.mutable(tuple(values) + tuple(grads))
            total = new if total is None else self._add(mindspore.mutable(total), new)
        values, grads = tuple(total[:len(names)]), tuple(total[len(names):])
        if len(chunks) > 1:
            values = tuple(v / len(chunks) for v in values)
        if self._all_reduce is not None:
            grads = self._all_reduce(mindspore.mutable(grads))
        return dict(zip(names, values)), grads

    def _pass(self, phase: str, names: Tuple[str, ...], update_stats: bool, shape: Tuple[int, ...]):
        key = (phase, update_stats, shape)
        if key not in self._passes:
            self._passes[key] = self._build(phase, names, update_stats)
        return self._passes[key]

    def _check_labels(self, arrays, start, size, phase, meta):
        check = getattr(self.model, "check_labels", None)
        if check is not None:
            check(arrays["targets"][start:start + size],
                  arrays["domainids"][start:start + size] if meta else None, phase)

    def _build(self, phase: str, names: Tuple[str, ...], update_stats: bool):
        model = self.model

        def forward(images, targets, domainids, scale):
            losses = model(images, targets, domainids, phase, update_stats)
            values = [losses[k] for k in names]
            total = values[0]
            for value in values[1:]:
                total = total + value
            return total * scale, tuple(values)

        grad_fn = mindspore.value_and_grad(forward, None, self.weights, has_aux=True)

        def step(images, targets, domainids, scale):
            (_, values), grads = grad_fn(images, targets, domainids, scale)
            return values, grads

        return mindspore.jit(step) if self.compile else step
