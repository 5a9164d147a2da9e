"""Hyper-parameter search: Hydra's Optuna sweeper (``hydra-optuna-sweeper``) as deepclust runs it.

``hparams_search=<preset>`` (``conf/hparams_search/``) selects ``hydra/sweeper=search``, whose
``_target_`` is :class:`OptunaSearch`: Optuna's sampler proposes each trial's parameters, and the
trial's jobs land in the sweep folder's override-named job folders like a grid sweep's, so the
summary ranks them and a rerun keeps or continues them. On top of the plugin's own sweep:

- **The objective** is ``summary.sort_by`` of the trial's metrics (its direction the metric's
  sense, or ``summary.ascending``), so search and summary rank alike; ``hydra.sweeper.direction``
  stays null (one that disagrees is refused).
- **Seeds**: ``seed=0,1,2`` on the command line (or in ``hydra.sweeper.params``) is not a
  parameter to search: every trial runs once per seed, and its value is the mean over them.
- **Resuming**: without ``hydra.sweeper.storage`` the study is rebuilt from the job folders when
  the command runs again: each trial whose seeds all completed is told to Optuna with its mean;
  a trial that was cut short is asked again first, and its jobs continue from their checkpoints.
  Only the trials still missing from ``hydra.sweeper.n_trials`` run.
- **At the end** the best trial is printed and written as a preset (``best_params.yaml``, an
  ``experiment/`` file with ``# @package _global_``), and ``optimization_history.png`` drawn.
"""

from __future__ import annotations

import functools
import statistics
import warnings
from pathlib import Path
from typing import Any, Optional

import optuna
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from hydra.utils import instantiate
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
from omegaconf import OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntLogUniformDistribution, IntUniformDistribution

from deepclust_cli.config import lowest_first
from deepclust_cli.engine.atomic import atomic_write_text
from deepclust_cli.errors import ConfigError
from deepclust_cli.summary import SEED_KEY, collect_jobs

ABSENT = object()  # OmegaConf.select's answer for a key the config does not have
BEST_PRESET = "best_params.yaml"
HISTORY_PLOT = "optimization_history.png"


class OptunaSearch(OptunaSweeperImpl):
    """The Optuna sweeper with deepclust's objective, seeds, resumption and report (module docstring)."""

    def sweep(self, arguments: list[str]) -> None:
        self._process_searchspace_config()
        seeds, requested = split_seeds([*self._parse_sweeper_params_config(), *arguments])
        distributions, fixed = create_params_from_overrides(requested)
        distributions = {**(self.search_space_distributions or {}), **distributions}
        for name in fixed:
            distributions.pop(name, None)
        if not distributions:
            raise ConfigError("hparams_search: nothing to search; give hydra.sweeper.params, e.g. method.alpha='tag(log, interval(1e-3, 1e3))'")
        absent = [name for name in distributions if OmegaConf.select(self.config, name, default=ABSENT) is ABSENT]
        if absent:  # every trial would fail on it
            raise ConfigError(
                f"hparams_search: {', '.join(absent)} is not a key of method {self.config.method.name}; "
                "add the experiment the preset searches, e.g. experiment=spectralnet_ae_mnist hparams_search=spectralnet_ae_mnist"
            )
        summary = self.config.get("summary") or {}
        metric = str(summary.get("sort_by", "acc"))
        lowest = lowest_first(metric, summary.get("ascending"))
        wanted = "minimize" if lowest else "maximize"
        if self.direction is not None and self._get_directions() != [wanted]:
            raise ConfigError(
                f"hydra.sweeper.direction={self._get_directions()[0]} disagrees with summary.sort_by={metric} "
                f"({'lowest' if lowest else 'highest'} first); drop it: the search follows summary.sort_by and summary.ascending"
            )
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        if isinstance(self.sampler, functools.partial):
            raise ConfigError("hydra/sweeper/sampler=grid: a grid is a plain sweep; list the values instead, e.g. deepclust -m method.alpha=0,1e-3,1e-2")
        sweep_dir.mkdir(parents=True, exist_ok=True)
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # the trials are reported by the jobs and the summary
        study = optuna.create_study(
            study_name=self.study_name, storage=self.storage, sampler=self.sampler,
            direction=wanted, load_if_exists=True,
        )
        if self.storage is None:
            with warnings.catch_warnings():  # Optuna 2 marks create_trial, add_trial and enqueue_trial experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                restored, unfinished = restore_trials(study, sweep_dir, distributions, fixed, seeds, metric)
            if restored or unfinished:
                study.sampler = self.reseeded(restored + unfinished)
                print(f"deepclust: search: {restored} trials restored from the job folders of an earlier run, {unfinished} unfinished ones asked again first")
        to_go = self.n_trials - sum(t.state.is_finished() for t in study.trials)
        while to_go > 0:
            trials = [study.ask() for _ in range(min(to_go, self.n_jobs))]
            overrides = self._configure_trials(trials, distributions, fixed)
            jobs = [(*trial, *([f"{SEED_KEY}={seed}"] if seed is not None else [])) for trial in overrides for seed in seeds]
            returns = self.launcher.launch(jobs, initial_job_idx=self.job_idx)
            self.job_idx += len(returns)
            failed = 0
            for index, trial in enumerate(trials):
                value = trial_value(returns[index * len(seeds) : (index + 1) * len(seeds)], metric)
                if value is None:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    failed += 1
                else:
                    study.tell(trial, value)
            if failed and stopped(self.config):
                break  # a signal stopped the sweep: the rest of the search waits for the rerun
            if failed / len(trials) > self.max_failure_rate:
                print(f"deepclust: search: stopped: {failed} of {len(trials)} trials asked together failed (hydra.sweeper.max_failure_rate={self.max_failure_rate})")
                break
            to_go -= len(trials)
        report(study, sweep_dir, preset_defaults(fixed, dict(self.config.hydra.runtime.choices)), fixed, metric, lowest, seeds)

    def reseeded(self, offset: int) -> Any:
        """The sampler for a search that continues ``offset`` earlier trials: a seeded sampler
        seeded anew (seed + offset), so it does not propose the earlier run's first trials again."""
        config = self.config.hydra.sweeper.sampler
        if config.get("seed") is None:
            return self.sampler
        return instantiate(config, seed=int(config.seed) + offset)


