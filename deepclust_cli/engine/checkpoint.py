"""Checkpoint files: one file per checkpoint, written atomically, loaded without running code.

A checkpoint is a dict of tensors and plain Python values only (str, int, float, bool, None,
lists, tuples, dicts), so ``torch.load(..., weights_only=True)`` can read it and a crafted file
cannot execute anything while loading. Layout::

    format            "deepclust-checkpoint/1"
    package_version   deepclust version that wrote it
    git_sha           commit of the source tree, or None outside a git checkout
    created           ISO timestamp
    method            {"name", "params", "state"}: enough to rebuild the fitted method
    config            the run's resolved config (absent for library saves)
    overrides         the command-line overrides that composed it
    progress          {"stage", "epoch", "step", "done", ...}: where training stands
    rng               random-number-generator states (python, numpy, torch, cuda)
"""

from __future__ import annotations

import datetime as _dt
import functools
import io
import pickle
import subprocess
import zipfile
from pathlib import Path
from typing import Any, Optional, Protocol, Union

import torch

import deepclust_cli
from deepclust_cli.engine.atomic import atomic_write
from deepclust_cli.errors import CheckpointError

FORMAT = "deepclust-checkpoint/2"  # 2: the engine's loops and optimizers keep their own state


class Checkpointable(Protocol):
    """What the engine saves and restores: a method, described by its name, parameters and state."""

    name: str

    def describe(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@functools.lru_cache(maxsize=1)
def git_sha() -> str | None:
    """HEAD of the git checkout deepclust runs from (None for an installed wheel)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(deepclust_cli.__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def stamp() -> dict[str, Any]:
    """The provenance fields every checkpoint carries."""
    return {
        "format": FORMAT,
        "package_version": deepclust_cli.__version__,
        "git_sha": git_sha(),
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
    }


def save_checkpoint(path: Union[str, Path], payload: dict[str, Any]) -> None:
    """Stamp ``payload`` with provenance and write it atomically to ``path``.

    The checkpoint is serialized in memory first: torch's zip writer reports a write the disk
    refused as "unexpected pos", while a plain write raises the ``OSError`` that says the disk is full.
    """
    serialized = io.BytesIO()
    torch.save({**stamp(), **payload}, serialized)
    atomic_write(path, lambda f: f.write(serialized.getbuffer()))


def load_checkpoint(path: Union[str, Path], *, mmap: bool = False) -> dict[str, Any]:
    """Read a checkpoint onto the CPU with ``weights_only=True``.

    ``mmap=True`` maps tensors instead of reading them, so fetching the config of a large
    checkpoint costs almost nothing. Every failure becomes one ``CheckpointError`` line naming
    the file and the problem.
    """
    path = Path(path)
    if path.is_dir():
        inside = path / "checkpoints" / "last.ckpt"
        hint = f"resume from {inside}" if inside.is_file() else "give a .ckpt file (a session keeps them in checkpoints/)"
        raise CheckpointError(f"{path} is a folder, not a checkpoint; {hint}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not mmap:
        _verify_checksums(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{path}: refused to load: it holds objects other than tensors and plain values, "
            f"which could run code ({first_line})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{path}: unreadable checkpoint (truncated or corrupt): {first_line}") from None
    if isinstance(payload, dict) and str(payload.get("format", "")).startswith("deepclust-checkpoint/") and payload["format"] != FORMAT:
        raise CheckpointError(
            f"{path}: written by deepclust {payload.get('package_version', '?')} in format {payload['format']}, which this "
            f"version ({FORMAT}) cannot continue; train again, or use that version to evaluate it"
        )
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a deepclust checkpoint (no '{FORMAT}' format marker)")
    return payload


def _verify_checksums(path: Path) -> None:
    """Check every record of the checkpoint's zip container against its CRC-32: torch reads
    tensors without checking, so flipped bytes inside a tensor would otherwise load as weights."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except zipfile.BadZipFile:
        return  # not a zip (or a cut one): torch.load names the problem below
    except (OSError, RuntimeError, ValueError) as error:
        raise CheckpointError(f"{path}: unreadable checkpoint (truncated or corrupt): {error}") from None
    if damaged is not None:
        raise CheckpointError(f"{path}: corrupt checkpoint: record {damaged} fails its CRC-32 check")


def session_dir_of(checkpoint_path: Union[str, Path]) -> Optional[Path]:
    """The session folder a checkpoint lives in — ``<session>/checkpoints/<file>.ckpt`` with the
    session's ``run.json`` beside ``checkpoints/`` — or None for a checkpoint anywhere else (a copy
    in ~/Downloads must not make ~ a session folder)."""
    path = Path(checkpoint_path).resolve()
    session = path.parent.parent
    return session if path.parent.name == "checkpoints" and (session / "run.json").is_file() else None
