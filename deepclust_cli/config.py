"""Structured configs: the schema of a run and of the trainer group, and their validation.

Hydra type-checks every value against these dataclasses while it composes the config (they are
registered in its ConfigStore: ``deepclust_schema`` for the run, ``schema/method/<name>`` and
``schema/dataset/<name>`` by the registries). Ranges and cross-field rules are checked in each
dataclass's ``__post_init__``, which runs when :func:`to_settings` turns the composed config into
objects — before any data is loaded.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, List, Mapping, Optional, Type, TypeVar

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from deepclust_cli.errors import ConfigError, DeepclustError, require, require_finite_fields, require_seed

T = TypeVar("T")

# The metrics runs report that a sweep can rank by; all of them are higher-is-better.
METRIC_NAMES = (
    "acc", "nmi", "ari", "knn_acc", "knn_acc_bank", "knn_acc_bank_best", "nn_acc", "nn_topk_acc", "qps",
    "silhouette", "davies_bouldin", "calinski_harabasz", "size_entropy", "largest_cluster",
)
# Overrides that say how to invoke a run, not what the experiment is; they are not replayed on resume.
INVOCATION_KEYS = ("resume", "test_only", "predict", "restart")
RESUME_NEEDS_A_PATH = "--resume needs a checkpoint path: --resume outputs/.../checkpoints/last.ckpt"
LOWER_IS_BETTER = ("davies_bouldin", "largest_cluster", "seconds")
LABEL_FREE_METRICS = ("silhouette", "davies_bouldin", "calinski_harabasz", "size_entropy", "largest_cluster", "clusters_used")


class Precision(enum.Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class OptimizerName(enum.Enum):
    auto = "auto"  # each method's reference: Adam, or SGD with Nesterov momentum for AND
    adam = "adam"
    adamw = "adamw"
    sgd = "sgd"


class Backend(enum.Enum):
    auto = "auto"  # nccl with GPUs, gloo on the CPU
    nccl = "nccl"
    gloo = "gloo"


@dataclass
class TrainerConfig:
    """How a run trains, the same for every method that trains: caps on its loops, the optimizer
    family, precision, determinism, workers, checkpoint and logging cadence, data parallelism.
    What to optimize — epochs, learning rates, batch sizes, weight decay — is the method's."""

    max_epochs: Optional[int] = None  # caps every loop: epochs of each stage, AND's rounds and epochs, tree levels
    max_batches: Optional[int] = None  # caps the batches (optimizer steps) of every epoch
    optimizer: OptimizerName = OptimizerName.auto
    momentum: float = 0.9  # SGD's
    nesterov: bool = True  # SGD's
    precision: Precision = Precision.fp32  # autocast for the forward passes; fp16 adds gradient scaling
    deterministic: bool = False
    num_workers: int = 0  # processes decoding images read from disk on demand (image folders)
    checkpoint_every: int = 1  # epochs between last.ckpt writes
    checkpoint_min_seconds: float = 10.0  # skip a write while the last is younger (a loop's end always writes)
    log_every: int = 50  # optimizer steps between TensorBoard points of the batch loss
    processes: int = 1  # data-parallel ranks on the CPU (gpus=[]); with gpus=[0,1,...] one per GPU
    backend: Backend = Backend.auto  # how the ranks talk

    def __post_init__(self) -> None:
        require_finite_fields(self)
        require(self.max_epochs is None or self.max_epochs >= 1, f"max_epochs must be >= 1 or null, got {self.max_epochs}")
        require(self.max_batches is None or self.max_batches >= 1, f"max_batches must be >= 1 or null, got {self.max_batches}")
        require(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        require(self.num_workers >= 0, f"num_workers must be >= 0, got {self.num_workers}")
        require(self.checkpoint_every >= 1, f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        require(self.checkpoint_min_seconds >= 0, f"checkpoint_min_seconds must be >= 0, got {self.checkpoint_min_seconds}")
        require(self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}")
        require(self.processes >= 1, f"processes must be >= 1, got {self.processes}")


@dataclass
class SummaryConfig:
    """How a sweep's ``summary.md`` ranks its configurations: by ``sort_by`` (a metric, or
    ``seconds``), best first — lowest first with ``ascending``; null: the metric's own sense
    (lowest first for ``LOWER_IS_BETTER``, highest for the rest)."""

    sort_by: str = "acc"
    ascending: Optional[bool] = None

    def __post_init__(self) -> None:
        names = (*METRIC_NAMES, "seconds")
        require(self.sort_by in names, f"summary.sort_by must be one of {', '.join(names)}, got {self.sort_by!r}")


def lowest_first(sort_by: str, ascending: Optional[bool]) -> bool:
    """Whether a ranking by ``sort_by`` puts the lowest value first."""
    return sort_by in LOWER_IS_BETTER if ascending is None else ascending


@dataclass
class PlotsConfig:
    """What the figures show: ``plots/clusters.png`` (image data) has a row of the
    ``images_per_cluster`` images nearest each center for the first ``cluster_rows`` clusters."""

    cluster_rows: int = 20
    images_per_cluster: int = 10

    def __post_init__(self) -> None:
        require(self.cluster_rows >= 1, f"plots.cluster_rows must be >= 1, got {self.cluster_rows}")
        require(self.images_per_cluster >= 1, f"plots.images_per_cluster must be >= 1, got {self.images_per_cluster}")


class WandbMode(enum.Enum):
    offline = "offline"  # written under the session folder; `wandb sync` uploads it later
    online = "online"


@dataclass
class TensorBoardLogger:
    """TensorBoard event files in the session's ``tb/``: scalars, final metrics and the run's
    hyper-parameters for the HParams tab."""

    name: str = "tensorboard"


@dataclass
class MlflowLogger:
    """MLflow: one run per session; parameters, scalars, final metrics, plots as artifacts."""

    name: str = "mlflow"
    tracking_uri: Optional[str] = None  # null: a local store under output_dir (mlflow.db, artifacts in mlartifacts/)
    group: Optional[str] = None  # the MLflow experiment; null: the session's parent folder (multirun/<sweep>, <method>/<dataset>)


@dataclass
class CsvLogger:
    """CSV files in the session's ``csv/``: params.csv, scalars.csv, metrics.csv, artifacts.csv."""

    name: str = "csv"


@dataclass
class WandbLogger:
    """Weights & Biases: one run per session, in offline mode written under the session folder."""

    name: str = "wandb"
    project: str = "deepclust"
    mode: WandbMode = WandbMode.offline
    group: Optional[str] = None  # the W&B group; null: the session's parent folder (multirun/<sweep>, <method>/<dataset>)


# Optional trackers and the sweeper: the extra that installs each, and a module that tells it is there.
EXTRAS = {"mlflow": "mlflow", "wandb": "wandb", "optuna": "hydra_plugins.hydra_optuna_sweeper"}


def missing_extra(extra: str, wanted: str) -> Optional[str]:
    """The one-line error for ``wanted`` (e.g. ``logger=mlflow``) when the optional extra that
    provides it is not installed, else None. Looks the module up without importing it."""
    import importlib.util

    try:
        found = importlib.util.find_spec(EXTRAS[extra]) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module blocked in sys.modules
        found = False
    return None if found else f"{wanted} needs the optional extra {extra}: pip install 'deepclust[{extra}]'"


@dataclass
class RunConfig:
    """The top level of ``conf/config.yaml``."""

    method: Any = MISSING
    dataset: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: Any = MISSING  # one of the *Logger schemas (conf/logger/)
    seed: int = 0
    gpus: List[int] = field(default_factory=list)
    data_dir: str = "data"
    output_dir: str = "outputs"
    resume: Optional[str] = None  # a checkpoint to continue from (or, with test_only, to evaluate)
    test_only: bool = False
    predict: bool = False  # with resume: assign the dataset's samples with the trained model, in a new session folder
    restart: bool = False  # with resume: continue in a new session folder instead of the checkpoint's
    name: Optional[str] = None  # a label appended to the session folder's name
    summary: SummaryConfig = field(default_factory=SummaryConfig)
    plots: PlotsConfig = field(default_factory=PlotsConfig)

    def __post_init__(self) -> None:
        require_seed(self.seed)
        require(self.resume is None or self.resume.strip() != "", RESUME_NEEDS_A_PATH)
        require(not self.test_only or self.resume, "test_only needs a checkpoint: add --resume PATH")
        require(not self.predict or self.resume, "predict needs a trained checkpoint: deepclust --resume PATH --predict dataset.path=...")
        require(not (self.predict and self.test_only), "--predict and --test-only cannot be combined: --predict writes a new session, --test-only scores in the checkpoint's")
        require(not self.restart or self.resume, "restart only applies with --resume PATH")
        require(
            self.name is None or ("/" not in self.name and self.name.strip() == self.name and self.name),
            f"name must be a non-empty label without '/' or surrounding spaces, got {self.name!r}",
        )


ConfigStore.instance().store(name="deepclust_schema", node=RunConfig)


def config_differences(now: Mapping[str, Any], then: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """``(dotted key, value now, value then)`` for every leaf where two nested configs differ."""
    found = []
    for key in [*now, *[k for k in then if k not in now]]:
        a, b = now.get(key), then.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            found += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            found.append((f"{prefix}{key}", a, b))
    return found


def literal(value: Any) -> Any:
    """``value`` (nested dicts and lists too) with each ``${`` escaped as ``\\${``: strings that were
    resolved once (a stored config, a session path, a library argument) stay as they are when
    OmegaConf or Hydra reads them again, instead of being taken for interpolations."""
    if isinstance(value, str):
        return value.replace("${", "\\${")
    if isinstance(value, Mapping):
        return {key: literal(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [literal(item) for item in value]
    return value


def to_settings(cfg: DictConfig) -> RunConfig:
    """Turn the composed config into dataclass objects, running every ``__post_init__`` check.

    Sections are checked one by one first so that a message names the section it is about.
    """
    for section in ("method", "dataset", "trainer", "logger"):
        if OmegaConf.is_config(cfg.get(section)):
            _instantiate(cfg[section], section)
    return _instantiate(cfg, "")


def make_config(schema: Type[T], values: Mapping[str, Any], where: str = "") -> T:
    """Build ``schema(**values)`` with OmegaConf's type checks: the library path to a validated config.

    Unknown keys and values of the wrong type fail with one ``ConfigError`` line naming the key;
    ``where`` (e.g. ``"method"``) prefixes the key in messages.
    """
    try:
        node = OmegaConf.merge(OmegaConf.structured(schema), literal(dict(values)))
    except OmegaConfBaseException as error:
        raise ConfigError(_omegaconf_message(error, where)) from None
    return _instantiate(node, where)


def _instantiate(node: DictConfig, where: str) -> Any:
    try:
        return OmegaConf.to_object(node)
    except DeepclustError as error:
        raise ConfigError(f"{where}: {error}" if where else str(error)) from None
    except OmegaConfBaseException as error:
        raise ConfigError(_omegaconf_message(error, where)) from None


def _omegaconf_message(error: OmegaConfBaseException, where: str) -> str:
    """OmegaConf messages span several lines (key, types); keep the first and name the key."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    key = ".".join(part for part in (where, getattr(error, "full_key", None) or "") if part)
    return f"{key}: {message}" if key else message
