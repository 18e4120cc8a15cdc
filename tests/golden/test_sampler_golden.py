"""Golden test of ``NaiveIdentitySampler`` (``sampler_naive_identity.npz``): for the reference's seeds the first
batches of the mixed 3-domain sampler, of the three per-domain samplers (half batch) and of a K=4 sampler with
under-populated identities equal the PyTorch reference's index streams, and ``sampler_seeds`` derives the
reference's per-sampler seeds from the global seed. Every size, seed and name comes from the fixture."""
import itertools

import numpy as np

from golden import Fixture
from fastreid_ms.data.samplers import NaiveIdentitySampler, sampler_seeds


def _items(fx):
    names = fx.info["domain_names"]
    domains, pidnums, camnums = fx["mix_src_domain"], fx["mix_src_pidnum"], fx["mix_src_camnum"]
    return [(f"img_{i}.jpg", f"{names[d]}_{p}", f"{names[d]}_{c}")
            for i, (d, p, c) in enumerate(zip(domains.tolist(), pidnums.tolist(), camnums.tolist()))]


def _batches(items, mini_batch, num_instances, seed, count):
    sampler = NaiveIdentitySampler(items, int(mini_batch), int(num_instances), seed=int(seed), rank=0, world_size=1)
    stream = iter(sampler)
    return np.array([list(itertools.islice(stream, int(mini_batch))) for _ in range(count)], dtype=np.int64)


def test_sampler_seeds_follow_the_global_seed():
    fx = Fixture("sampler_naive_identity")
    seeds = sampler_seeds(int(fx["global_seed"]), 4)
    assert seeds == [int(fx["mix_seed"]), int(fx["dom0_seed"]), int(fx["dom1_seed"]), int(fx["dom2_seed"])]
    assert sampler_seeds(int(fx["k4_global_seed"]), 1) == [int(fx["k4_seed"])]


def test_mixed_sampler_matches_reference():
    fx = Fixture("sampler_naive_identity")
    expected = fx["mix_batches"]
    got = _batches(_items(fx), fx["mix_mini_batch"], fx["mix_num_instances"], fx["mix_seed"], len(expected))
    np.testing.assert_array_equal(got, expected)


def test_per_domain_samplers_match_reference():
    fx = Fixture("sampler_naive_identity")
    items, offsets = _items(fx), fx["dom_src_offset"].tolist()
    for d in range(len(offsets) - 1):
        expected = fx[f"dom{d}_batches"]
        got = _batches(items[offsets[d]:offsets[d + 1]], expected.shape[1], fx["mix_num_instances"],
                       fx[f"dom{d}_seed"], len(expected))
        np.testing.assert_array_equal(got, expected, err_msg=f"domain {d}")


def test_k4_sampler_with_small_identities_matches_reference():
    fx = Fixture("sampler_naive_identity")
    items, offsets = _items(fx), fx["dom_src_offset"].tolist()
    d = int(fx["k4_domain_index"])
    expected = fx["k4_batches"]
    got = _batches(items[offsets[d]:offsets[d + 1]], fx["k4_mini_batch"], fx["k4_num_instances"], fx["k4_seed"],
                   len(expected))
    np.testing.assert_array_equal(got, expected)