def split_seeds(overrides: list[str]) -> tuple[list[Optional[int]], list[str]]:
    """The seeds each trial runs (``seed=0,1,2``, a range, or one ``seed=3``; ``[None]``: the
    config's) and the other overrides."""
    seeds: list[Optional[int]] = [None]
    rest = []
    for line, override in zip(overrides, OverridesParser.create().parse_overrides(overrides)):
        if override.get_key_element() != SEED_KEY:
            rest.append(line)
        elif override.is_sweep_override():
            seeds = [int(value) for value in override.sweep_string_iterator()]
        else:
            seeds = [int(override.value())]
    return seeds, rest


def trial_value(returns: list[JobReturn], metric: str) -> Optional[float]:
    """A trial's objective: the mean of ``metric`` over its jobs (one per seed); None when one of
    them was refused or failed (the CLI recorded why) or reported no such metric. A job that
    raised — a crash, not a user error — raises here, as in a grid sweep."""
    values = []
    for job in returns:
        metrics = job.return_value  # re-raises what a crashed job raised
        value = metrics.get(metric) if isinstance(metrics, dict) else None
        if not isinstance(value, (int, float)):
            return None
        values.append(float(value))
    return statistics.fmean(values)


def stopped(config: Any) -> bool:
    """Whether SIGINT/SIGTERM stopped the sweep (the CLI's marker beside the sweep's report)."""
    report_path = config.hydra.callbacks.get("sweep_summary", {}).get("report")
    return bool(report_path) and Path(str(report_path)).with_name("stop").is_file()


def parse_value(text: str, distribution: BaseDistribution) -> Any:
    """An override's value as the job folder records it, back in ``distribution``'s type."""
    if isinstance(distribution, CategoricalDistribution):
        return next(choice for choice in distribution.choices if str(choice) == text)
    if isinstance(distribution, (IntUniformDistribution, IntLogUniformDistribution)):
        return int(text)
    return float(text)


