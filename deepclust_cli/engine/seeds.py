"""Seeds: the global generators a run seeds and checkpoints, and the per-epoch generators that make
every shuffle and draw independent of how many epochs ran in this process (so a resumed run draws
what an uninterrupted one draws)."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (all CUDA devices included)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_generator(seed: int, stage: str, epoch: int, stream: int = 0) -> torch.Generator:
    """A CPU generator fixed by (seed, stage, epoch, stream): shuffles that do not depend on how
    many epochs ran in this process, so a resumed run draws what an uninterrupted one draws."""
    key = hashlib.sha256(f"{seed}/{stage}/{epoch}/{stream}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(key[:8], "little"))


def batches(n: int, batch_size: int, generator: torch.Generator, device: torch.device) -> list[torch.Tensor]:
    """A shuffled partition of ``range(n)`` into index batches on ``device``."""
    return list(torch.randperm(n, generator=generator).to(device).split(batch_size))


def passes_for(min_batches: int, batches_per_pass: int) -> int:
    """How many passes over the data an epoch makes so that it runs at least ``min_batches`` batches."""
    return max(1, -(-min_batches // max(1, batches_per_pass)))


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
