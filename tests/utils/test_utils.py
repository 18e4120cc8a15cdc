"""Registry, process-group defaults, device selection and seeding."""
import numpy as np
import pytest

from fastreid_ms.utils import comm
from fastreid_ms.utils.env import parse_device, seed_all_rng, set_device
from fastreid_ms.utils.registry import Registry


def test_registry_register_get_and_unknown_name_lists_names():
    reg = Registry("THING")

    @reg.register()
    class Alpha:
        pass

    def beta():
        return 1

    reg.register(beta)
    assert reg.get("Alpha") is Alpha and reg.get("beta")() == 1
    with pytest.raises(KeyError) as e:
        reg.get("Alpah")
    assert "Alpha" in str(e.value) and "beta" in str(e.value)
    with pytest.raises(KeyError, match="already registered"):
        reg.register(Alpha)


def test_comm_defaults_without_distributed_init():
    assert comm.get_rank() == 0 and comm.get_world_size() == 1 and comm.is_main_process()
    comm.synchronize()
    np.testing.assert_array_equal(comm.all_reduce_sum(np.arange(3)), np.arange(3))


@pytest.mark.parametrize("text,expected", [("cpu", ("CPU", None)), ("gpu:1", ("GPU", 1)), ("cuda", ("GPU", None)),
                                           ("cuda:0", ("GPU", 0)), ("Ascend:3", ("Ascend", 3)), ("npu", ("Ascend", None))])
def test_parse_device(text, expected):
    assert parse_device(text) == expected


@pytest.mark.parametrize("text", ["tpu", "gpu:x", ""])
def test_parse_device_rejects_unknown(text):
    with pytest.raises(ValueError, match="MODEL.DEVICE"):
        parse_device(text)


def test_set_device_cpu_and_unavailable_device_errors():
    assert set_device("cpu") == "CPU"
    import mindspore

    if not mindspore.hal.is_available("GPU"):
        with pytest.raises(ValueError, match="no usable GPU"):
            set_device("gpu")
    assert mindspore.get_context("device_target") == "CPU"


def test_seed_all_rng_is_reproducible():
    seed_all_rng(123)
    a = np.random.rand(3)
    seed_all_rng(123)
    np.testing.assert_array_equal(a, np.random.rand(3))
    assert 0 <= seed_all_rng(-1) < 2 ** 31
