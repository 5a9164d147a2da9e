"""Errors a user can fix. The CLI reports them as one line and a non-zero exit, never a traceback."""

import dataclasses
import math


class DeepclustError(Exception):
    """A problem with the input (config, data, files) rather than a bug in deepclust."""

    exit_code = 1


class ConfigError(DeepclustError, ValueError):
    """A config value, parameter, override or command-line argument is wrong."""

    exit_code = 2


class DataError(DeepclustError, ValueError):
    """A dataset is absent, unreadable or unusable."""


class CheckpointError(DeepclustError):
    """A checkpoint is absent, corrupt, unsafe or from another method."""


def require(condition: bool, message: str) -> None:
    """Raise ``ConfigError(message)`` unless ``condition`` holds; used by config ``__post_init__``."""
    if not condition:
        raise ConfigError(message)


def require_seed(seed: int) -> None:
    """A seed NumPy, scikit-learn and torch all take: an integer in [0, 2**32)."""
    require(0 <= seed < 2**32, f"seed must be in [0, 2**32) (NumPy's and scikit-learn's range), got {seed}")


def require_finite_fields(config: object) -> None:
    """Every float field of the dataclass ``config`` (and every float in a list field) is a finite
    number: an ``inf`` learning rate or ``nan`` weight passes ``> 0`` checks and then poisons training."""
    for field in dataclasses.fields(config):  # type: ignore[arg-type]
        value = getattr(config, field.name)
        values = value if isinstance(value, (list, tuple)) else [value]
        bad = [v for v in values if isinstance(v, float) and not math.isfinite(v)]
        require(not bad, f"{field.name} must be a finite number, got {value}")


class TrainingDiverged(DeepclustError):
    """The training loss stopped being a finite number; nothing after the last good checkpoint was kept."""


class DiskFull(DeepclustError):
    """The disk (or quota) holding the session refused a write; the message names the file and
    the last good checkpoint, which the atomic writes kept whole."""


class Interrupted(DeepclustError):
    """SIGINT or SIGTERM stopped the run after it saved a checkpoint; the message says how to resume."""

    def __init__(self, message: str, signal_number: int, checkpoint: str) -> None:
        super().__init__(message)
        self.signal_number = signal_number
        self.checkpoint = checkpoint
        self.exit_code = 128 + signal_number  # the shell's convention for a run ended by a signal

    def __reduce__(self) -> tuple:
        return (type(self), (str(self), self.signal_number, self.checkpoint))


class SessionBusy(DeepclustError):
    """Another live process writes in the session folder (it holds the folder's lock)."""

    def __init__(self, message: str, holder: str) -> None:
        super().__init__(message)
        self.holder = holder

    def __reduce__(self) -> tuple:
        return (type(self), (str(self), self.holder))
