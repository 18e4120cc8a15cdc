"""Suite-wide test settings: compiled graphs of a test module are released when the module ends (MindSpore keeps
every compiled graph, with its device memory, for the life of the process)."""
import contextlib
import gc
import logging

import mindspore
import pytest


@pytest.fixture(scope="module", autouse=True)
def release_compiled_graphs():
    yield
    gc.collect()
    mindspore.ms_memory_recycle()


@pytest.fixture
def capture_logs():
    """``with capture_logs("fastreid_ms.x") as records:`` collects the records of that logger at INFO and above.

    A handler on the logger itself, unlike pytest's caplog, also works after ``setup_logger`` turned off propagation
    of the ``fastreid_ms`` logger."""

    @contextlib.contextmanager
    def capture(name):
        records = []
        handler = logging.Handler(logging.INFO)
        handler.emit = records.append
        logger = logging.getLogger(name)
        old_level = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        try:
            yield records
        finally:
            logger.removeHandler(handler)
            logger.setLevel(old_level)

    return capture
