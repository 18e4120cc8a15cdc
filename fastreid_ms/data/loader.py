"""``ReidDataLoader``: batches of a ``CommDataset`` through a ``mindspore.dataset`` pipeline.

Pipeline: ``GeneratorDataset`` over the batch stream of the sampler (one row = the indices of one batch) ->
``map`` that reads and transforms the whole batch in ``num_workers`` worker processes (a background thread when
``num_workers`` is 0) -> iterator with a bounded prefetch. Batches come out in sampler order.

Determinism and resume: sample ``j`` of batch ``b`` is transformed with its own generator seeded from
``(seed, b * batch_size + j)``, and batch-level transforms with one seeded from ``(seed, b)``. A batch is thus a
function of the seed and its position only - not of the number of workers, of prefetching or of the process that
loads it - and the stream can restart at any batch ``n`` by skipping ``n * batch_size`` sampler indices without
loading images.
"""
import itertools
import logging
import re
from typing import Iterator

import numpy as np

from .data_utils import ImageReadError

logger = logging.getLogger(__name__)

_SAMPLE_STREAM, _BATCH_STREAM = 0, 1
_IMAGE_READ_ERROR = re.compile(r"ImageReadError: ((?:cannot read image|image file not found).*)")


def sample_rng(seed: int, position: int) -> np.random.Generator:
    """The generator of the sample at ``position`` in the stream."""
    return np.random.default_rng(np.random.SeedSequence([seed, _SAMPLE_STREAM, position]))


def batch_rng(seed: int, batch_index: int) -> np.random.Generator:
    """The generator of the batch-level transforms of batch ``batch_index``."""
    return np.random.default_rng(np.random.SeedSequence([seed, _BATCH_STREAM, batch_index]))


class _BatchIndexStream:
    """Iterable source of the GeneratorDataset: ``(batch_index, indices)`` rows from ``start_batch`` on."""

    def __init__(self, sampler, batch_size: int, start_batch: int, drop_last: bool):
        self.sampler, self.batch_size, self.start_batch, self.drop_last = sampler, batch_size, start_batch, drop_last

    def __iter__(self):
        indices = iter(self.sampler)
        skip = self.start_batch * self.batch_size
        if skip:
            next(itertools.islice(indices, skip - 1, skip), None)
        for batch_index in itertools.count(self.start_batch):
            batch = list(itertools.islice(indices, self.batch_size))
            if not batch or (self.drop_last and len(batch) < self.batch_size):
                return
            yield np.int64(batch_index), np.asarray(batch, dtype=np.int64)


class _BatchReader:
    """The map operation (runs in the workers): read and transform every image of one batch."""

    def __init__(self, dataset, batch_size: int, seed: int):
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed

    def __call__(self, batch_index, indices):
        batch_index = int(batch_index)
        first = batch_index * self.batch_size
        images = np.stack([self.dataset.load(int(index), sample_rng(self.seed, first + j))
                           for j, index in enumerate(indices)])
        transform = self.dataset.transform
        if transform is not None and getattr(transform, "batch_transforms", None):
            images = transform.apply_batch(images, batch_rng(self.seed, batch_index))
        return np.ascontiguousarray(images, dtype=np.float32), indices


