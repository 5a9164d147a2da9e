"""Errors a user can fix. The CLI reports them as one line and a non-zero exit, never a traceback."""


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
