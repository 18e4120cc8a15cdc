"""Shared fixtures of the engine tests."""
import contextlib
import logging

import pytest


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
