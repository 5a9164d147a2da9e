"""The memory bank of per-sample features and the non-parametric softmax over it.

Instance discrimination (Wu et al., CVPR 2018) treats every sample as its own class: the bank holds
one unit vector ``m_i`` per training sample, the class weights of a softmax
``p_ij = exp(f_i·m_j / T) / Σ_k exp(f_i·m_k / T)``. AND (Huang et al., ICML 2019, section 3) reads
the bank's own predictions to mine *anchors*: samples whose softmax ``softmax(m_i·Mᵀ/T)`` has low
entropy, each paired with its nearest other sample in the bank.

Everything here runs on the bank's device, a block of rows at a time: the ``N × N`` similarity
matrix never exists, so a 1.28M-entry ImageNet bank is mined in bounded memory.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch

from deepclust_cli.methods.anchor_neighborhood.config import DEFAULT_CHUNK_BYTES


class MemoryBank:
    """``size × dim`` features initialised uniformly in ``±1/√(dim/3)`` (the reference's start: it
    gives each coordinate variance 1/dim), updated by momentum, read by a tempered softmax."""

    def __init__(
        self,
        size: int,
        dim: int,
        *,
        momentum: float = 0.5,
        temperature: float = 0.1,
        generator: Optional[torch.Generator] = None,
        device: torch.device | str = "cpu",
    ) -> None:
        bound = 1.0 / math.sqrt(dim / 3)
        self.features = (torch.rand(size, dim, generator=generator) * 2 * bound - bound).to(device)
        self.momentum = momentum
        self.temperature = temperature

    def __len__(self) -> int:
        return len(self.features)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """``f·Mᵀ / T`` for a batch of features (the bank is a constant: no gradient flows into it)."""
        return features.float() @ self.features.T / self.temperature

    @torch.no_grad()
    def update(self, indices: torch.Tensor, features: torch.Tensor) -> None:
        """``m_i ← normalize(η·m_i + (1 − η)·f_i)`` for the samples at ``indices`` (distinct)."""
        blended = self.momentum * self.features[indices] + (1 - self.momentum) * features.detach().float()
        self.features[indices] = torch.nn.functional.normalize(blended, dim=1)

    @torch.no_grad()
    def entropy_and_nearest(
        self, chunk_bytes: int = DEFAULT_CHUNK_BYTES, rows: Optional[int] = None, k: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per sample: the entropy ``H_i = −Σ_j p_ij log p_ij`` of ``p_i = softmax(m_i·Mᵀ/T)`` (itself
        included, as in the reference) and its ``k`` most similar *other* samples
        ``topk_{j≠i} m_i·m_j`` (``mined × k``, most similar first: the reference's ``ANs_size``
        neighbours, ``lib/ans_discovery.py`` ``ANsDiscovery.update``).

        ``H_i = logsumexp_j(s_ij) − Σ_j p_ij s_ij`` with ``s = m_i·Mᵀ/T``: no logarithm of a
        vanishing probability is taken. Rows go a block at a time (``chunk_bytes`` of float32
        similarities per block); ``rows`` limits the work to the first ``rows`` samples (benchmarks).
        """
        n = len(self.features)
        if not 1 <= k < n:
            raise ValueError(f"a neighborhood of {k} other samples needs more than {k} samples in the bank, which holds {n}")
        mined = n if rows is None else min(rows, n)
        rows_per_chunk = max(1, chunk_bytes // (4 * n))
        entropy = torch.empty(mined, device=self.features.device)
        nearest = torch.empty(mined, k, dtype=torch.long, device=self.features.device)
        for start in range(0, mined, rows_per_chunk):
            stop = min(start + rows_per_chunk, mined)
            logits = self.logits(self.features[start:stop])
            log_normalizer = logits.logsumexp(dim=1)
            expected = (torch.softmax(logits, dim=1) * logits).sum(dim=1)
            entropy[start:stop] = log_normalizer - expected
            rows = torch.arange(stop - start, device=logits.device)
            logits[rows, rows + start] = -math.inf
            nearest[start:stop] = logits.topk(k, dim=1).indices
        return entropy, nearest

    def state_dict(self) -> dict[str, Any]:
        return {"features": self.features.cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.features = state["features"].to(self.features.device, torch.float32)


def select_anchors(entropy: torch.Tensor, fraction: float) -> torch.Tensor:
    """A mask of the ``round(fraction·N)`` lowest-entropy samples (ties: the lower index first)."""
    count = round(fraction * len(entropy))
    order = torch.sort(entropy, stable=True).indices
    mask = torch.zeros(len(entropy), dtype=torch.bool, device=entropy.device)
    mask[order[:count]] = True
    return mask


def neighborhood_loss(
    logits: torch.Tensor, indices: torch.Tensor, neighbors: torch.Tensor, anchor: torch.Tensor
) -> torch.Tensor:
    """The AND loss of a batch (Huang et al. 2019, eq. 6; reference ``lib/criterion.py``), averaged
    over the batch.

    For sample ``i`` with bank logits ``s_i`` (``p_i = softmax(s_i)``): an anchor with neighborhood
    ``N_i`` (``neighbors[i]``: one index, or a row of ``k``) contributes
    ``−log(p_ii + Σ_{j∈N_i} p_ij) = logsumexp(s_i) − logsumexp(s_ii, s_ij for j ∈ N_i)``, any other
    sample ``−log p_ii = logsumexp(s_i) − s_ii`` (pure instance discrimination). ``indices`` are the
    batch's positions in the bank, ``neighbors`` and ``anchor`` their neighbors and anchor flags.
    """
    log_normalizer = logits.logsumexp(dim=1)
    own = logits.gather(1, indices.unsqueeze(1))
    neighbor = logits.gather(1, neighbors.reshape(len(indices), -1))
    positive = torch.where(anchor, torch.cat([own, neighbor], dim=1).logsumexp(dim=1), own.squeeze(1))
    return (log_normalizer - positive).mean()
