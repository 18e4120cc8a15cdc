"""Crash-safe file writes: a file appears under its final name complete or not at all.

:func:`atomic_write` yields a temporary path in the target's directory; when the block ends without an exception the
temporary file gets the umask's mode, is fsync-ed and renamed over the target, and the directory is fsync-ed (so the
rename itself survives a power loss). On any exception, including ``KeyboardInterrupt``, the temporary file is
removed and the target is left as it was.
"""
import contextlib
import os
from typing import Iterator

__all__ = ["atomic_write", "atomic_write_text", "new_file_mode"]


def new_file_mode() -> int:
    """The mode the process umask gives a new file (``mindspore.save_checkpoint`` writes 0400, which teammates
    cannot read and ``rm`` asks about)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str) -> Iterator[str]:
    """``with atomic_write(path) as tmp: <write the file tmp>`` - see the module docstring."""
    directory = os.path.dirname(os.path.abspath(path))
    name, ext = os.path.splitext(os.path.basename(path))
    tmp = os.path.join(directory, f".{name}.tmp{os.getpid()}{ext}")
    try:
        yield tmp
        os.chmod(tmp, new_file_mode())
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(directory)


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`atomic_write`."""
    with atomic_write(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)
