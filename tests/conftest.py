"""Suite-wide test settings: compiled graphs of a test module are released when the module ends (MindSpore keeps
every compiled graph, with its device memory, for the life of the process)."""
import gc

import mindspore
import pytest


@pytest.fixture(scope="module", autouse=True)
def release_compiled_graphs():
    yield
    gc.collect()
    mindspore.ms_memory_recycle()
