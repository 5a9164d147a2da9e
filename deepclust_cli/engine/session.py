"""The session folder of one run and the services it offers the method.

Layout (``<output_dir>/<method>/<dataset>/<YYYY-MM-DD_HH-MM-SS.ffffff>[_<name>]/``)::

    config.yaml          the resolved config
    overrides.yaml       the command-line overrides that composed it
    run.json             status, device, versions, seconds (every process of the run) and process_seconds
    log.txt              everything the run logged (appended on resume)
    tb/                  TensorBoard events: losses, learning rates, metrics, hyper-parameters (logger=tensorboard)
    csv/, mlflow.json,   the other trackers' files (logger=csv, mlflow, wandb: engine/trackers.py)
    wandb/, wandb.json
    checkpoints/         last.ckpt, and best.ckpt where the method reports a validation score
    plots/               PNG figures (confusion matrix, embeddings, curves)
    predictions/         per-sample clusters (<split>.csv), embeddings, centers (predictions.py)
    dataset.json         the data's sizes, feature names and label id → class name
    metrics.json         the final metrics; metrics_test.json for --test-only evaluations
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import logging.handlers
import math
import os
import shlex
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, Optional

import torch
import yaml

import deepclust_cli
from deepclust_cli.config import RunConfig, config_differences
from deepclust_cli.engine.atomic import atomic_write_text
from deepclust_cli.engine.checkpoint import Checkpointable, git_sha, load_checkpoint, save_checkpoint
from deepclust_cli.engine.context import Context
from deepclust_cli.engine.device import set_deterministic
from deepclust_cli.engine.disk import QuietDiskFullThreads, SpaceReserve, disk_full_cause, is_disk_full
from deepclust_cli.engine.distributed import SINGLE, World
from deepclust_cli.engine.interrupt import StopRequests
from deepclust_cli.engine.lock import LOCK_NAME, SessionLock
from deepclust_cli.engine.seeds import restore_rng_state, rng_state, seed_everything
from deepclust_cli.engine.trackers import TensorBoard, TrackedRun, Tracker, flat_params
from deepclust_cli.errors import CheckpointError, DeepclustError, DiskFull, Interrupted, SessionBusy

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"


class Session(Context):
    """A :class:`Context` that keeps everything in a session folder.

    Use as a context manager: leaving it closes the log and the tracker (``tracker``: TensorBoard
    unless the run's ``logger`` says otherwise) and records in ``run.json`` whether the run
    completed, failed (with the error) or was interrupted.
    """

    def __init__(
        self,
        directory: Path,
        settings: RunConfig,
        config: dict[str, Any],
        overrides: list[str],
        device: torch.device,
        world: World = SINGLE,
        tracker: Optional[Tracker] = None,
    ) -> None:
        super().__init__(device=device, seed=settings.seed, trainer=settings.trainer, world=world)
        self.directory = Path(directory)
        self.settings = settings
        self.config = config
        self.overrides = overrides
        self.test_only = settings.test_only
        self.plot_settings = settings.plots
        self.started = time.perf_counter()
        self.earlier_seconds = 0.0  # what the processes before a resume spent, up to its checkpoint
        self.best_score: Optional[float] = None
        self.last_checkpoint: Optional[Path] = None  # the newest checkpoint this run can continue from
        self.tracker = tracker or TensorBoard()
        self._tracking = False  # the tracker opens on first use
        self._purge_step: Optional[int] = None
        self._fresh = not self.directory.is_dir() or not any(self.directory.iterdir())  # a refused run removes it again
        self.directory.mkdir(parents=True, exist_ok=True)
        self.lock = SessionLock(self.directory)
        self.reserve = SpaceReserve(self.directory)
        self.quiet_threads = QuietDiskFullThreads()
        self.opened = False
        self._pending_info: dict[str, dict[str, Any]] = {}
        self._handlers: list[logging.Handler] = []
        try:
            self.lock.acquire()  # before anything is written: a second writer changes nothing
            self._handlers = self._attach_log_handlers()
            if not settings.resume:
                self.open()  # a resume opens once its checkpoint has loaded and fits (run_rank)
        except BaseException as error:
            self.__exit__(type(error), error, None)  # records what it can, leaves no handler on the logger
            raise
        self.stop_requests = StopRequests()
        self.stop_requests.install()
        seed_everything(settings.seed)
        set_deterministic(settings.trainer.deterministic)
        self.log(f"session {self.directory}")
        self.log(f"device {device}, seed {settings.seed}, deepclust {deepclust_cli.__version__} ({git_sha() or 'no git'})")

    def open(self) -> None:
        """Start writing the folder: its subfolders, log.txt (with what was logged so far),
        config.yaml, overrides.yaml, run.json "running" and any info file saved before. Until
        then a session has written nothing but its lock, so a resume refused on loading its
        checkpoint leaves the folder as it was."""
        if self.opened:
            return
        self.reserve.allocate()  # first: a disk without room for it fails here, having written nothing
        self.opened = True
        self.quiet_threads.install()
        file_handler = LogFile(self.directory / "log.txt", mode="a", encoding="utf-8")
        file_handler.setFormatter(logging.Formatter(LOG_FORMAT))
        self._buffer.setTarget(file_handler)
        self._buffer.flush()
        self.logger.removeHandler(self._buffer)
        self.logger.addHandler(file_handler)
        self._handlers = [file_handler, *[h for h in self._handlers if h is not self._buffer]]
        for partial in sorted((self.directory / "checkpoints").glob(".*.tmp")):
            partial.unlink()  # the lock's holder: a write cut short by a kill; the file it was replacing is intact
            self.log(f"removed {partial.name}, a checkpoint write interrupted by an earlier kill")
        if not self.test_only:
            atomic_write_text(self.directory / "config.yaml", yaml.safe_dump(self.config, sort_keys=False))
            atomic_write_text(self.directory / "overrides.yaml", yaml.safe_dump(self.overrides))
        self._write_run_info("running")
        for name, payload in self._pending_info.items():
            self.save_info(name, payload)
        self._pending_info = {}

    # -- logging -----------------------------------------------------------------------------
    def _attach_log_handlers(self) -> list[logging.Handler]:
        """The console now; log.txt's lines wait in a buffer until :meth:`open`."""
        self._buffer = logging.handlers.MemoryHandler(capacity=1_000_000, flushLevel=logging.CRITICAL + 1, flushOnClose=False)
        self._buffer.setFormatter(logging.Formatter(LOG_FORMAT))
        console = logging.StreamHandler(sys.stdout)
        console.setFormatter(logging.Formatter("%(message)s"))
        for handler in (self._buffer, console):
            self.logger.addHandler(handler)
        self._logger_settings = (self.logger.level, self.logger.propagate)
        self.logger.setLevel(logging.INFO)
        self.logger.propagate = False  # the console handler already prints; the root logger must not again
        return [self._buffer, console]

    def tracked(self) -> Tracker:
        """The run's tracker, opened on first use (with the config as its parameters)."""
        if not self._tracking:
            run = TrackedRun(self.directory, Path(self.settings.output_dir), flat_params(self.config), self._purge_step)
            self.tracker.open(run)
            self._tracking = True
        return self.tracker

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        self.tracked().log_scalars(values, step)

    def plot_path(self, name: str) -> Path:
        suffix = "_test" if self.test_only else ""
        return self.directory / "plots" / f"{name}{suffix}.png"

    def save_info(self, name: str, payload: dict[str, Any]) -> None:
        if not self.opened:
            self._pending_info[name] = payload
            return
        atomic_write_text(self.directory / name, json.dumps(payload, indent=2) + "\n")

    def predictions_dir(self) -> Path:
        return self.directory / ("predictions_test" if self.test_only else "predictions")

    # -- checkpoints -------------------------------------------------------------------------
    def checkpoint(
        self, method: Checkpointable, progress: dict[str, Any], *, score: Optional[float] = None
    ) -> None:
        stopping = self.stop_agreed()
        payload = {
            "method": method.describe(),
            "config": self.config,
            "overrides": self.overrides,
            "progress": {**progress, "step": self.step},
            "rng": rng_state(),
            "seconds": self.earlier_seconds + time.perf_counter() - self.started,
        }
        if self.data_state is not None:
            payload["data"] = self.data_state
        save_checkpoint(self.directory / "checkpoints" / "last.ckpt", payload)
        self.last_checkpoint = self.directory / "checkpoints" / "last.ckpt"  # only once it is whole on disk
        if score is not None and math.isfinite(score) and (self.best_score is None or score > self.best_score):
            self.best_score = score
            save_checkpoint(self.directory / "checkpoints" / "best.ckpt", {**payload, "best_score": score})
        if stopping:
            self.world.broadcast_object(str(self.last_checkpoint))  # the other ranks stop once it is saved
            raise stopped(self.stop_requests.signal_number or signal.SIGTERM, progress, str(self.last_checkpoint))

    def kept_checkpoint(self) -> str:
        return kept_checkpoint(self.last_checkpoint)

    def resume(self, path: Path, method: Checkpointable) -> dict[str, Any]:
        """Load ``path`` into ``method`` and restore the generators; returns the training progress."""
        payload = restore(path, method)
        progress = _adopt_progress(self, payload)
        self.last_checkpoint = Path(path)
        self.best_score = payload.get("best_score", self.best_score)
        if not (self.test_only or self.settings.predict):  # continuing the run: its time so far counts
            self.earlier_seconds = float(payload.get("seconds", 0.0))
        self._purge_step = self.step or None  # TensorBoard drops what a killed run logged after this checkpoint
        self.log(f"resumed from {path} at {_describe_progress(progress)}")
        return progress

    # -- the end of a run --------------------------------------------------------------------
    def finish(self, metrics: dict[str, Any]) -> None:
        """Write the metrics file, give its numbers and the plots to the tracker and print them with the session path."""
        name = "metrics_test.json" if self.test_only else "metrics.json"
        atomic_write_text(self.directory / name, json.dumps(metrics, indent=2) + "\n")
        scalars = {key: value for key, value in metrics.items() if isinstance(value, (int, float)) and not isinstance(value, bool)}
        if scalars:
            prefix = "test" if self.test_only else "metrics"
            self.tracked().log_final({f"{prefix}/{key}": value for key, value in scalars.items()}, step=self.step)
        if self._tracking:
            self.tracker.log_artifacts(self.directory / "plots")
        shown = "  ".join(f"{key}={_shown(value)}" for key, value in scalars.items())
        self.log(f"metrics: {shown or 'none'}")
        if "cluster_sizes" in metrics:
            self.log(f"cluster sizes: {metrics['cluster_sizes']}")
        self.log(f"session: {self.directory}")

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, kind: Any, error: Optional[BaseException], traceback: Any) -> None:
        if self._tracking:
            self._tracking = False
            try:  # TensorBoard writes in a thread: a refused write surfaces here, before "completed"
                self.tracker.close(_status(error))
            except Exception as close_error:  # a tracker's store failing at the end must not cost run.json or the lock
                error = error or close_error  # else the error that ended the run is the one reported
        full = disk_full_cause(error) if error is not None else None
        if full is not None:
            error = DiskFull(self._disk_full_message(full))
        status = _status(error)
        message = None
        if error is not None:
            message = str(error) if isinstance(error, DeepclustError) else f"{type(error).__name__}: {error}"
        try:
            if self.opened:  # a session refused before it opened records nothing
                self._write_run_info(status, message)
        finally:
            self._close()
        if full is not None:
            raise error from None

    def _close(self) -> None:
        if self.stop_requests is not None:
            self.stop_requests.restore()
        for handler in self._handlers:
            self.logger.removeHandler(handler)
            handler.close()
        if self._handlers:
            self.logger.setLevel(self._logger_settings[0])
            self.logger.propagate = self._logger_settings[1]
        self.quiet_threads.restore()
        self.reserve.free()
        if not self.opened and self._fresh:
            (self.directory / LOCK_NAME).unlink(missing_ok=True)  # a folder this refused run found empty is removed
            if not any(self.directory.iterdir()):
                self.directory.rmdir()
        self.lock.release()  # last: nothing of this run writes in the folder after it

    def _disk_full_message(self, error: OSError) -> str:
        """The one line of a run the disk stopped: which write, what survives, what to run."""
        written = f" writing {self._within(error.filename)}" if error.filename else ""
        if not self.opened:
            return f"disk full{written}: no room to open the session {self.directory}, so nothing was written; free space, or set output_dir to a disk with room"
        if self.last_checkpoint is None:
            return f"disk full{written} in {self.directory}, before its first checkpoint; free space and run the command again"
        again = f"deepclust --resume {shlex.quote(str(self.last_checkpoint))}" + (" --test-only" if self.test_only else "")
        return f"disk full{written} in {self.directory}; its last good checkpoint {self._within(self.last_checkpoint)} is intact; free space, then run: {again}"

    def _within(self, path: Any) -> str:
        """``path`` relative to the session folder when it lies inside it (the line names the folder once)."""
        try:
            return str(Path(path).resolve().relative_to(self.directory.resolve()))
        except ValueError:
            return str(path)

    def _write_run_info(self, status: str, error: Optional[str] = None) -> None:
        info = {
            "status": status,
            "error": error,
            "mode": "test" if self.test_only else "predict" if self.settings.predict else "resume" if self.settings.resume else "train",
            "device": str(self.device),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "seconds": round(self.earlier_seconds + time.perf_counter() - self.started, 3),  # every process of the run, to here
            "process_seconds": round(time.perf_counter() - self.started, 3),
            "updated": _dt.datetime.now().isoformat(timespec="seconds"),
            "package_version": deepclust_cli.__version__,
            "git_sha": git_sha(),
            "torch": torch.__version__,
            "command": " ".join(sys.argv),
        }
        path, text = self.directory / ("run_test.json" if self.test_only else "run.json"), json.dumps(info, indent=2) + "\n"
        try:
            atomic_write_text(path, text)
        except OSError as error:
            if not is_disk_full(error) or not self.reserve.held:
                raise
            self.reserve.free()  # what the reserve is for: the record of the run is the last thing to lose
            atomic_write_text(path, text)


