"""The services a method may use while it fits, without knowing whether a CLI session is behind it."""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Iterator, Optional, Sequence, TypeVar, Union

import torch

from deepclust_cli.config import PlotsConfig, TrainerConfig
from deepclust_cli.engine.checkpoint import Checkpointable
from deepclust_cli.engine.device import autocast, set_deterministic
from deepclust_cli.engine.distributed import SINGLE, World
from deepclust_cli.engine.interrupt import StopRequests
from deepclust_cli.engine.progress import Progress
from deepclust_cli.errors import TrainingDiverged

T = TypeVar("T")

logger = logging.getLogger("deepclust")


class Context:
    """Device, seed, trainer settings, ranks, logging, progress, checkpoints and plot paths for ``fit``.

    This bare context serves library use (``Method(...).fit(X)``): messages go to Python's
    ``logging`` under the name ``deepclust``, progress goes to stderr, and nothing is written to
    disk. :class:`deepclust_cli.engine.session.Session` is the same interface backed by a
    session folder.
    """

    def __init__(
        self,
        device: Union[str, torch.device] = "cpu",
        seed: int = 0,
        trainer: Optional[TrainerConfig] = None,
        show_progress: bool = True,
        world: World = SINGLE,
    ) -> None:
        self.device = torch.device(device)
        self.seed = seed
        self.trainer = trainer or TrainerConfig()
        self.world = world  # the data-parallel ranks this process trains with
        self.stop_requests: Optional[StopRequests] = None  # a session's SIGINT/SIGTERM handlers
        self.show_progress = show_progress
        self.resumed_progress: Optional[dict[str, Any]] = None  # set when continuing from a checkpoint
        self.resumed_config: dict[str, Any] = {}  # the resolved config the checkpoint was trained with
        self.step = 0  # optimizer steps of the run so far, over all its loops: TensorBoard's x axis
        self.plot_settings = PlotsConfig()  # a session takes the run's plots.*
        self.data_state: Optional[dict[str, Any]] = None  # how the run transformed its data (dataset.standardize), kept in checkpoints
        self.logger = logger

    def log(self, message: str) -> None:
        self.logger.info(message)

    def warn(self, message: str) -> None:
        self.logger.warning(message)

    @contextlib.contextmanager
    def warnings_as_log(self, prefix: str, rewrite: Optional[Callable[[str], Optional[str]]] = None) -> Iterator[None]:
        """Turn the warnings a library raises inside the block into one log line each (libraries
        print several lines per warning). ``rewrite`` may shorten a message or drop it (None)."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        messages = (" ".join(str(w.message).split()) for w in caught)
        for message in dict.fromkeys(rewrite(m) if rewrite else m for m in messages):
            if message:
                self.warn(f"{prefix}: {message}")

    @contextlib.contextmanager
    def training(self) -> Iterator[None]:
        """The block ``fit`` trains in: torch's kernels deterministic as ``trainer.deterministic`` asks."""
        previous = torch.are_deterministic_algorithms_enabled()
        set_deterministic(self.trainer.deterministic)
        try:
            yield
        finally:
            set_deterministic(previous)

    def capped(self, length: int) -> int:
        """A loop's number of passes (epochs, rounds, tree levels), at most ``trainer.max_epochs``."""
        cap = self.trainer.max_epochs
        return length if cap is None else min(length, cap)

    def limit_batches(self, batches: Sequence[T]) -> Sequence[T]:
        """The batches of one epoch that run: the first ``trainer.max_batches``."""
        cap = self.trainer.max_batches
        return batches if cap is None else batches[:cap]

    def count_step(self, name: str, loss: Optional[torch.Tensor], batch_loss: Optional[torch.Tensor] = None) -> None:
        """Count one optimizer step of the loop ``name``; every ``trainer.log_every``-th logs the
        batch's loss as ``<name>/loss_step`` — ``batch_loss``, or else the ranks' ``loss`` summed
        (each rank's loss is its shard's share of the batch mean). Every rank counts alike, so the
        sum is a collective they all join."""
        self.step += 1
        if self.step % self.trainer.log_every:
            return
        if batch_loss is None:
            local = torch.zeros((), device=self.device) if loss is None else loss.detach().float()
            batch_loss = self.world.sum(local)
        self.log_scalars({f"{name}/loss_step": float(batch_loss.detach())}, step=self.step)

    def stop_agreed(self) -> bool:
        """Whether the run stops at this safe point: a signal reached this process or, in a
        data-parallel run, any rank (a collective: every rank asks at the same points)."""
        local = self.stop_requests is not None and self.stop_requests.signal_number is not None
        if not self.world.parallel:
            return local
        return bool(self.world.sum(torch.tensor([float(local)], device=self.device)).item() > 0)

    def require_finite(self, value: Union[float, torch.Tensor], what: str) -> None:
        """Stop the run when ``value`` — a training loss, or a trained model's outputs — holds NaN
        or inf (``what`` names it: stage, epoch, quantity), before the diverged model is saved."""
        if isinstance(value, torch.Tensor):
            finite, shown = bool(torch.isfinite(value).all()), "NaN or inf"
        else:
            finite, shown = math.isfinite(value), str(value)
        if not finite:
            raise TrainingDiverged(
                f"{what} became {shown}; stopped without saving the diverged model "
                f"({self.kept_checkpoint()}); lower the learning rate, or use trainer.precision=fp32 if it was fp16"
            )

    def kept_checkpoint(self) -> str:
        """What a stopped run leaves to resume from, in words; the bare context keeps none."""
        return "library use keeps no checkpoint"

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        """Record scalars (loss, lr, metrics) at ``step``; the bare context keeps none."""

    def progress(
        self, iterable: Optional[Iterable[T]] = None, *, total: Optional[int] = None, desc: str = "", unit: str = "it"
    ) -> Progress[T]:
        return Progress(iterable, total=total, desc=desc, unit=unit, enabled=self.show_progress)

    def autocast(self) -> ContextManager[Any]:
        return autocast(self.device, self.trainer.precision.value)

    def checkpoint(
        self, method: Checkpointable, progress: dict[str, Any], *, score: Optional[float] = None
    ) -> None:
        """Save ``method`` with its training ``progress``; ``score`` (higher is better) picks best.ckpt.

        The bare context keeps nothing: library users save explicitly with ``method.save(path)``.
        """

    def plot_path(self, name: str) -> Optional[Path]:
        """Where to write the PNG called ``name``, or None when plots are not kept."""
        return None

    def save_info(self, name: str, payload: dict[str, Any]) -> None:
        """Keep ``payload`` as the JSON file ``name`` of the session (nothing without one)."""

    def predictions_dir(self) -> Optional[Path]:
        """The folder for per-sample outputs (cluster of each sample, embeddings), or None when
        they are not kept."""
        return None
