"""One run, end to end — the data path:

config (validated) → ranks (one, or one per GPU) → device → session folder → dataset → method →
fit (or resume, or nothing for --test-only) → evaluate → metrics.json, plots, printed summary.
"""

from __future__ import annotations

import dataclasses
import signal
from pathlib import Path
from typing import Any, Union

import yaml
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from deepclust_cli.config import INVOCATION_KEYS, RunConfig, config_differences, literal, to_settings
from deepclust_cli.data.base import Dataset, Split, Standardization, load_dataset
from deepclust_cli.data.config import SplitMode
from deepclust_cli.engine import distributed
from deepclust_cli.engine.checkpoint import load_checkpoint, session_dir_of
from deepclust_cli.engine.device import select_device
from deepclust_cli.engine.lock import holder_of, this_process
from deepclust_cli.engine.session import Replica, Session, kept_checkpoint, record_lost_run
from deepclust_cli.errors import CheckpointError, ConfigError, DataError, Interrupted
from deepclust_cli.loggers import build_tracker
from deepclust_cli.methods import METHODS
from deepclust_cli.methods.config import ClusteringConfig, MethodConfig


def run(settings: RunConfig, cfg: DictConfig, directory: Path, task_overrides: list[str]) -> dict[str, float]:
    """Run the experiment ``cfg`` (validated as ``settings``) in the session folder ``directory``;
    returns its metrics.

    A data-parallel run (``gpus=[0,1,...]``, ``trainer.processes``, or torchrun) runs
    :func:`run_rank` in every rank; rank 0's metrics are returned.
    """
    method_class = METHODS.get(settings.method.name)
    launch = distributed.plan(settings.gpus, settings.trainer.processes, settings.trainer.backend.value)
    if launch.size > 1 and not method_class.data_parallel:
        supported = ", ".join(name for name in METHODS.names() if METHODS.get(name).data_parallel)
        raise ConfigError(
            f"method {method_class.name} trains in one process; data parallel (several gpus or trainer.processes) "
            f"is built for: {supported}"
        )
    select_device(settings.gpus)  # a missing GPU fails here, before any process starts
    overrides = experiment_overrides(settings, task_overrides)
    config = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    for key in INVOCATION_KEYS:
        config.pop(key, None)
    if launch.spawns:
        try:
            return distributed.spawn(run_rank, (settings, config, overrides, directory, launch), launch)
        except distributed.RankLost as lost:
            last = directory / "checkpoints" / "last.ckpt"
            evaluating = settings.test_only or settings.predict
            what_now = kept_checkpoint(last) if last.is_file() and not evaluating else "run the command again"
            message = f"{lost}; {what_now}"
            record_lost_run(directory, settings.test_only, message)
            raise distributed.RankLost(lost.rank, lost.size, lost.signal_number, message) from None
    with distributed.joined(launch) as world:
        if world.parallel:  # under torchrun every rank's Hydra named a folder; rank 0's is the session
            own, directory = directory, world.broadcast_object(directory)
            if own != directory and own.is_dir() and not any(own.iterdir()):
                own.rmdir()
        return run_rank(settings, config, overrides, directory, launch, world)


