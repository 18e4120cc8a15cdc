"""Samplers: infinite training index streams (rank-sharded) and the sequential inference sampler."""
from .data_sampler import InferenceSampler, TrainingSampler, sampler_seeds, shared_random_seed
from .triplet_sampler import BalancedIdentitySampler, NaiveIdentitySampler, reorder_index

__all__ = ["BalancedIdentitySampler", "InferenceSampler", "NaiveIdentitySampler", "TrainingSampler",
           "reorder_index", "sampler_seeds", "shared_random_seed"]
