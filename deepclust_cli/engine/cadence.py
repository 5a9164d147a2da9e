"""When an epoch loop writes its checkpoint."""

from __future__ import annotations

import time

from deepclust_cli.engine.context import Context


class CheckpointCadence:
    """Every ``trainer.checkpoint_every`` epochs, unless the last write is younger than
    ``trainer.checkpoint_min_seconds`` (short epochs would spend their time saving); always when
    the caller forces it (a stage's or round's end, a new best score) or a signal asked the run
    to stop."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.every = context.trainer.checkpoint_every
        self.min_seconds = context.trainer.checkpoint_min_seconds
        self.last = time.monotonic()

    def due(self, epoch: int, force: bool = False) -> bool:
        """Whether to save after ``epoch`` epochs; a True answer counts as a write."""
        force = self.context.stop_agreed() or force  # asked first: across ranks it is a collective all must join
        if force or (epoch % self.every == 0 and time.monotonic() - self.last >= self.min_seconds):
            self.last = time.monotonic()
            return True
        return False
