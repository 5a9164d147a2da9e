"""One writer per session folder: an exclusive ``fcntl.flock`` on ``<session>/.lock``.

A writing run holds the lock from before it touches the folder until it closes; a second writer
(a resume of the same checkpoint, a sweep started twice) fails at once with the holder's process
id and host, which the lock file records. The operating system releases the lock when its holder
exits, however it exits (kill -9 included), so a stale lock never blocks a rerun.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from pathlib import Path
from typing import IO, Iterator, Optional

from deepclust_cli.errors import SessionBusy

LOCK_NAME = ".lock"
ATTEMPTS, RETRY_SECONDS = 5, 0.05


class SessionLock:
    """The lock of the session folder ``directory`` (which must exist)."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / LOCK_NAME
        self._handle: Optional[IO[str]] = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`SessionBusy` naming its holder; a refused attempt
        changes no file (the lock file exists already whenever another process holds it)."""
        handle = open(self.path, "a+", encoding="utf-8")
        for attempt in range(ATTEMPTS):
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt < ATTEMPTS - 1:
                    time.sleep(RETRY_SECONDS)  # a holder_of probe holds a shared lock for microseconds
        else:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise SessionBusy(
                f"session {self.path.parent} is in use by {holder}; wait for it to finish, "
                "or run in a new session folder (restart=true)",
                holder,
            ) from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(this_process() + "\n")
            handle.flush()
        except BaseException:
            handle.close()  # a disk without room for one line: the lock goes with the handle
            raise
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def this_process() -> str:
    """How a lock file names its holder: ``"process <pid> on <host>"``."""
    return f"process {os.getpid()} on {socket.gethostname()}"


def holder_of(directory: Path) -> Optional[str]:
    """Who holds ``directory``'s lock now (``"process <pid> on <host>"``), or None when nobody
    does — without creating anything: a folder without a lock file is free."""
    path = Path(directory) / LOCK_NAME
    try:
        handle = open(path, encoding="utf-8")
    except OSError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another process"
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


@contextlib.contextmanager
def taking_turns(path: Path) -> Iterator[None]:
    """Run the block while holding an exclusive ``flock`` on ``path`` (created if absent): processes
    that share a file — the jobs of a parallel sweep opening one local MLflow store — wait their turn."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
