"""A full disk: recognised wherever a write meets it, and room kept to record it.

A run on a full disk cannot write the ``run.json`` that says it failed, so a session keeps
:class:`SpaceReserve` — a small preallocated file — while it is open and deletes it to make room
for that last record. Checkpoints are written atomically (``atomic.py``), so the one before the
failed write survives whole.
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path
from typing import Any, Callable, Optional

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
RESERVE_NAME = ".reserve"
RESERVE_BYTES = 64 * 1024  # run.json and its temp file, log.txt's last lines, with room to spare


def is_disk_full(error: Optional[BaseException]) -> bool:
    """Whether ``error`` is the file system refusing a write for lack of space or quota."""
    return isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS


def disk_full_cause(error: BaseException) -> Optional[OSError]:
    """The disk-full ``OSError`` that ``error`` is or was raised from, if any (a write inside a
    library may surface as its own exception with the ``OSError`` as cause or context)."""
    seen: set[int] = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        if is_disk_full(current):
            return current  # type: ignore[return-value]
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


class SpaceReserve:
    """``<session>/.reserve``: ``RESERVE_BYTES`` allocated when the session opens, freed when it
    closes — or earlier, to record a disk-full failure in a disk that has no room left."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / RESERVE_NAME
        self.held = False  # only the session that allocated it frees it (a refused second writer must not)

    def allocate(self) -> None:
        """Allocate the reserve; raises the disk-full ``OSError`` (and leaves no file) when there is no room."""
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            try:
                os.posix_fallocate(fd, 0, RESERVE_BYTES)
            except OSError as error:
                if is_disk_full(error):
                    raise
                os.write(fd, bytes(RESERVE_BYTES))  # a file system without fallocate: write the blocks
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            self.path.unlink(missing_ok=True)
            raise
        os.close(fd)
        self.held = True

    def free(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


class QuietDiskFullThreads:
    """While active, a background writer thread (TensorBoard's) that dies of a full disk prints
    nothing: its library raises the same error again in the main thread, where the run reports it
    in one line. Any other thread error still reaches the previous ``threading.excepthook``."""

    def __init__(self) -> None:
        self._previous: Optional[Callable[[Any], Any]] = None

    def install(self) -> None:
        self._previous = threading.excepthook
        previous = self._previous

        def hook(args: Any) -> None:
            if not is_disk_full(args.exc_value):
                previous(args)

        threading.excepthook = hook

    def restore(self) -> None:
        if self._previous is not None:
            threading.excepthook = self._previous
            self._previous = None