def run_rank(
    settings: RunConfig,
    config: dict[str, Any],
    overrides: list[str],
    directory: Path,
    launch: distributed.Launch,
    world: distributed.World = distributed.SINGLE,
) -> dict[str, float]:
    """One rank's run: rank 0 keeps the session folder, the others train beside it silently."""
    device = select_device(settings.gpus, world.local_rank)
    if world.is_main:
        context: Union[Session, Replica] = Session(directory, settings, config, overrides, device, world, build_tracker(settings.logger))
    else:
        context = Replica(settings, device, world)
    with context:
        ranks = distributed.describe(world, launch)
        if ranks:
            context.log(ranks)
        data = load_dataset(settings.dataset, settings.data_dir, settings.seed)
        if not settings.test_only:  # --test-only reads the session it scores and writes only *_test files
            context.save_info("dataset.json", data.describe())
        if settings.predict:
            return predict(settings, data, context, device)
        fit_split, eval_split = standardized(settings, *data.partition(settings.dataset.split), context)
        context.log(describe(data, fit_split, eval_split))
        method_config = with_cluster_count(settings.method, data)
        method = METHODS.get(settings.method.name).from_config(method_config, device=device)
        progress: dict[str, Any] = {}
        if settings.resume:
            progress = context.resume(Path(settings.resume), method)
            if progress.get("done") and not settings.test_only:
                refuse_other_data(settings, config, context)
        if settings.test_only and not method.fitted:
            raise unfinished(settings.resume)
        context.open()  # a resume writes in its session only now that the checkpoint loaded and fits
        if settings.test_only:
            pass  # --test-only scores the checkpoint as it is
        elif progress.get("done"):
            context.log("training had already finished; evaluating")
        else:
            held_out = None
            workers = settings.trainer.num_workers
            if method.scores_held_out and eval_split is not fit_split:
                held_out = (method.prepare(eval_split, workers), eval_split.y)
            method.fit(method.prepare(fit_split, workers), fit_split.y, context=context, eval_set=held_out)
            context.checkpoint(method, {**progress, "done": True})
        split_name = "all" if eval_split is fit_split else "test"
        metrics = method.evaluate(eval_split, context, reference=fit_split, split_name=split_name, class_names=data.class_names)
        context.finish(metrics)
    late = context.stop_requests.signal_number if context.stop_requests is not None else None
    if late is not None:  # it came after the last checkpoint: the run finished, but the signal is not swallowed
        raise Interrupted(
            f"{signal.Signals(late).name} arrived during the final evaluation; the run completed first (metrics in {directory})",
            late,
            str(directory / "checkpoints" / "last.ckpt"),
        )
    return metrics


def predict(settings: RunConfig, data: Dataset, context: Union[Session, Replica], device: Any) -> dict[str, Any]:
    """``--predict``: every sample of ``data`` (its splits joined) assigned by the trained model of
    ``settings.resume``, out of sample; scored when the data has labels. Trains nothing."""
    samples = standardized(settings, *data.partition(SplitMode.all), context)[0]
    context.log(f"dataset {data.name}: {len(samples)} samples to assign, {'with' if samples.y is not None else 'without'} labels")
    method = METHODS.get(settings.method.name).from_config(settings.method, device=device)
    context.resume(Path(settings.resume), method)
    if not method.fitted:
        raise unfinished(settings.resume)
    context.open()
    metrics = method.evaluate(samples, context, split_name="all", class_names=data.class_names, out_of_sample=True)
    context.finish(metrics)
    return metrics


def unfinished(checkpoint: str) -> CheckpointError:
    """--test-only or --predict of a checkpoint saved mid-training: continue it first, or, when its
    session's run is still training, wait for that run."""
    session = session_dir_of(checkpoint)
    holder = holder_of(session) if session is not None else None
    if holder is not None and holder != this_process():  # not the --test-only itself, scoring in that session
        return CheckpointError(f"{checkpoint}: training had not finished when it was saved, and {holder} is still training it; evaluate once that run ends")
    return CheckpointError(f"{checkpoint}: training had not finished when it was saved; continue it first with --resume {checkpoint}")


def refuse_other_data(settings: RunConfig, config: dict[str, Any], context: Union[Session, Replica]) -> None:
    """A finished run resumed with other data would score it over the original metrics.json."""
    trained_on = context.resumed_config.get("dataset")
    changed = [key for key, _, _ in config_differences(config.get("dataset", {}), trained_on)] if trained_on is not None else []
    if changed:
        raise CheckpointError(
            f"{settings.resume}: training had finished on other data (dataset.{', dataset.'.join(changed)} differ); "
            "to score the model on this data use --test-only (metrics_test.json) or --predict (a new session)"
        )


