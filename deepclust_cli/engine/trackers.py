"""Experiment trackers: where a session records its parameters, scalars, final metrics and plots.

A session holds one :class:`Tracker` (``logger=`` picks it: ``conf/logger/``) and opens it on first
use with the :class:`TrackedRun` it describes. Each tracker imports its library only then, so a
run that does not ask for MLflow or W&B never imports them, and neither needs installing.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Union

from deepclust_cli.config import CsvLogger, MlflowLogger, TensorBoardLogger, WandbLogger, missing_extra
from deepclust_cli.engine.atomic import atomic_write_text
from deepclust_cli.engine.lock import taking_turns
from deepclust_cli.errors import ConfigError

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

Param = Union[int, float, str, bool]


def flat_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, Param]:
    """A resolved config as ``dotted.key → value`` leaves: numbers, strings and booleans as they
    are, ``None`` as ``"null"``, lists and other values as their JSON text."""
    flat: dict[str, Param] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flat_params(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = "null" if value is None else json.dumps(value, default=str)
    return flat


@dataclass
class TrackedRun:
    """What a tracker records about one session: its folder, name and group (the runs of one sweep,
    or of one method on one dataset), its output_dir (where local stores go), its flattened
    config, and the optimizer step a resumed run continues from (what a killed run logged after
    it is dropped, where the tracker can)."""

    directory: Path
    output_dir: Path
    params: dict[str, Param]
    resumed_step: Optional[int] = None

    @property
    def name(self) -> str:
        return self.directory.name

    @property
    def group(self) -> str:
        """The session's parent folder under output_dir: ``multirun/<sweep>`` or ``<method>/<dataset>``."""
        try:
            return self.directory.parent.resolve().relative_to(self.output_dir.resolve()).as_posix()
        except ValueError:  # a session folder placed outside output_dir (hydra.run.dir=...)
            return self.directory.parent.name


class Tracker:
    """The interface a session writes through; this base records nothing."""

    def open(self, run: TrackedRun) -> None:
        """Start recording ``run`` (its parameters first)."""

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        """Scalars the run logs while it trains (losses, learning rates) at optimizer ``step``."""

    def log_final(self, metrics: dict[str, float], step: int) -> None:
        """The run's final metrics (names as they should appear, e.g. ``metrics/acc``)."""

    def log_artifacts(self, folder: Path) -> None:
        """The files of ``folder`` (the session's plots) as artifacts."""

    def close(self, status: str) -> None:
        """Finish the record with ``status``: completed, failed or interrupted."""


def require_extra(extra: str, wanted: str) -> None:
    """Fail in one line when the optional extra behind ``wanted`` (``logger=mlflow``) is not installed."""
    message = missing_extra(extra, wanted)
    if message:
        raise ConfigError(message)


class TensorBoard(Tracker):
    """Event files in ``<session>/tb``: the scalars, the final metrics, the hyper-parameters with
    the final metrics in TensorBoard's HParams plugin (so ``tensorboard --logdir`` a sweep folder
    compares its jobs in the HParams tab), and the plots as images."""

    def __init__(self, settings: Optional[TensorBoardLogger] = None) -> None:
        self.settings = settings or TensorBoardLogger()
        self.writer: Optional["SummaryWriter"] = None
        self.params: dict[str, Param] = {}
        self.final_step = 0

    def open(self, run: TrackedRun) -> None:
        from torch.utils.tensorboard import SummaryWriter  # slow import: only when used

        self.writer = SummaryWriter(log_dir=str(run.directory / "tb"), purge_step=run.resumed_step)
        self.params = run.params

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)

    def log_final(self, metrics: dict[str, float], step: int) -> None:
        from torch.utils.tensorboard.summary import hparams

        self.log_scalars(metrics, step)
        # The HParams plugin pairs each run's hyper-parameters with the scalars tagged as its metrics.
        for summary in hparams(dict(self.params), dict(metrics)):
            self.writer.file_writer.add_summary(summary, step)
        self.final_step = step

    def log_artifacts(self, folder: Path) -> None:
        from matplotlib.image import imread

        for path in sorted(folder.glob("*.png")) if folder.is_dir() else []:
            self.writer.add_image(f"plots/{path.stem}", imread(str(path))[..., :3], self.final_step, dataformats="HWC")

    def close(self, status: str) -> None:
        if self.writer is not None:
            writer, self.writer = self.writer, None
            writer.close()


