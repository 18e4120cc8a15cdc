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
from mindspore import Tensor, ops
from mindspore.ops import composite as C
from mindspore.ops import functional as F

__all__ = ["EvalPass", "TrainPass", "batch_arrays", "replica_chunks"]


_AVERAGE = C.MultitypeFuncGraph("average_over_processes")
_HYPER_MAP = C.HyperMap()


@_AVERAGE.register("Function", "Number", "Tensor")
def _average(all_reduce, world, grad):
    return all_reduce(grad) / world


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

    ``replicas = R > 1`` reproduces ``torch.nn.DataParallel`` over R devices on this one: the batch is cut into
    ``torch.chunk``'s contiguous chunks, each chunk's losses are computed with its own batch statistics, every loss
    is the mean over the chunks, and only the first chunk updates running statistics (DataParallel keeps replica
    0's buffers). With several processes the gradients are averaged across them (all-reduce), as
    DistributedDataParallel does.

    ``loss_scale`` (None or a scalar Tensor, for mixed precision) multiplies the differentiated total; the returned
    losses are unscaled.
    """

    def __init__(self, model, weights: Sequence, compile: bool = True, replicas: int = 1, world_size: int = 1):
        if replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {replicas}")
        self.model = model
        self.weights = list(weights)
        self.compile = bool(compile)
        self.replicas = int(replicas)
        self.world_size = int(world_size)
        self.loss_scale = None
        self._unit_scale = Tensor(1.0, mindspore.float32)
        self._passes = {}

    def __call__(self, batch, phase: str = "basic"):
        if not self.model.training:
            raise RuntimeError("TrainPass needs the model in training mode (model.set_train(True))")
        names = self.model.loss_names(phase)
        meta = bool(getattr(self.model, "is_meta", False))
        arrays = batch_arrays(batch, num_channels=_num_channels(self.model), domains=meta)
        chunks = replica_chunks(arrays["images"].shape[0], self.replicas)
        for start, size in chunks:
            self._check_labels(arrays, start, size, phase, meta)
        key = (phase, chunks, arrays["images"].shape)
        run = self._passes.get(key)
        if run is None:
            run = self._build(phase, names, chunks)
            self._passes[key] = run
        domainids = Tensor(arrays["domainids"]) if meta else None
        scale = self._unit_scale if self.loss_scale is None else self.loss_scale
        values, grads = run(Tensor(arrays["images"]), Tensor(arrays["targets"]), domainids, scale)
        return dict(zip(names, values)), grads

    def _check_labels(self, arrays, start, size, phase, meta):
        check = getattr(self.model, "check_labels", None)
        if check is not None:
            check(arrays["targets"][start:start + size],
                  arrays["domainids"][start:start + size] if meta else None, phase)

    def _build(self, phase: str, names: Tuple[str, ...], chunks: Tuple[Tuple[int, int], ...]):
        model, count = self.model, len(chunks)
        basic = phase == "basic"
        world = self.world_size

        def forward(images, targets, domainids, scale):
            if count == 1:
                losses = model(images, targets, domainids, phase, basic)
                sums = [losses[k] for k in names]
            else:
                sums = None
                for index, (start, size) in enumerate(chunks):
                    end = start + size
                    chunk_domains = None if domainids is None else domainids[start:end]
                    losses = model(images[start:end], targets[start:end], chunk_domains, phase, basic and index == 0)
                    values = [losses[k] for k in names]
                    sums = values if sums is None else [a + b for a, b in zip(sums, values)]
                sums = [v / count for v in sums]
            total = sums[0]
            for value in sums[1:]:
                total = total + value
            return total * scale, tuple(sums)

        grad_fn = mindspore.value_and_grad(forward, None, self.weights, has_aux=True)
        average = F.partial(_AVERAGE, ops.AllReduce(), float(world)) if world > 1 else None

        def step(images, targets, domainids, scale):
            (_, values), grads = grad_fn(images, targets, domainids, scale)
            if average is not None:
                grads = _HYPER_MAP(average, grads)
            return values, grads

        return mindspore.jit(step) if self.compile else step
