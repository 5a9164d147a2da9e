"""Devices, determinism and mixed precision: what ``gpus`` and ``trainer`` ask for."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, ContextManager, Sequence

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


def set_deterministic(enabled: bool) -> None:
    """Ask torch for bitwise-reproducible kernels (slower; errors on ops that have none)."""
    if enabled:
        # cuBLAS needs a fixed workspace to be deterministic; must be set before its first use.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if enabled != torch.are_deterministic_algorithms_enabled():
        # torch.use_deterministic_algorithms also sets Inductor's flag, importing torch.compile's
        # stack (2.5 s a run); deepclust compiles nothing, so it sets the kernels' flag alone
        # unless Inductor is already loaded.
        set_kernels = getattr(torch._C, "_set_deterministic_algorithms", None)
        if set_kernels is None or "torch._inductor.config" in sys.modules:
            torch.use_deterministic_algorithms(enabled, warn_only=False)
        else:
            set_kernels(enabled, warn_only=False)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled


def autocast(device: torch.device, precision: str) -> ContextManager[Any]:
    """Mixed-precision context for ``precision`` in {fp32, bf16, fp16}; fp32 is a no-op."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    return torch.autocast(device_type=device.type, dtype=dtype)
