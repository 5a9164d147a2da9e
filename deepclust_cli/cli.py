"""The ``deepclust`` command: argv → Hydra → :func:`deepclust_cli.run.run`.

Hydra parses ``key=value`` overrides, ``-m``, ``--help`` and ``--cfg``; this module adds
``--resume PATH`` / ``--resume=PATH`` / ``--test-only`` (rewritten to overrides before Hydra sees
argv), rebuilds a resumed run from its checkpoint's own config, checks config-group choices up
front, and turns every user error into one line on stderr with a non-zero exit.

Nothing here imports torch: ``--help``, ``--cfg`` and every config error answer from the schemas
alone, and :mod:`deepclust_cli.run` (torch, the methods) is imported once a run's config is valid.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import hydra
import yaml
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.errors import HydraException, MissingConfigException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import deepclust_cli.data  # noqa: F401  (registers the datasets' schemas)
import deepclust_cli.loggers  # noqa: F401  (registers the trackers' schemas)
import deepclust_cli.methods  # noqa: F401  (registers the methods' schemas)
from deepclust_cli.config import EXTRAS, INVOCATION_KEYS, RESUME_NEEDS_A_PATH, literal, missing_extra, to_settings
from deepclust_cli.engine.disk import is_disk_full
from deepclust_cli.engine.interrupt import StopRequests
from deepclust_cli.engine.memory import reuse_freed_memory
from deepclust_cli.errors import CheckpointError, ConfigError, DeepclustError, Interrupted, SessionBusy
from deepclust_cli.registry import unknown_name_message

PACKAGE_DIR = Path(__file__).resolve().parent
# A source checkout keeps conf/ beside the package; a wheel carries it inside (see pyproject.toml).
CONF_DIR = next(d for d in (PACKAGE_DIR.parent / "conf", PACKAGE_DIR / "conf") if (d / "config.yaml").is_file())
GROUPS = ("method", "dataset", "trainer", "logger", "experiment", "hparams_search")
# Hydra flags that take the next argument as their value (--info's value is optional).
VALUE_FLAGS = {"--config-dir", "-cd", "--config-name", "-cn", "--config-path", "-cp", "--package", "-p",
               "--experimental-rerun", "--cfg", "-c"}
INFO_VALUES = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}
CONFIG_FLAGS = {"--config-dir", "-cd", "--config-name", "-cn", "--config-path", "-cp"}  # another config than conf/config.yaml

# ``${suffix:${name}}`` in folder names: "_<name>" for a named run, nothing otherwise.
OmegaConf.register_new_resolver("suffix", lambda value: f"_{value}" if value else "", replace=True)
FOLDER_NAME_LIMIT = 120  # longer names are cut and end with a digest of the whole


def folder_name(text: str) -> str:
    """``text`` as one folder name: separators and unusual characters become ``_``, a name over
    FOLDER_NAME_LIMIT characters is cut, and either change adds a digest of ``text``, so distinct
    texts never share a folder."""
    if not text:
        return "default"
    name = re.sub(r"[^A-Za-z0-9=,.+_@-]+", "_", text).strip("._") or "default"
    if name == text and len(name) <= FOLDER_NAME_LIMIT:
        return name
    # Cleaned or cut, two texts could meet in one name (a/s.csv and a_s.csv): the digest keeps them apart.
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{name[: FOLDER_NAME_LIMIT - 11]}-{digest}"


# Sweep job folders are named by the job's own overrides (``hydra.job.override_dirname``).
OmegaConf.register_new_resolver("job_folder", folder_name, replace=True)


def group_listing() -> str:
    """``group: option, option`` lines for --help (Hydra's own listing would show the schema groups too)."""
    return "\n".join(f"{group}: {', '.join(sorted(p.stem for p in (CONF_DIR / group).glob('*.yaml')))}" for group in GROUPS)


HELP = """deepclust: a config-driven experiment runner for deep clustering

Usage: deepclust [--resume PATH] [--test-only] [-m] [key=value ...]

  --resume PATH   continue training from a checkpoint (in its session folder; restart=true for a new one)
  --test-only     with --resume: rebuild the run from the checkpoint's config, evaluate, train nothing
  --predict       with --resume: assign every sample of a dataset (e.g. dataset.path=new.csv; labels optional)
                  with the trained model, into a new session folder
  -m, --multirun  sweep over comma-separated values; summary.md ranks them by summary.sort_by (mean ± std over seeds);
                  with hparams_search=<preset>, an Optuna search whose objective is summary.sort_by
  --cfg job       print the composed config and exit
  --hydra-help    Hydra's own flags

== Config groups (pick one with group=name) ==
{groups}

== Composed config ==
{config}
Examples:
  deepclust method=kmeans dataset=blobs
  deepclust trainer=debug experiment=spectralnet_mnist data_dir=../shared/data   # a smoke test in seconds
  deepclust method=kmeans dataset=mnist data_dir=../shared/data
  deepclust --resume outputs/kmeans/mnist/<session>/checkpoints/last.ckpt --test-only
  deepclust --resume outputs/lnscc/features/<session>/checkpoints/last.ckpt --predict dataset.path=new.csv
  deepclust -m method=kmeans,spectral dataset=blobs,circles
  deepclust -m experiment=spectralnet_ae_twomoons method.alpha=0,1e-3,1e-2 seed=0,1,2 summary.sort_by=nmi
  deepclust -m experiment=spectralnet_ae_mnist hparams_search=spectralnet_ae_mnist data_dir=../shared/data seed=0,1
  deepclust logger=mlflow method=kmeans dataset=blobs   # or logger=csv, logger=wandb (offline)"""


def compose(overrides: list[str]) -> DictConfig:
    """The run's config as Hydra composes it from ``conf/`` and ``overrides`` (no sweep values)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3", job_name="deepclust"):
        return hydra.compose(config_name="config", overrides=overrides)


def main(argv: Optional[list[str]] = None) -> None:
    """Console entry point; exits with 0, or with the error's code after one line on stderr."""
    argv = list(sys.argv[1:] if argv is None else argv)
    reuse_freed_memory()
    try:
        code = run_cli(argv)
    except Interrupted as stop:
        print(f"deepclust: {stop}", file=sys.stderr)
        sys.exit(stop.exit_code)
    except DeepclustError as error:
        _fail(str(error), error.exit_code)
    except (HydraException, OmegaConfBaseException) as error:
        if os.environ.get("DEEPCLUST_DEBUG"):
            raise
        _fail(hydra_error_line(error), 2)
    except MemoryError:
        if os.environ.get("DEEPCLUST_DEBUG"):
            raise
        _fail("out of memory; use fewer samples (dataset.n_samples, dataset.max_samples) or smaller batches", 1)
    except OSError as error:  # a full disk, a read-only or mistyped output_dir: the environment, not a bug
        if os.environ.get("DEEPCLUST_DEBUG"):
            raise
        if is_disk_full(error):  # outside a session (a sweep's own files): nothing of a run to name
            _fail(f"disk full{f' writing {error.filename}' if error.filename else ''}; free space, or set output_dir to a disk with room", 1)
        if error.filename is None:
            raise
        _fail(f"{error.filename}: {error.strerror}", 1)
    sys.exit(code)


HYDRA_MODES = {"-m": "--multirun", "--multirun": "--multirun", "--cfg": "--cfg", "-c": "--cfg", "--info": "--info",
               "-i": "--info", "--run": "--run", "-r": "--run", "--shell-completion": "--shell-completion", "-sc": "--shell-completion"}


@dataclass
class Outcome:
    """What the jobs of one command ended with, for :func:`run_cli` to report once Hydra returns:
    raised inside Hydra, an error would get Hydra's own multi-line report first."""

    errors: list[DeepclustError] = field(default_factory=list)  # user errors the jobs met
    stop: Optional[Interrupted] = None  # the job that SIGINT/SIGTERM stopped; the rest of a sweep waits
    report: Optional[Path] = None  # where a sweep's summary writes which jobs did not complete

    def not_completed(self) -> list[str]:
        try:
            return list(json.loads(self.report.read_text())["not_completed"]) if self.report else []
        except (OSError, ValueError, KeyError):
            return []


def run_cli(argv: list[str]) -> int:
    args = translate_argv(argv)
    modes = sorted({HYDRA_MODES[arg] for arg in args if arg in HYDRA_MODES})
    if len(modes) > 1:
        raise ConfigError(f"{' and '.join(modes)} cannot be combined; e.g. to see a sweep's launcher, drop -m: deepclust --cfg hydra ...")
    overrides = parse_overrides([a for a in args if "=" in a and not a.startswith("-")])
    check_group_choices(overrides, extra_config_dirs(args))
    check_extras(overrides)
    if last_value(overrides, "hparams_search") is not None and not modes and not {"--help", "-h"} & set(args):
        args, modes = ["-m", *args], ["--multirun"]  # a search is a sweep: its trials are the jobs
    own_config = not any(arg.split("=")[0] in CONFIG_FLAGS for arg in args)
    flags = [arg for arg in args if arg.startswith("-")]
    if own_config and any(arg in ("--help", "-h") for arg in args):
        # Hydra's --help lists every config group, schemas included, in seconds; ours reads conf/.
        print(HELP.format(groups=group_listing(), config=OmegaConf.to_yaml(compose([o.input_line for o in overrides]))))
        return 0
    if own_config and flags in (["--cfg"], ["-c"]) and args[args.index(flags[0]) + 1 :][:1] == ["job"]:
        print(OmegaConf.to_yaml(compose([o.input_line for o in overrides])), end="")  # as Hydra's --cfg job, in one compose
        return 0
    if own_config and not modes and not is_sweep(args) and last_value(overrides, "resume") is None:
        to_settings(compose([o.input_line for o in overrides]))  # one compose finds a config error; Hydra's run makes two
    with tempfile.TemporaryDirectory(prefix="deepclust-") as scratch:
        outcome = Outcome(report=Path(scratch) / "sweep.json")
        resume = last_value(overrides, "resume")
        if resume:
            args = resume_args(args, overrides, Path(resume), Path(scratch))
        elif is_sweep(args) and not any(o.key_or_group == "hydra.sweep.dir" for o in overrides):
            args = [*args, f"hydra.sweep.dir={quote(sweep_folder(overrides), prefix='${output_dir}/multirun/')}"]
        if is_sweep(args):
            from hydra.core.plugins import Plugins

            from hydra_plugins.deepclust_search import OptunaSearch

            Plugins.instance().register(OptunaSearch)  # an editable install hides it from Hydra's scan of hydra_plugins
            args = [*args, f"hydra.callbacks.sweep_summary.report={quote(str(outcome.report))}"]
            for note in repeated_sweep_values(overrides):
                print(f"deepclust: {note}", file=sys.stderr)

        def task(cfg: DictConfig) -> Optional[dict[str, float]]:
            return run_job(cfg, outcome)

        # A sweep keeps its own handlers between (and, with the joblib launcher, around) its jobs: a
        # signal stops the running jobs at their next checkpoint and the jobs not started wait.
        sweep_stop = SweepStop(stop_marker(outcome.report)) if is_sweep(args) else None
        if sweep_stop is not None:
            sweep_stop.requests.install()

        # Hydra would print its own multi-line report and exit; we want the exception, to print one line.
        os.environ["HYDRA_FULL_ERROR"] = "1"
        saved_argv = sys.argv
        sys.argv = ["deepclust", *overrides_last(args)]
        try:
            hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")(task)()
        finally:
            sys.argv = saved_argv
            GlobalHydra.instance().clear()
            if sweep_stop is not None:
                sweep_stop.requests.restore()
        not_completed = outcome.not_completed()
        if sweep_stop is not None and outcome.stop is None and sweep_stop.requests.signal_number is not None:
            number = sweep_stop.requests.signal_number
            outcome.stop = Interrupted(
                f"sweep stopped by {signal.Signals(number).name}; the jobs that finished are in the summary, the others "
                "continue from their checkpoints when you run the same deepclust -m command again",
                number,
                "",
            )
    if outcome.stop is not None:
        raise outcome.stop
    if len(outcome.errors) == 1 and not not_completed:
        raise outcome.errors[0]
    return 1 if not_completed or outcome.errors else 0


def run_job(cfg: DictConfig, outcome: Outcome) -> Optional[dict[str, float]]:
    """The task Hydra runs once per job. User errors are kept in ``outcome`` for :func:`run_cli`
    to report in one line; in a sweep, one failed job is recorded in its folder and the sweep goes on."""
    hydra_cfg = HydraConfig.get()
    # Raw, as Hydra holds them: resolving again would take a value's escaped ``\${`` (and a folder
    # name made of one) for an interpolation.
    directory = Path(OmegaConf.to_container(hydra_cfg.runtime, resolve=False)["output_dir"])
    task_overrides = list(OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False))
    sweep = hydra_cfg.mode == RunMode.MULTIRUN
    report = OmegaConf.select(hydra_cfg, "callbacks.sweep_summary.report") if sweep else None
    marker = stop_marker(Path(str(report))) if report else None
    if outcome.stop is not None or (marker is not None and marker.is_file()):  # a signal stopped the sweep: the rest waits for its rerun
        if directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()
        return None
    try:
        if sweep:
            foreign = foreign_job(directory, task_overrides)
            if foreign is not None:
                outcome.errors.append(foreign)
                print(f"deepclust: {foreign}", file=sys.stderr)
                return None
            finished = finished_metrics(directory)
            if finished is not None:
                print(f"deepclust: job {directory.name} finished in an earlier run of this sweep; kept", file=sys.stderr)
                return finished
            last = directory / "checkpoints" / "last.ckpt"
            if last.is_file() and not cfg.resume:
                print(f"deepclust: job {directory.name} continues from {last}", file=sys.stderr)
                cfg.resume = str(last)
            if "JoblibLauncher" in str(OmegaConf.select(hydra_cfg, "launcher._target_")):
                cfg.gpus = job_gpus(list(cfg.gpus), hydra_cfg.job.num)
        settings = to_settings(cfg)  # every config error is found here, before torch is imported
        from deepclust_cli.engine import distributed
        from deepclust_cli.run import run

        if sweep:
            distributed.adopt_slurm_tasks()
        return run(settings, cfg, directory, task_overrides)
    except Interrupted as stop:
        if sweep:
            # Folders are named by overrides, so running the sweep again resumes it.
            stop = Interrupted(
                f"sweep stopped by a signal in job {directory.name} (checkpoint {stop.checkpoint}); "
                "resume it by running the same deepclust -m command again",
                stop.signal_number,
                stop.checkpoint,
            )
        outcome.stop = stop
        return None
    except SessionBusy as busy:
        outcome.errors.append(busy)
        if sweep:  # the other process owns the folder: nothing is recorded in it
            print(f"deepclust: job {directory.name} is being run by {busy.holder}; not retrained here", file=sys.stderr)
        return None
    except DeepclustError as error:
        outcome.errors.append(error)
        if sweep:
            from deepclust_cli.summary import record_failed_job

            try:
                record_failed_job(directory, str(error), task_overrides)
            except OSError:
                pass  # a full disk: the line below and the job's own run.json, where it got one, say it
            print(f"deepclust: job {directory.name} failed: {error}", file=sys.stderr)
        else:
            remove_empty_folders(directory, Path(str(cfg.output_dir)))  # Hydra made them; a refused run leaves no trace
        return None