class LogFile(logging.FileHandler):
    """log.txt. A line the disk refuses is dropped (the console has shown it) instead of logging's
    default of a traceback on stderr for every line."""

    def handleError(self, record: logging.LogRecord) -> None:
        if not is_disk_full(sys.exc_info()[1]):
            super().handleError(record)


class Replica(Context):
    """The context of a data-parallel rank other than 0: the session's seeds, determinism and
    resumption, but nothing written and nothing printed — rank 0's :class:`Session` does that."""

    def __init__(self, settings: RunConfig, device: torch.device, world: World) -> None:
        super().__init__(device=device, seed=settings.seed, trainer=settings.trainer, show_progress=False, world=world)
        self.test_only = settings.test_only
        self.stop_requests = StopRequests(quiet=True)
        self.stop_requests.install()
        seed_everything(settings.seed)
        set_deterministic(settings.trainer.deterministic)

    def checkpoint(self, method: Checkpointable, progress: dict[str, Any], *, score: Optional[float] = None) -> None:
        """Nothing to write; but when the ranks agree to stop, wait for rank 0's save and stop too."""
        if self.stop_agreed():
            path = self.world.broadcast_object(None)
            raise stopped(self.stop_requests.signal_number or signal.SIGTERM, progress, path)

    def open(self) -> None:
        pass

    def log(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass

    def kept_checkpoint(self) -> str:
        return "rank 0 keeps the session's checkpoints"

    def resume(self, path: Path, method: Checkpointable) -> dict[str, Any]:
        return _adopt_progress(self, restore(path, method))

    def finish(self, metrics: dict[str, float]) -> None:
        pass

    def __enter__(self) -> "Replica":
        return self

    def __exit__(self, kind: Any, error: Optional[BaseException], traceback: Any) -> None:
        self.stop_requests.restore()


def kept_checkpoint(checkpoint: Optional[Path]) -> str:
    """What survives a run that ended early, and the command that continues it."""
    if checkpoint is None:
        return "no checkpoint had been written yet"
    return f"the last good checkpoint is {checkpoint}; resume with: deepclust --resume {shlex.quote(str(checkpoint))}"


def record_lost_run(directory: Path, test_only: bool, message: str) -> None:
    """Mark the session of a data-parallel run whose rank was lost "failed" with ``message``, once
    its ranks have ended: run.json said "running" (rank 0 killed) or the survivor's broken collective."""
    path = Path(directory) / ("run_test.json" if test_only else "run.json")
    if not path.is_file():
        return  # the session never opened: there is no record to correct
    lock = SessionLock(directory)
    try:
        lock.acquire()
    except SessionBusy:
        return  # another writer has taken the folder since; its record is its own
    try:
        info = json.loads(path.read_text())
        info.update(status="failed", error=message, updated=_dt.datetime.now().isoformat(timespec="seconds"))
        atomic_write_text(path, json.dumps(info, indent=2) + "\n")
    finally:
        lock.release()


def stopped(signal_number: int, progress: dict[str, Any], checkpoint: str) -> Interrupted:
    """The error that ends a run a signal stopped, with the command that resumes it."""
    return Interrupted(
        f"stopped by {signal.Signals(signal_number).name} at {_describe_progress(progress)}; "
        f"resume with: deepclust --resume {shlex.quote(checkpoint)}",
        signal_number,
        checkpoint,
    )


def restore(path: Path, method: Checkpointable) -> dict[str, Any]:
    """Load the checkpoint ``path`` into ``method`` and restore the generators; returns the payload."""
    payload = load_checkpoint(path)
    stored = payload.get("method", {})
    if stored.get("name") != method.name:
        raise CheckpointError(f"{path}: holds method '{stored.get('name')}', not '{method.name}'")
    try:
        method.load_state_dict(stored["state"])
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as error:  # tensors of other shapes, missing parts
        changed = [f"{key}={now!r} (trained with {then!r})" for key, now, then in config_differences(method.params, stored.get("params", {}))]
        cause = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{path}: the checkpoint does not fit this config"
            + (f": method.{', method.'.join(changed)}" if changed else f" ({cause})")
            + "; resume with the checkpoint's settings, or train afresh without --resume"
        ) from None
    if "rng" in payload:
        restore_rng_state(payload["rng"])
    return payload


def _adopt_progress(context: Context, payload: dict[str, Any]) -> dict[str, Any]:
    """What every rank keeps of a loaded checkpoint: its config, progress and optimizer step."""
    context.resumed_config = payload.get("config") or {}
    progress = dict(payload.get("progress", {}))
    context.resumed_progress = progress
    context.step = int(progress.get("step", 0))
    return progress


def _status(error: Optional[BaseException]) -> str:
    """What run.json (and the tracker) records of a run that ended with ``error``."""
    if error is None:
        return "completed"
    return "interrupted" if isinstance(error, (KeyboardInterrupt, Interrupted)) else "failed"


def _shown(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.1f}" if abs(value) >= 1000 else f"{value:.4f}"


def _describe_progress(progress: dict[str, Any]) -> str:
    if progress.get("done"):
        return "the end of training"
    parts = [f"{key} {progress[key]}" for key in ("stage", "round", "epoch", "level") if key in progress]
    return ", ".join(parts) or "the start"