class ReidDataLoader:
    """Iterable of batch dicts ``{"images": float32 (N,3,H,W) 0..255, "targets", "camids", "domainids": int64 (N,),
    "img_paths": str (N,)}`` (numpy arrays).

    Args:
        dataset: a ``CommDataset`` (its ``transform`` is applied in the workers).
        sampler: iterable of dataset indices (infinite for training).
        batch_size: images per batch.
        num_workers: worker processes (``DATALOADER.NUM_WORKERS``); 0 = one background thread in this process.
        drop_last: drop a final incomplete batch (training); False for testing.
        seed: augmentation seed.
        prefetch_batches: batches prepared ahead of the consumer (bounds memory: one 64 x 3 x 256 x 128 batch is
            25 MB).
        start_batch: first batch of the stream (as after ``load_state_dict({"batches_consumed": start_batch})``).

    ``state_dict()`` / ``load_state_dict()`` save and restore the position (batches handed to the caller, not the
    prefetched ones) and the seeds; after ``load_state_dict`` the next ``iter()`` resumes exactly there.
    Each ``iter()`` starts a new pipeline at the current position and stops the previous one.
    """

    def __init__(self, dataset, sampler, batch_size: int, *, num_workers: int = 0, drop_last: bool = True,
                 seed: int = 0, prefetch_batches: int = 2, start_batch: int = 0):
        if batch_size <= 0:
            raise ValueError(f"batch size must be positive, got {batch_size}")
        if num_workers < 0:
            raise ValueError(f"DATALOADER.NUM_WORKERS must be >= 0, got {num_workers}")
        self.dataset = dataset
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.drop_last = drop_last
        self.seed = int(seed)
        self.prefetch_batches = max(1, int(prefetch_batches))
        self._batches_consumed = int(start_batch)
        self._iterator = None

    @property
    def batches_consumed(self) -> int:
        return self._batches_consumed

    def state_dict(self) -> dict:
        state = {"batches_consumed": self._batches_consumed, "seed": self.seed, "batch_size": self.batch_size}
        if hasattr(self.sampler, "seed"):
            state["sampler_seed"] = self.sampler.seed
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore a position (and the seeds, so that a run with a random SEED resumes its own stream)."""
        if "batches_consumed" not in state:
            raise KeyError("loader state has no 'batches_consumed' entry")
        if "batch_size" in state and int(state["batch_size"]) != self.batch_size:
            raise ValueError(f"loader state was saved with batch size {state['batch_size']}, this loader uses "
                             f"{self.batch_size}; batches_consumed would point elsewhere in the stream")
        self.close()
        self._batches_consumed = int(state["batches_consumed"])
        if "seed" in state:
            self.seed = int(state["seed"])
        if "sampler_seed" in state and hasattr(self.sampler, "seed"):
            self.sampler.seed = int(state["sampler_seed"])

    def _build_pipeline(self, start_batch: int):
        import mindspore.dataset as ds

        source = _BatchIndexStream(self.sampler, self.batch_size, start_batch, self.drop_last)
        data = ds.GeneratorDataset(source, column_names=["batch_index", "indices"], shuffle=False)
        reader = _BatchReader(self.dataset, self.batch_size, self.seed)
        data = data.map(operations=reader, input_columns=["batch_index", "indices"],
                        output_columns=["images", "indices"], num_parallel_workers=max(1, self.num_workers),
                        python_multiprocessing=self.num_workers > 0)
        previous = ds.config.get_prefetch_size()
        ds.config.set_prefetch_size(self.prefetch_batches)
        try:
            return data.create_tuple_iterator(num_epochs=1, output_numpy=True)
        finally:
            ds.config.set_prefetch_size(previous)

    @property
    def infinite(self) -> bool:
        """True for training samplers (no ``__len__``): the stream never ends and ``iter()`` resumes the position;
        a finite loader starts from its first batch at every ``iter()``."""
        return not hasattr(self.sampler, "__len__")

    def __len__(self) -> int:
        if self.infinite:
            raise TypeError("an infinite (training) loader has no length; use len(loader.dataset) // batch size")
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[dict]:
        self.close()
        if not self.infinite:
            self._batches_consumed = 0
        self._iterator = self._build_pipeline(self._batches_consumed)
        return _LoaderIterator(self, self._iterator)

    def close(self) -> None:
        """Stop the running pipeline (and its worker processes)."""
        if self._iterator is not None:
            self._iterator.stop()
            self._iterator = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown may already have torn MindSpore down
            pass


class _LoaderIterator:
    def __init__(self, loader: ReidDataLoader, iterator):
        self.loader, self.iterator = loader, iterator

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        try:
            images, indices = next(self.iterator)
        except StopIteration:
            self.loader.close()
            raise
        except RuntimeError as e:
            match = _IMAGE_READ_ERROR.search(str(e))
            if match:
                raise ImageReadError(match.group(1).strip()) from None
            raise
        batch = {"images": images}
        batch.update(self.loader.dataset.batch_info(indices))
        self.loader._batches_consumed += 1
        return batch