def restore_trials(study: optuna.Study, sweep_dir: Path, distributions: dict[str, BaseDistribution], fixed: dict[str, Any],
                   seeds: list[Optional[int]], metric: str) -> tuple[int, int]:
    """Tell ``study`` the trials an earlier run of this search left in ``sweep_dir``'s job folders
    (oldest first): completed when all ``seeds`` completed, with their mean of ``metric``; a
    trial with jobs that did not all complete is enqueued, so it is asked again first and its
    jobs continue. Folders of other overrides (another search space) are left out. Returns
    (restored, enqueued)."""
    keys = {*distributions, *fixed} | ({SEED_KEY} if seeds != [None] else set())
    trials: dict[tuple[tuple[str, Any], ...], list[dict[str, Any]]] = {}
    for row in collect_jobs(sweep_dir):
        overrides = {key: value for key, value in row.items() if key in keys}
        if set(overrides) != keys or any(str(overrides[name]) != str(value) for name, value in fixed.items()):
            continue
        try:
            params = tuple((name, parse_value(str(overrides[name]), d)) for name, d in distributions.items())
            optuna.trial.create_trial(params=dict(params), distributions=distributions, value=0.0)  # inside today's space?
        except (StopIteration, ValueError):
            continue
        trials.setdefault(params, []).append({**row, "updated": (sweep_dir / row["job"] / "run.json").stat().st_mtime if (sweep_dir / row["job"] / "run.json").is_file() else 0.0})
    restored = enqueued = 0
    for params, rows in sorted(trials.items(), key=lambda item: min(row["updated"] for row in item[1])):
        done = {str(row.get(SEED_KEY)) for row in rows if row["status"] == "completed" and isinstance(row.get(metric), (int, float))}
        if done >= {str(seed) for seed in seeds if seed is not None} and done:
            value = statistics.fmean(float(row[metric]) for row in rows if row["status"] == "completed")
            study.add_trial(optuna.trial.create_trial(params=dict(params), distributions=distributions, value=value))
            restored += 1
        else:
            study.enqueue_trial(dict(params))
            enqueued += 1
    return restored, enqueued


PRESET_GROUPS = ("method", "dataset", "trainer", "logger")  # group choices a preset's defaults can override


def preset_defaults(fixed: dict[str, Any], choices: dict[str, Any]) -> list[Any]:
    """The defaults list of a preset that reproduces the search's fixed group choices: the
    ``experiment`` it searched (included, so its values stay), then the other groups overridden."""
    defaults: list[Any] = [str(fixed["experiment"])] if "experiment" in fixed else []
    defaults += [{f"override /{group}": str(fixed[group])} for group in PRESET_GROUPS if group in fixed and group in choices]
    return [*defaults, "_self_"]


def report(study: optuna.Study, sweep_dir: Path, defaults: list[Any], fixed: dict[str, Any], metric: str, lowest: bool, seeds: list[Optional[int]]) -> None:
    """Print the best trial, write it as an experiment preset (``best_params.yaml``: ``defaults``,
    the fixed dotted overrides and the best parameters) and draw the history."""
    finished = [t for t in study.trials if t.state.is_finished()]
    complete = [t for t in finished if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        print(f"deepclust: search: none of {len(finished)} trials completed")
        return
    from deepclust_cli import plots  # matplotlib: only once there is something to draw

    plots.optimization_history([t.value if t.state == optuna.trial.TrialState.COMPLETE else float("nan") for t in finished], lowest, metric,
                               sweep_dir / HISTORY_PLOT)
    best = study.best_trial
    over = f"mean over seeds {', '.join(str(s) for s in seeds)}" if len(seeds) > 1 else "one seed"
    params = " ".join(f"{name}={value}" for name, value in best.params.items())
    print(f"deepclust: search: best of {len(complete)} completed trials ({len(finished)} run): {metric}={best.value:.4f} ({over}) with {params}")
    values = {name: _plain(value) for name, value in fixed.items() if "." in name and not name.startswith(("hydra.", "summary.", "plots."))}
    header = (
        f"# @package _global_\n# The best trial of the Optuna search in {sweep_dir}: {metric}={best.value:.6g} ({over}).\n"
        "# Copy it to conf/experiment/<name>.yaml and run: deepclust experiment=<name>\n"
    )
    atomic_write_text(sweep_dir / BEST_PRESET, header + yaml.safe_dump({"defaults": defaults, **nested({**values, **best.params})}, sort_keys=False))
    print(f"deepclust: search: preset {sweep_dir / BEST_PRESET}, history {sweep_dir / HISTORY_PLOT}")


def nested(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"method.alpha": 1}`` as ``{"method": {"alpha": 1}}``."""
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = tree
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return tree


def _plain(text: Any) -> Any:
    """A fixed override's value as YAML reads it (``300`` a number, ``[16]`` a list)."""
    try:
        return yaml.safe_load(str(text))
    except yaml.YAMLError:
        return str(text)