def standardized(settings: RunConfig, fit_split: Split, eval_split: Split, context: Union[Session, Replica]) -> tuple[Split, Split]:
    """The splits z-scored when ``dataset.standardize`` asks (or ``--predict`` uses a model trained
    so): with the statistics of the checkpoint being resumed or predicted with, else the fitted
    split's (which checkpoints then keep)."""
    wanted = getattr(settings.dataset, "standardize", False)
    stored = None
    if settings.resume and (wanted or settings.predict):  # a model trained on standardized data predicts on standardized data
        stored = load_checkpoint(settings.resume, mmap=True).get("data", {}).get("standardize")
    if not wanted and stored is None:
        return fit_split, eval_split
    if settings.resume and stored is None and (settings.predict or settings.test_only):
        raise CheckpointError(f"{settings.resume}: trained without dataset.standardize, so it holds no statistics to apply; drop dataset.standardize")
    transform = Standardization.from_state(stored) if stored is not None else Standardization.fit(fit_split)
    context.data_state = {"standardize": transform.state_dict()}
    standardized_fit = transform.apply(fit_split)
    return standardized_fit, standardized_fit if eval_split is fit_split else transform.apply(eval_split)


def with_cluster_count(config: MethodConfig, data: Dataset) -> MethodConfig:
    """``config``, its ``n_clusters`` taken from the labels when the config leaves it unset (a
    dataset such as ``features`` learns its class count only when its files are read)."""
    if data.n_classes == 1:
        raise DataError(
            f"dataset '{data.name}': its labels hold a single class, so clusters cannot be scored against them; "
            "fix the labels or drop them and set method.n_clusters"
        )
    if not isinstance(config, ClusteringConfig) or config.n_clusters is not None:
        return config
    if not data.n_classes:
        raise ConfigError(f"dataset '{data.name}' has no labels to count classes from; set method.n_clusters=K")
    return dataclasses.replace(config, n_clusters=data.n_classes)


def experiment_overrides(settings: RunConfig, task_overrides: list[str]) -> list[str]:
    """The overrides that define the experiment: a resumed run's original ones, then the new ones."""
    fresh = [o for o in task_overrides if o.split("=", 1)[0].lstrip("+~") not in INVOCATION_KEYS]
    if not settings.resume:
        return fresh
    original = list(load_checkpoint(settings.resume, mmap=True).get("overrides", []))
    return original + [o for o in fresh if o not in original]


def session_settings(directory: Path) -> RunConfig:
    """The validated settings of the session in ``directory``, from its resolved ``config.yaml``."""
    values = literal(yaml.safe_load((directory / "config.yaml").read_text()))  # resolved once: a ``${`` in it is text
    store = ConfigStore.instance()
    values.setdefault("logger", {"name": "tensorboard"})  # sessions from before logger=
    cfg = OmegaConf.merge(OmegaConf.structured(RunConfig), {k: v for k, v in values.items() if k not in ("method", "dataset", "logger")})
    for group in ("method", "dataset", "logger"):
        schema = store.load(f"schema/{group}/{values[group]['name']}.yaml").node
        cfg[group] = OmegaConf.merge(schema, values[group])
    return to_settings(cfg)


def describe(data: Dataset, fit_split: Split, eval_split: Split) -> str:
    shape = "lazy" if data.train.is_lazy else "×".join(str(s) for s in data.train.x.shape[1:])
    classes = f"{data.n_classes} classes" if data.n_classes else "no labels"
    if fit_split is eval_split:
        sizes = f"{len(fit_split)} samples, fitted and evaluated together"
    else:
        sizes = f"{len(fit_split)} samples to fit, {len(eval_split)} held out to evaluate"
    return f"dataset {data.name}: {sizes}, {shape} {data.kind}, {classes}"