class Mlflow(Tracker):
    """One MLflow run per session, in the MLflow experiment named by ``logger.group`` (default: the
    session's parent folder, so a sweep's jobs are one experiment). Without ``tracking_uri`` the
    store is MLflow's local SQLite file ``<output_dir>/mlflow.db`` with artifacts under
    ``<output_dir>/mlartifacts`` — no server. A resumed session continues its own MLflow run
    (``<session>/mlflow.json`` keeps its id)."""

    RECORD = "mlflow.json"
    BATCH = 100  # MLflow takes at most 100 params (1000 metrics) per call
    PARAM_LENGTH = 6000  # and refuses a longer param value (a long list of widths, a path)

    def __init__(self, settings: MlflowLogger) -> None:
        require_extra("mlflow", "logger=mlflow")
        self.settings = settings
        self.client: Any = None
        self.run_id: Optional[str] = None

    def open(self, run: TrackedRun) -> None:
        local = self.settings.tracking_uri is None
        if not local:
            return self._open(run, self.settings.tracking_uri, None)
        run.output_dir.mkdir(parents=True, exist_ok=True)
        store = (run.output_dir / "mlflow.db").resolve()
        with taking_turns(store.with_name("mlflow.db.lock")):  # two jobs creating the store's tables at once collide
            self._open(run, f"sqlite:///{store}", (run.output_dir / "mlartifacts").resolve().as_uri())

    def _open(self, run: TrackedRun, uri: str, artifacts: Optional[str]) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        record = run.directory / self.RECORD
        earlier = json.loads(record.read_text()) if record.is_file() else {}
        if earlier.get("tracking_uri") == uri:  # the session was resumed: its run goes on
            self.run_id = earlier["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            return
        experiment = self._experiment(self.settings.group or run.group, artifacts)
        self.run_id = self.client.create_run(experiment, run_name=run.name, tags={"deepclust.session": str(run.directory)}).info.run_id
        atomic_write_text(record, json.dumps({"tracking_uri": uri, "run_id": self.run_id}) + "\n")
        from mlflow.entities import Param as MlflowParam

        params = [MlflowParam(key, str(value)[: self.PARAM_LENGTH]) for key, value in run.params.items()]
        for start in range(0, len(params), self.BATCH):
            self.client.log_batch(self.run_id, params=params[start : start + self.BATCH])

    def _experiment(self, name: str, artifacts: Optional[str]) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=artifacts)
        except MlflowException:  # a parallel job of the sweep created it first
            return self.client.get_experiment_by_name(name).experiment_id

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(tag, float(value), now, step) for tag, value in values.items()])

    def log_final(self, metrics: dict[str, float], step: int) -> None:
        self.log_scalars(metrics, step)

    def log_artifacts(self, folder: Path) -> None:
        if folder.is_dir():
            self.client.log_artifacts(self.run_id, str(folder), artifact_path=folder.name)

    def close(self, status: str) -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status={"completed": "FINISHED", "interrupted": "KILLED"}.get(status, "FAILED"))
            self.run_id = None


