"""Identity (P x K) samplers of FastReID (``triplet_sampler.py``)."""
import itertools
from collections import defaultdict
from typing import Iterator, List, Optional, Sequence

import numpy as np

from .data_sampler import resolve_rank, shared_random_seed


def reorder_index(batch_indices: List[int], world_size: int) -> List[int]:
    """Interleave a global batch so that ``islice(start=rank, step=world_size)`` hands rank r the r-th contiguous
    chunk (each rank then holds whole identities)."""
    mini_batch_size = len(batch_indices) // world_size
    return [batch_indices[i + j * mini_batch_size] for i in range(mini_batch_size) for j in range(world_size)]


def no_index(values: Sequence, excluded) -> List[int]:
    """Positions in ``values`` whose value differs from ``excluded``."""
    return [i for i, v in enumerate(values) if v != excluded]


class _IdentitySampler:
    """Shared set-up: pid -> item indices, sorted pids, P = mini_batch_size // K, global batch = mini x world."""

    def __init__(self, data_source: Sequence, mini_batch_size: int, num_instances: int, seed: Optional[int] = None,
                 rank: Optional[int] = None, world_size: Optional[int] = None):
        if num_instances <= 0 or mini_batch_size % num_instances != 0:
            raise ValueError(f"{type(self).__name__}: batch size {mini_batch_size} must be a positive multiple of "
                             f"DATALOADER.NUM_INSTANCE={num_instances}")
        self.data_source = data_source
        self.num_instances = num_instances
        self.num_pids_per_batch = mini_batch_size // num_instances
        self._rank, self._world_size = resolve_rank(rank, world_size)
        self.batch_size = mini_batch_size * self._world_size
        self.pid_index = defaultdict(list)
        for index, info in enumerate(data_source):
            self.pid_index[info[1]].append(index)
        self.pids = sorted(self.pid_index)
        self.num_identities = len(self.pids)
        needed = self.num_pids_per_batch * self._world_size
        if self.num_identities < needed:
            raise ValueError(f"{type(self).__name__}: a batch needs {needed} identities ({mini_batch_size} images / "
                             f"{num_instances} per id) but the data has only {self.num_identities}; lower "
                             f"SOLVER.IMS_PER_BATCH or raise DATALOADER.NUM_INSTANCE")
        self._seed = int(shared_random_seed() if seed is None else seed)

    @property
    def seed(self) -> int:
        return self._seed

    @seed.setter
    def seed(self, value: int) -> None:
        """Restart the stream from another seed (used when a loader's state is restored)."""
        self._seed = int(value)

    def __iter__(self) -> Iterator[int]:
        yield from itertools.islice(self._infinite_indices(), self._rank, None, self._world_size)

    def _infinite_indices(self) -> Iterator[int]:
        raise NotImplementedError


class NaiveIdentitySampler(_IdentitySampler):
    """P ids x K images per batch, infinite (the reference algorithm).

    Per pass over the ids: while at least P ids are available, draw P of them without replacement
    (``choice(avl_pids, P, replace=False)``); on an id's first use in the pass, take its indices (topped up to K by
    ``choice(..., K, replace=True)`` when it has fewer than K) and shuffle them; pop K of them into the batch; an id
    with fewer than K indices left leaves the pass. Every P served ids (x world size) form a batch. The random calls
    are exactly the reference's, made on a private ``RandomState(seed)`` instead of the reseeded global generator, so
    the same seed gives the same batches (golden fixture ``sampler_naive_identity``).
    """

    def _infinite_indices(self) -> Iterator[int]:
        rs = np.random.RandomState(self._seed)
        k, p = self.num_instances, self.num_pids_per_batch
        empty_passes = 0
        while True:
            if empty_passes > 100:
                raise RuntimeError(f"{type(self).__name__}: 100 passes over the {self.num_identities} identities "
                                   f"produced no batch of {self.batch_size} images; the data is too small for "
                                   f"this batch size and world size")
            empty_passes += 1
            avl_pids = list(self.pids)
            batch_idxs_dict = {}
            batch_indices = []
            while len(avl_pids) >= p:
                selected = [avl_pids[i] for i in rs.choice(len(avl_pids), p, replace=False)]
                for pid in selected:
                    if pid not in batch_idxs_dict:
                        idxs = list(self.pid_index[pid])
                        if len(idxs) < k:
                            idxs = rs.choice(idxs, size=k, replace=True).tolist()
                        rs.shuffle(idxs)
                        batch_idxs_dict[pid] = idxs
                    avl_idxs = batch_idxs_dict[pid]
                    batch_indices.extend(avl_idxs.pop(0) for _ in range(k))
                    if len(avl_idxs) < k:
                        avl_pids.remove(pid)
                if len(batch_indices) == self.batch_size:
                    empty_passes = 0
                    yield from reorder_index(batch_indices, self._world_size)
                    batch_indices = []


class BalancedIdentitySampler(_IdentitySampler):
    """P ids x K images per batch preferring other-camera images (FastReID ``BalancedIdentitySampler``).

    Per pass: shuffle the ids (dropping the remainder that does not fill a global batch); for each id take one random
    image, then K - 1 images of that id from other cameras (with replacement if there are fewer than K), or from
    the other images of the id when it was seen by one camera only (the image itself for a single-image id).
    """

    def __init__(self, data_source: Sequence, mini_batch_size: int, num_instances: int, seed: Optional[int] = None,
                 rank: Optional[int] = None, world_size: Optional[int] = None):
        super().__init__(data_source, mini_batch_size, num_instances, seed, rank, world_size)
        self.index_pid = {}
        self.pid_cam = defaultdict(list)
        for index, info in enumerate(data_source):
            self.index_pid[index] = info[1]
            self.pid_cam[info[1]].append(info[2])

    def _infinite_indices(self) -> Iterator[int]:
        rs = np.random.RandomState(self._seed)
        k = self.num_instances
        while True:
            identities = rs.permutation(self.num_identities)
            drop = self.num_identities % (self.num_pids_per_batch * self._world_size)
            if drop:
                identities = identities[:-drop]
            batch_indices = []
            for kid in identities:
                i = int(rs.choice(self.pid_index[self.pids[kid]]))
                i_cam = self.data_source[i][2]
                batch_indices.append(i)
                pid_i = self.index_pid[i]
                cams, index = self.pid_cam[pid_i], self.pid_index[pid_i]
                select_cams = no_index(cams, i_cam)
                if select_cams:
                    chosen = rs.choice(select_cams, size=k - 1, replace=len(select_cams) < k)
                else:
                    select_indexes = no_index(index, i)
                    if not select_indexes:
                        chosen = [0] * (k - 1)
                    else:
                        chosen = rs.choice(select_indexes, size=k - 1, replace=len(select_indexes) < k)
                batch_indices.extend(index[int(kk)] for kk in chosen)
                if len(batch_indices) == self.batch_size:
                    yield from reorder_index(batch_indices, self._world_size)
                    batch_indices = []
