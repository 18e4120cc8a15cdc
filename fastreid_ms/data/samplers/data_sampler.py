"""Index samplers of FastReID (``data_sampler.py``): infinite training stream, sharded inference sampler, seeds."""
import itertools
from typing import Iterator, List, Optional

import numpy as np

from fastreid_ms.utils import comm


def shared_random_seed() -> int:
    """A random seed drawn from numpy's global generator, the same on every rank (rank 0's draw), like FastReID's
    ``comm.shared_random_seed()``."""
    seed = int(np.random.randint(2 ** 31))
    if comm.get_world_size() > 1:
        mine = np.array([seed if comm.get_rank() == 0 else 0], dtype=np.int64)
        seed = int(comm.all_reduce_sum(mine)[0])
    return seed


def sampler_seeds(seed: int, count: int) -> List[int]:
    """Seeds for ``count`` samplers built one after the other.

    ``seed >= 0``: the first ``count`` draws of ``np.random.RandomState(seed).randint(2**31)``, i.e. exactly the seeds
    the reference's samplers get from ``comm.shared_random_seed()`` when numpy's global generator was seeded with
    ``seed`` just before the loaders are built (mixed loader first, then one per domain). ``seed < 0``: fresh seeds
    from numpy's global generator (shared across ranks).
    """
    if seed is None or seed < 0:
        return [shared_random_seed() for _ in range(count)]
    rs = np.random.RandomState(seed)
    return [int(rs.randint(2 ** 31)) for _ in range(count)]


def resolve_rank(rank: Optional[int], world_size: Optional[int]):
    rank = comm.get_rank() if rank is None else int(rank)
    world_size = comm.get_world_size() if world_size is None else int(world_size)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
    return rank, world_size


class TrainingSampler:
    """Infinite stream of shuffled permutations of ``range(size)`` (FastReID ``TrainingSampler``); rank ``r`` of
    ``w`` takes every w-th index starting at r, so the ranks share out every global batch."""

    def __init__(self, size: int, shuffle: bool = True, seed: Optional[int] = None, rank: Optional[int] = None,
                 world_size: Optional[int] = None):
        if size <= 0:
            raise ValueError(f"TrainingSampler needs a non-empty dataset, got size {size}")
        self._size, self._shuffle = int(size), shuffle
        self._seed = int(shared_random_seed() if seed is None else seed)
        self._rank, self._world_size = resolve_rank(rank, world_size)

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
        rs = np.random.RandomState(self._seed)
        while True:
            yield from (rs.permutation(self._size) if self._shuffle else np.arange(self._size)).tolist()


class InferenceSampler:
    """``range(size)`` split into contiguous per-rank shards (FastReID ``InferenceSampler``); finite."""

    def __init__(self, size: int, rank: Optional[int] = None, world_size: Optional[int] = None):
        if size <= 0:
            raise ValueError(f"InferenceSampler needs a non-empty dataset, got size {size}")
        self._size = int(size)
        rank, world_size = resolve_rank(rank, world_size)
        shard = (self._size - 1) // world_size + 1
        self._local_indices = range(shard * rank, min(shard * (rank + 1), self._size))

    def __iter__(self) -> Iterator[int]:
        yield from self._local_indices

    def __len__(self) -> int:
        return len(self._local_indices)
