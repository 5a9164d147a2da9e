"""The experiment trackers by name (``logger=``, ``conf/logger/``): each a schema in ``config.py``
and an implementation in ``engine/trackers.py``, imported when a run builds it."""

from typing import Any

from deepclust_cli.config import CsvLogger, MlflowLogger, TensorBoardLogger, WandbLogger
from deepclust_cli.registry import Registry

LOGGERS: Registry = Registry("logger")  # name → the Tracker class
LOGGERS.add("tensorboard", "deepclust_cli.engine.trackers:TensorBoard", TensorBoardLogger)
LOGGERS.add("mlflow", "deepclust_cli.engine.trackers:Mlflow", MlflowLogger)
LOGGERS.add("csv", "deepclust_cli.engine.trackers:Csv", CsvLogger)
LOGGERS.add("wandb", "deepclust_cli.engine.trackers:Wandb", WandbLogger)


def build_tracker(settings: Any) -> Any:
    """The Tracker that ``settings`` (one of the logger schemas) asks for, not yet opened."""
    return LOGGERS.get(settings.name)(settings)