def remove_empty_folders(directory: Path, stop_at: Path) -> None:
    """Remove ``directory`` and its parents below ``stop_at`` while they are empty (a session
    folder the refused run already removed leaves its empty parents to remove)."""
    stop_at = stop_at.resolve()
    directory = directory.resolve()
    while directory != stop_at and stop_at in directory.parents:
        if directory.is_dir():
            if any(directory.iterdir()):
                return
            directory.rmdir()
        directory = directory.parent


def job_gpus(gpus: list[int], job_number: int) -> list[int]:
    """The GPU of job ``job_number`` when jobs run side by side: ``gpus`` taken round-robin."""
    return [gpus[job_number % len(gpus)]] if gpus else []


def foreign_job(directory: Path, task_overrides: list[str]) -> Optional[DeepclustError]:
    """An error when the job folder ``directory`` records other overrides than this job's (a
    folder is a job's only if its overrides.yaml says so), else None. Keys that do not name the
    experiment (output_dir, resume, …: Hydra's override_dirname.exclude_keys) are left out."""
    try:
        recorded = yaml.safe_load((directory / "overrides.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    excluded = set(HydraConfig.get().job.config.override_dirname.exclude_keys) | set(INVOCATION_KEYS)

    def experiment(overrides: Any) -> set[str]:
        return {o for o in (overrides or []) if isinstance(o, str) and o.split("=", 1)[0].lstrip("+~") not in excluded}

    if experiment(recorded) == experiment(task_overrides):
        return None
    return DeepclustError(
        f"job folder {directory} holds another job ({' '.join(sorted(experiment(recorded)))}); "
        "move it away, or give this sweep its own folder with name=<sweep name>"
    )


def repeated_sweep_values(overrides: list[Override]) -> list[str]:
    """A note for every sweep override that lists a value twice (``seed=0,0``): Hydra runs such a
    job once, in one folder."""
    notes = []
    for override in overrides:
        if not override.is_sweep_override():
            continue
        try:
            values = list(override.sweep_string_iterator())
        except (HydraException, TypeError, ValueError):
            continue
        for value in sorted({v for v in values if values.count(v) > 1}):
            count = values.count(value)
            notes.append(f"{override.input_line} lists {value} {'twice' if count == 2 else f'{count} times'}; that job runs once")
    return notes


def stop_marker(report: Path) -> Path:
    """The file :class:`SweepStop` writes beside the sweep's report when a signal stops the sweep."""
    return report.with_name("stop")


class SweepStop:
    """A sweep's SIGINT/SIGTERM handling in the process that launched it: the signal is recorded,
    a marker file tells jobs not yet started (in this process or a joblib worker) to wait, and the
    joblib launcher's worker processes get the signal too, so that their running jobs checkpoint
    and stop instead of training on as orphans."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker
        self.requests = StopRequests(announce="the running jobs checkpoint and stop; the rest of the sweep waits for a rerun", on_signal=self._stop)

    def _stop(self, number: int) -> None:
        self.marker.write_text(f"{number}\n")
        if number != signal.SIGTERM:
            return  # Ctrl-C reaches the workers itself (the terminal signals the whole process group)
        for pid in joblib_workers():
            try:
                os.kill(pid, number)
            except ProcessLookupError:
                pass


def joblib_workers() -> list[int]:
    """The process ids of this process's loky workers (Linux: from /proc; elsewhere none are found)."""
    workers = []
    for children in Path("/proc/self/task").glob("*/children"):
        try:
            pids = children.read_text().split()
        except OSError:
            continue
        for pid in pids:
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"popen_loky" in command:
                workers.append(int(pid))
    return workers


def finished_metrics(directory: Path) -> Optional[dict[str, float]]:
    """The metrics of a sweep job that completed in ``directory`` before, or None."""
    try:
        status = json.loads((directory / "run.json").read_text()).get("status")
        return json.loads((directory / "metrics.json").read_text()) if status == "completed" else None
    except (OSError, ValueError):
        return None


def is_sweep(args: list[str]) -> bool:
    return any(arg in ("-m", "--multirun") for arg in args)


NOT_IN_SWEEP_NAMES = ("hydra", "output_dir", "summary")  # where and how a sweep runs and reports, not what it runs


def sweep_folder(overrides: list[Override]) -> str:
    """A sweep's folder: its ``name``, or else named by its command line's overrides (in any
    order), so that running the same sweep again finds the jobs of the last time."""
    name = last_value(overrides, "name")
    if name:
        return folder_name(str(name))
    lines = sorted(o.input_line for o in overrides if not o.key_or_group.startswith(NOT_IN_SWEEP_NAMES))
    return folder_name("+".join(lines)) if lines else "default"


def translate_argv(argv: list[str]) -> list[str]:
    """``--resume PATH``, ``--resume=PATH`` → ``resume='PATH'``; ``--test-only`` → ``test_only=true``;
    ``--predict`` → ``predict=true``."""
    args: list[str] = []
    position = 0
    while position < len(argv):
        arg = argv[position]
        if arg == "--resume":
            if position + 1 >= len(argv) or not argv[position + 1] or argv[position + 1].startswith("-"):
                raise ConfigError(RESUME_NEEDS_A_PATH)
            args.append(f"resume={quote(argv[position + 1])}")
            position += 2
            continue
        if arg.startswith("--resume="):
            if arg == "--resume=":
                raise ConfigError(RESUME_NEEDS_A_PATH)
            args.append(f"resume={quote(arg.split('=', 1)[1])}")
        elif arg == "--test-only":
            args.append("test_only=true")
        elif arg == "--predict":
            args.append("predict=true")
        else:
            args.append(arg)
        position += 1
    return args


def overrides_last(args: list[str]) -> list[str]:
    """Flags first, overrides after: Hydra's argparse rejects overrides on both sides of a flag."""
    flags: list[str] = []
    overrides: list[str] = []
    position = 0
    while position < len(args):
        arg = args[position]
        takes_value = arg in VALUE_FLAGS or (arg in ("--info", "-i") and position + 1 < len(args) and args[position + 1] in INFO_VALUES)
        if takes_value and position + 1 < len(args):
            flags += args[position : position + 2]
            position += 2
            continue
        (flags if arg.startswith("-") else overrides).append(arg)
        position += 1
    return [*flags, *overrides]


def quote(value: str, *, prefix: str = "") -> str:
    """A Hydra override value that stays one literal string whatever characters ``value`` has. In
    Hydra's quoted strings a backslash escapes only a quote or the closing quote, so only those
    backslashes double; ``${`` is escaped, else OmegaConf would resolve it. ``prefix`` goes in front
    as it is (an interpolation such as ``${output_dir}/``)."""
    escaped = re.sub(r"(\\*)('|$)", lambda match: match.group(1) * 2 + ("\\'" if match.group(2) else ""), literal(value))
    return "'" + prefix + escaped + "'"


def parse_overrides(overrides: list[str]) -> list[Override]:
    try:
        return OverridesParser.create().parse_overrides(overrides)
    except HydraException as error:
        raise ConfigError(hydra_error_line(error)) from None


def last_value(overrides: list[Override], key: str) -> Any:
    """The value the last override of ``key`` sets (None when none does or it is a sweep), with an
    escaped ``\\${`` read as the text ``${``, as OmegaConf will."""
    values = [o.value() for o in overrides if o.key_or_group == key and not o.is_sweep_override()]
    if not values:
        return None
    return values[-1].replace("\\${", "${") if isinstance(values[-1], str) else values[-1]


def check_group_choices(overrides: list[Override], config_dirs: list[Path]) -> None:
    """Fail before any work when ``method=``, ``dataset=``, ``trainer=`` or ``experiment=`` names
    a config that does not exist — every value of a sweep included."""
    for override in overrides:
        group = override.key_or_group
        if group not in GROUPS or override.is_delete():
            continue
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.value()]
        known = sorted(
            {path.stem for directory in config_dirs for path in (directory / group).glob("*.yaml")}
        )
        for value in values:
            if value is not None and str(value) not in known:
                raise ConfigError(unknown_name_message(group, str(value), known))


def check_extras(overrides: list[Override]) -> None:
    """Fail before any work, in one line naming the extra to install, when an override asks for
    an optional tracker (``logger=mlflow``) or the Optuna search (``hparams_search=...``) and its
    extra is not installed — every value of a sweep included."""
    for override in overrides:
        if override.key_or_group not in ("logger", "hparams_search", "hydra/sweeper") or override.is_delete():
            continue
        values = list(override.sweep_string_iterator()) if override.is_sweep_override() else [override.value()]
        for value in values:
            extra = str(value) if override.key_or_group == "logger" else "optuna"
            message = missing_extra(extra, f"{override.key_or_group}={value}") if extra in EXTRAS and value is not None else None
            if message:
                raise ConfigError(message)


def extra_config_dirs(args: list[str]) -> list[Path]:
    """Our ``conf/`` plus any ``--config-dir``/``-cd`` the user adds."""
    dirs = [CONF_DIR]
    for position, arg in enumerate(args):
        if arg in ("--config-dir", "-cd") and position + 1 < len(args):
            dirs.append(Path(args[position + 1]))
        elif arg.startswith("--config-dir="):
            dirs.append(Path(arg.split("=", 1)[1]))
    return dirs


def resume_args(args: list[str], overrides: list[Override], checkpoint: Path, scratch: Path) -> list[str]:
    """Compose a resumed run from the checkpoint's own config, with today's overrides on top.

    The stored (resolved) config becomes the primary config of this invocation, on top of the
    same schemas, so new ``key=value`` overrides are type-checked and applied as usual. Training
    continues in the checkpoint's session folder unless ``restart=true``.
    """
    from deepclust_cli.engine.checkpoint import load_checkpoint, session_dir_of  # torch: a resumed run needs it anyway
    from deepclust_cli.engine.lock import holder_of

    payload = load_checkpoint(checkpoint, mmap=True)
    stored = payload.get("config")
    if not stored:
        raise CheckpointError(
            f"{checkpoint}: saved by the library (method.save), not by a session; load it with Method.load(path)"
        )
    predicting = last_value(overrides, "predict") is True
    changes = ("method",) if predicting else ("method", "dataset")  # a trained model labels any dataset it can read
    for group in changes:
        if any(o.key_or_group == group for o in overrides):
            raise ConfigError(f"{group}= cannot change when resuming; override its fields instead, e.g. {group}.<key>=<value>")
    new_logger = last_value(overrides, "logger")
    logger_choice = new_logger or (stored.get("logger") or {}).get("name", "tensorboard")  # checkpoints from before logger= had TensorBoard
    if new_logger is not None:  # another tracker for the rest of the run: the primary config selects it
        stored = {key: value for key, value in stored.items() if key != "logger"}
        args = [arg for arg in args if arg.split("=", 1)[0] != "logger"]
    new_dataset = last_value(overrides, "dataset")
    dataset_default: Any = f"/schema/dataset/{stored['dataset']['name']}@dataset"
    if new_dataset is not None:
        dataset_default = {"dataset": new_dataset}
        stored = {key: value for key, value in stored.items() if key != "dataset"}
        args = [arg for arg in args if arg.split("=", 1)[0] != "dataset"]  # the primary config selects it
    primary = {
        "defaults": ["deepclust_schema", f"/schema/method/{stored['method']['name']}@method", dataset_default, {"logger": logger_choice}, {"hydra": "default"}, "_self_"],
        **literal(stored),  # resolved once already: a value's ``${`` is text now
    }
    (scratch / "resumed.yaml").write_text(yaml.safe_dump(primary, sort_keys=False))
    extra = ["--config-dir", str(scratch), "--config-name", "resumed"]
    session = session_dir_of(checkpoint)
    if session is None or predicting or last_value(overrides, "restart") is True:
        return [*args, *extra]  # a new session folder under output_dir
    holder = holder_of(session)
    if holder is not None and last_value(overrides, "test_only") is True:
        print(f"deepclust: session {session} is in use by {holder}; evaluating into a new session folder", file=sys.stderr)
        return [*args, *extra]
    return [*args, *extra, f"hydra.run.dir={quote(str(session))}"]


def hydra_error_line(error: Exception) -> str:
    """Hydra's and OmegaConf's reports span lines; keep what names the problem, on one line."""
    if isinstance(error, MissingConfigException) and error.missing_cfg_file and "/" in error.missing_cfg_file:
        group, name = error.missing_cfg_file.rsplit("/", 1)
        return unknown_name_message(group, name, sorted(error.options or []))
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    cause = error.__cause__
    if isinstance(cause, OmegaConfBaseException) and str(cause).strip():
        lines.append(str(cause).strip().splitlines()[0])
    return ": ".join(lines[:1] + lines[-1:] if len(lines) > 1 else lines) or type(error).__name__


def _fail(message: str, code: int) -> None:
    print(f"deepclust: error: {message}", file=sys.stderr)
    sys.exit(code)
