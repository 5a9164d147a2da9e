"""Devices, seeds, determinism and mixed precision: what ``gpus``, ``seed`` and ``trainer`` ask for."""

from __future__ import annotations

import contextlib
import os
import random
from typing import Any, ContextManager, Sequence

import numpy as np
import torch

from deepclust_cli.errors import ConfigError


def select_device(gpus: Sequence[int], local_rank: int = 0) -> torch.device:
    """``gpus=[]`` → CPU; otherwise ``cuda:gpus[local_rank]`` (one GPU per data-parallel rank on
    this machine). A GPU that is not there is a ``ConfigError``."""
    gpus = list(gpus)
    if not gpus:
        return torch.device("cpu")
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    missing = [index for index in gpus if index < 0 or index >= available]
    if missing:
        seen = f"CUDA devices 0..{available - 1}" if available else "no CUDA device"
        raise ConfigError(f"gpus={gpus} asks for cuda:{missing[0]} but this machine has {seen}; use gpus=[] for the CPU")
    if len(set(gpus)) != len(gpus):
        raise ConfigError(f"gpus={gpus} lists a GPU twice; each data-parallel process needs its own")
    if local_rank >= len(gpus):
        raise ConfigError(f"process {local_rank} of this machine has no GPU in gpus={gpus}; list one GPU per process")
    return torch.device("cuda", gpus[local_rank])


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (all CUDA devices included)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool) -> None:
    """Ask torch for bitwise-reproducible kernels (slower; errors on ops that have none)."""
    if enabled:
        # cuBLAS needs a fixed workspace to be deterministic; must be set before its first use.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if enabled != torch.are_deterministic_algorithms_enabled():
        # The call imports torch's compiler stack (over a second), so only make it to change the mode.
        torch.use_deterministic_algorithms(enabled, warn_only=False)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled


def autocast(device: torch.device, precision: str) -> ContextManager[Any]:
    """Mixed-precision context for ``precision`` in {fp32, bf16, fp16}; fp32 is a no-op."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device_type=device.type, dtype=dtype)


def rng_state() -> dict[str, Any]:
    """Every global generator's state, as tensors and plain values (safe for ``weights_only``)."""
    version, mt_state, gauss = random.getstate()
    numpy_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": [version, list(mt_state), gauss],
        "numpy": {
            "key": torch.from_numpy(numpy_state["state"]["key"].astype(np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    numpy_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": numpy_state["key"].numpy().astype(np.uint32), "pos": numpy_state["pos"]},
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