class Csv(Tracker):
    """Plain CSV files in ``<session>/csv``: ``params.csv`` (key, value), ``scalars.csv`` (step,
    tag, value, appended as the run logs), ``metrics.csv`` (metric, value; ``--test-only`` adds its
    ``test/*``) and ``artifacts.csv``
    (the plot files, relative to the session). A resumed run drops the scalars a killed run
    logged after its checkpoint."""

    def __init__(self, settings: Optional[CsvLogger] = None) -> None:
        self.settings = settings or CsvLogger()
        self.folder: Optional[Path] = None
        self.session: Optional[Path] = None
        self.scalars: Optional[io.TextIOBase] = None

    def open(self, run: TrackedRun) -> None:
        self.folder = run.directory / "csv"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.session = run.directory
        atomic_write_text(self.folder / "params.csv", _csv_text(["key", "value"], run.params.items()))
        path = self.folder / "scalars.csv"
        if path.is_file() and run.resumed_step is not None:
            kept = [row for row in csv.reader(io.StringIO(path.read_text())) if row and (row[0] == "step" or int(row[0]) < run.resumed_step)]
            atomic_write_text(path, _csv_text(kept[0], kept[1:]))
        fresh = not path.is_file()
        self.scalars = path.open("a", newline="", encoding="utf-8")
        if fresh:
            self.scalars.write("step,tag,value\n")

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        writer = csv.writer(self.scalars, lineterminator="\n")
        writer.writerows([step, tag, value] for tag, value in values.items())
        self.scalars.flush()

    def log_final(self, metrics: dict[str, float], step: int) -> None:
        self.log_scalars(metrics, step)
        path = self.folder / "metrics.csv"
        earlier = {row["metric"]: row["value"] for row in csv.DictReader(io.StringIO(path.read_text()))} if path.is_file() else {}
        atomic_write_text(path, _csv_text(["metric", "value"], {**earlier, **metrics}.items()))  # --test-only adds test/*

    def log_artifacts(self, folder: Path) -> None:
        files = sorted(path.relative_to(self.session).as_posix() for path in folder.rglob("*") if path.is_file()) if folder.is_dir() else []
        atomic_write_text(self.folder / "artifacts.csv", _csv_text(["path"], [[name] for name in files]))

    def close(self, status: str) -> None:
        if self.scalars is not None:
            self.scalars.close()
            self.scalars = None


def _csv_text(header: list[str], rows: Any) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


class Wandb(Tracker):
    """One Weights & Biases run per session (``logger.mode=offline``: files under
    ``<session>/wandb``, uploaded later by ``wandb sync``), grouped by ``logger.group`` (default:
    the session's parent folder); the config as the run's config, scalars and final metrics as
    its history and summary, plots as images. A resumed session continues its run."""

    def __init__(self, settings: WandbLogger) -> None:
        require_extra("wandb", "logger=wandb")
        self.settings = settings
        self.run: Any = None

    def open(self, run: TrackedRun) -> None:
        # W&B's service process writes its own logs under WANDB_CACHE_DIR (~/.cache/wandb): keep them in output_dir.
        os.environ.setdefault("WANDB_CACHE_DIR", str((run.output_dir / ".wandb_cache").resolve()))
        import wandb

        record = run.directory / "wandb.json"
        earlier = json.loads(record.read_text()) if record.is_file() else {}
        self.run = wandb.init(
            project=self.settings.project, group=self.settings.group or run.group, name=run.name, dir=str(run.directory),
            mode=self.settings.mode.value, config=dict(run.params), id=earlier.get("run_id"), resume="allow" if earlier else None,
            settings=wandb.Settings(silent=True, console="off"),
        )
        atomic_write_text(record, json.dumps({"run_id": self.run.id}) + "\n")

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        self.run.log(dict(values), step=step)

    def log_final(self, metrics: dict[str, float], step: int) -> None:
        self.run.summary.update(dict(metrics))

    def log_artifacts(self, folder: Path) -> None:
        import wandb

        images = {f"plots/{path.stem}": wandb.Image(str(path)) for path in sorted(folder.glob("*.png"))} if folder.is_dir() else {}
        if images:
            self.run.log(images)

    def close(self, status: str) -> None:
        if self.run is not None:
            run, self.run = self.run, None
            run.finish(exit_code=0 if status == "completed" else 1)
