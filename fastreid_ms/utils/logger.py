"""Logging setup: coloured console output and a plain log file (``log.txt``, ``log.txt.rankN`` for other ranks)."""
import functools
import logging
import os
import sys
from typing import Optional

from termcolor import colored


class _ColorfulFormatter(logging.Formatter):
    def __init__(self, *args, root_name: str, abbrev_name: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self._root_name = root_name + "."
        self._abbrev_name = abbrev_name + "." if abbrev_name else ""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.name = record.name.replace(self._root_name, self._abbrev_name)
        log = super().formatMessage(record)
        if record.levelno == logging.WARNING:
            prefix = colored("WARNING", "red", attrs=["blink"])
        elif record.levelno in (logging.ERROR, logging.CRITICAL):
            prefix = colored("ERROR", "red", attrs=["blink", "underline"])
        else:
            return log
        return prefix + " " + log


class _CurrentStreamHandler(logging.StreamHandler):
    """Writes to whatever ``sys.<name>`` (stdout or stderr) is when a record is emitted, not to the stream of the
    first call (a notebook, a test capture or a tool that redirects it later keeps working)."""

    def __init__(self, name: str):
        self._stream_name = name
        super().__init__()

    @property
    def stream(self):
        return getattr(sys, self._stream_name)

    @stream.setter
    def stream(self, value):
        pass


@functools.lru_cache()
def setup_logger(output: Optional[str] = None, distributed_rank: int = 0, *, color: bool = True,
                 name: str = "fastreid_ms", abbrev_name: Optional[str] = None) -> logging.Logger:
    """Configure the ``name`` logger once per (output, rank, name).

    ``output`` is a directory (the log goes to ``output/log.txt``) or a file path ending in .txt/.log.
    Only rank 0 writes to the console; every rank writes its own file.
    """
    logger = logging.getLogger(name)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    if abbrev_name is None:
        abbrev_name = "fastreid_ms" if name == "fastreid_ms" else name
    plain_formatter = logging.Formatter("[%(asctime)s] %(name)s %(levelname)s: %(message)s", datefmt="%m/%d %H:%M:%S")
    if distributed_rank == 0:
        ch = _CurrentStreamHandler("stdout")
        ch.setLevel(logging.DEBUG)
        if color:
            formatter = _ColorfulFormatter(colored("[%(asctime)s %(name)s]: ", "green") + "%(message)s",
                                           datefmt="%m/%d %H:%M:%S", root_name=name, abbrev_name=str(abbrev_name))
        else:
            formatter = plain_formatter
        ch.setFormatter(formatter)
        logger.addHandler(ch)
    if output is not None:
        filename = output if output.endswith((".txt", ".log")) else os.path.join(output, "log.txt")
        if distributed_rank > 0:
            filename = filename + f".rank{distributed_rank}"
        os.makedirs(os.path.dirname(os.path.abspath(filename)), exist_ok=True)
        fh = logging.FileHandler(filename, mode="a")
        fh.setLevel(logging.DEBUG)
        fh.setFormatter(plain_formatter)
        logger.addHandler(fh)
    return logger


def log_traceback_to_files(logger: logging.Logger, message: str) -> None:
    """Write ``message`` with the traceback of the exception being handled to ``logger``'s log files only (the
    console keeps the one-line error the caller prints)."""
    record = logger.makeRecord(logger.name, logging.ERROR, __file__, 0, message, None, sys.exc_info())
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


@functools.lru_cache()
def command_error_logger() -> logging.Logger:
    """The logger of a command-line tool's final one-line error: plain message on stderr, nothing else (the
    ``fastreid_ms`` logger's console output goes to stdout and its traceback to the log files)."""
    logger = logging.getLogger("fastreid_ms_command_errors")
    logger.setLevel(logging.ERROR)
    logger.propagate = False
    handler = _CurrentStreamHandler("stderr")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    return logger
