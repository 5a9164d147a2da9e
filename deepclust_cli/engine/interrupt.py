"""Stopping a run cleanly: SIGINT (Ctrl-C) and SIGTERM (``kill``, SLURM's preemption notice)
become a request that the method's next safe point — its next checkpoint, at the end of an epoch,
round or tree level — honours by saving and then stopping with the command that resumes it.

A second Ctrl-C stops at once (``KeyboardInterrupt``), for a user who cannot wait for the epoch.
Data-parallel ranks each keep their own requests and agree at every safe point whether any rank
received one (:meth:`deepclust_cli.engine.context.Context.stop_agreed`), so all stop at the same step.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any, Callable, Optional

HANDLED = (signal.SIGINT, signal.SIGTERM)


class StopRequests:
    """Handlers for SIGINT and SIGTERM, installed from ``install()`` to ``restore()``; the first
    signal received is kept in ``signal_number``."""

    def __init__(self, quiet: bool = False, announce: Optional[str] = None, on_signal: Optional[Callable[[int], None]] = None) -> None:
        self.signal_number: Optional[int] = None
        self.quiet = quiet  # data-parallel ranks other than 0 leave the announcement to rank 0
        self.announce = announce or "saving a checkpoint at the next epoch end, then stopping"
        self.on_signal = on_signal  # e.g. a sweep's: pass the signal on to its worker processes
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # Python delivers signals to the main thread only; a run in a worker thread keeps the defaults
        for number in HANDLED:
            self._previous[number] = signal.signal(number, self._handle)

    def restore(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}

    def _handle(self, number: int, frame: Optional[FrameType]) -> None:
        if self.signal_number is not None and number == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_number = number
        if self.on_signal is not None:
            self.on_signal(number)
        if self.quiet:
            return
        print(
            f"deepclust: {signal.Signals(number).name} received: {self.announce}"
            + (" (Ctrl-C again stops at once)" if number == signal.SIGINT else ""),
            file=sys.stderr,
            flush=True,
        )
