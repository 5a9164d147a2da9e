"""The engine's one training loop: every method's epochs, AND's rounds and GeoCluster's tree levels.

A method writes one pass — an epoch, a tree level — that trains and returns a :class:`Pass`.
Around it :class:`Loop` keeps what every method needs: the number of passes, capped by
``trainer.max_epochs`` and continued from a checkpoint; the progress line; the finite-loss check;
the history of every value a pass reports (plots and checkpoints read it); TensorBoard scalars;
the checkpoint cadence (``trainer.checkpoint_every``, ``trainer.checkpoint_min_seconds``); and stop
requests — after a SIGINT or SIGTERM the next pass end saves and stops.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from deepclust_cli.engine.context import Context


@dataclass
class Pass:
    """What one pass of a loop reports."""

    loss: Optional[float]  # its mean training loss; None when nothing was trained (a level with no node to split)
    scalars: dict[str, float] = field(default_factory=dict)  # more values for the history, TensorBoard and progress
    stop: bool = False  # the method's own stop rule fired (min-lr, convergence, a finished tree)
    save: bool = False  # checkpoint now, whatever the cadence (the end of AND's round)
    score: Optional[float] = None  # a held-out score, higher is better: best.ckpt keeps the highest


class CheckpointCadence:
    """Every ``trainer.checkpoint_every`` passes, unless the last write is younger than
    ``trainer.checkpoint_min_seconds`` (short passes would spend their time saving); always when
    forced (a loop's end, a new score) or when a signal asked the run to stop."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.last = time.monotonic()

    def due(self, position: int, force: bool = False) -> bool:
        """Whether to save after ``position`` passes; a True answer counts as a write."""
        force = self.context.stop_agreed() or force  # asked first: across ranks it is a collective all must join
        trainer = self.context.trainer
        if force or (position % trainer.checkpoint_every == 0 and time.monotonic() - self.last >= trainer.checkpoint_min_seconds):
            self.last = time.monotonic()
            return True
        return False


class Loop:
    """``length`` passes a round for ``rounds`` rounds (AND's curriculum; one round elsewhere), both
    at most ``trainer.max_epochs``. The method keeps the loop's :meth:`state_dict` in its own state,
    so it resumes from any checkpoint at the pass after the saved one."""

    def __init__(self, name: str, length: int, context: Context, *, unit: str = "epoch", rounds: int = 1) -> None:
        self.name = name
        self.unit = unit
        self.context = context
        self.rounds = context.capped(rounds)
        self.length = context.capped(length)
        self.position = 0  # passes done
        self.done = False
        self.history: dict[str, list[list[float]]] = {}  # value name → [position, value] per pass that reported it

    @property
    def total(self) -> int:
        return self.rounds * self.length

    @property
    def round(self) -> int:
        """The round the next pass belongs to."""
        return self.position // self.length

    @property
    def pass_in_round(self) -> int:
        """The next pass's index within its round."""
        return self.position % self.length

    def values(self, key: str) -> list[float]:
        """The history of one value, pass by pass."""
        return [value for _, value in self.history.get(key, [])]

    def run(self, run_pass: Callable[[], Pass], save: Callable[[Optional[float]], None]) -> None:
        """Run passes from where the loop stands until its total, or until a pass says stop;
        ``save(score)`` checkpoints the method, whose state holds this loop's."""
        if self.done or self.position >= self.total:
            self.done = True
            return
        context = self.context
        progress = context.progress(total=self.total, desc=self.name, unit=self.unit)
        progress.update(self.position)
        cadence = CheckpointCadence(context)
        while not self.done:
            round_shown = {"round": self.round} if self.rounds > 1 else {}
            result = run_pass()
            if result.loss is not None:
                context.require_finite(result.loss, f"{self.name} {self.unit} {self.position + 1}: the training loss")
            self.position += 1
            values = {**({"loss": result.loss} if result.loss is not None else {}), **result.scalars}
            for key, value in values.items():
                self.history.setdefault(key, []).append([self.position, float(value)])
            context.log_scalars({f"{self.name}/{key}": value for key, value in values.items()}, step=context.step)
            self.done = result.stop or self.position >= self.total
            progress.set(**round_shown, **values)
            progress.update()
            if cadence.due(self.position, force=self.done or result.save):
                save(result.score)
        progress.close()

    def where(self) -> dict[str, Any]:
        """Where training stands, for a checkpoint's progress and the message of a stopped run."""
        if self.rounds > 1:
            return {"stage": self.name, "round": self.round, self.unit: self.pass_in_round}
        return {"stage": self.name, self.unit: self.position}

    def state_dict(self) -> dict[str, Any]:
        return {"position": self.position, "done": self.done, "history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.position = int(state["position"])
        self.done = bool(state["done"])
        self.history = {key: [list(pair) for pair in pairs] for key, pairs in state["history"].items()}
