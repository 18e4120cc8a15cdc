"""Dataset evaluator interface and the inference loop (``fastreid/evaluation/evaluator.py``)."""
import datetime
import logging
import time
from contextlib import contextmanager

import numpy as np

from fastreid_ms.modeling.passes import EvalPass

__all__ = ["DatasetEvaluator", "inference_on_dataset", "inference_context"]

logger = logging.getLogger(__name__)

#: Seconds between two progress lines of :func:`inference_on_dataset`.
_LOG_PERIOD_S = 30.0


class DatasetEvaluator:
    """Accumulates the inputs/outputs of a dataset with :meth:`process` and summarises them with :meth:`evaluate`."""

    def reset(self):
        """Prepare a new round of evaluation."""

    def process(self, inputs, outputs):
        """Take one batch: ``inputs`` as given to the model, ``outputs`` what it returned (as numpy)."""

    def evaluate(self):
        """Return a dict of metric name -> score (may be empty on non-main processes)."""


@contextmanager
def inference_context(model):
    """Put a MindSpore Cell in eval mode (``set_train(False)``) and restore its previous mode afterwards, also
    when the body raises."""
    training = bool(getattr(model, "training", False))
    model.set_train(False)
    try:
        yield
    finally:
        model.set_train(training)


def _features(eval_pass: EvalPass, inputs, flip: bool = False) -> np.ndarray:
    """The eval pass's features of the batch images, horizontally flipped when ``flip``, as (N, D) float32."""
    images = inputs["images"]
    images = np.asarray(images.asnumpy() if hasattr(images, "asnumpy") else images)
    if flip:
        images = np.ascontiguousarray(images[..., ::-1])
    out = np.asarray(eval_pass(images)).astype(np.float32, copy=False)
    if out.ndim != 2 or out.shape[0] != images.shape[0]:
        raise ValueError(f"the model returned an output of shape {out.shape} for a batch of {images.shape[0]} "
                         f"images; in eval mode it must return the (N, D) features")
    return out


def inference_on_dataset(model, data_loader, evaluator: DatasetEvaluator, flip_test: bool = False,
                         compile: bool = True):
    """Run ``model`` (a MindSpore Cell, in eval mode for the duration, through its compiled eval pass unless
    ``compile=False``; or an :class:`~fastreid_ms.modeling.passes.EvalPass`, whose compiled graph is then reused)
    over ``data_loader`` (an iterable of batch dicts with "images" (N,3,H,W) float32 0..255, "targets",
    "camids"[, "img_paths"]), feed each batch and its features to ``evaluator`` and return ``evaluator.evaluate()``
    ({} when it returns None).

    Flip test (``flip_test``): the features of the horizontally flipped images are averaged with those of the
    original images; each forward pass gets its own copy of the batch images. The reference instead flips the batch
    that ``preprocess_image`` already normalised in place, so its flipped pass normalises twice;
    that bug is not reproduced.

    Progress is logged with throughput and ETA (timing starts after up to 5 warm-up batches).
    """
    eval_pass = model if isinstance(model, EvalPass) else EvalPass(model, compile=compile)
    model = eval_pass.model
    total = len(data_loader) if hasattr(data_loader, "__len__") else None
    logger.info("Start inference on %s batches", total if total is not None else "an unknown number of")
    evaluator.reset()
    num_warmup = min(5, total - 1) if total else 5
    start_time = last_log = time.perf_counter()
    compute_time = 0.0
    num_batches = num_images = 0
    with inference_context(model):
        for idx, inputs in enumerate(data_loader):
            if idx == num_warmup:
                start_time, compute_time = time.perf_counter(), 0.0
            t0 = time.perf_counter()
            outputs = _features(eval_pass, inputs)
            if flip_test:
                outputs = (outputs + _features(eval_pass, inputs, flip=True)) / np.float32(2)
            compute_time += time.perf_counter() - t0
            evaluator.process(inputs, outputs)
            num_batches, num_images = idx + 1, num_images + outputs.shape[0]
            now = time.perf_counter()
            if idx >= num_warmup and now - last_log >= _LOG_PERIOD_S:
                last_log = now
                timed = idx + 1 - num_warmup
                eta = "unknown" if total is None else \
                    str(datetime.timedelta(seconds=int((now - start_time) / timed * (total - idx - 1))))
                logger.info("Inference done %d/%s. %.4f s / batch. ETA=%s", idx + 1, total, compute_time / timed, eta)
    timed = max(1, num_batches - num_warmup if num_batches > num_warmup else num_batches)
    total_time = time.perf_counter() - start_time
    logger.info("Total inference time: %s (%.6f s / batch), %d images in %d batches",
                datetime.timedelta(seconds=int(total_time)), total_time / timed, num_images, num_batches)
    logger.info("Total inference pure compute time: %s (%.6f s / batch)",
                datetime.timedelta(seconds=int(compute_time)), compute_time / timed)
    results = evaluator.evaluate()
    return {} if results is None else results
