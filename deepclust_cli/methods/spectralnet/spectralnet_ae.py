"""SpectralNet with autoencoder regularization (SPEC, "SpectralNetAE").

The spectral net doubles as an encoder: a decoder maps its pre-orthonormalization outputs Ỹ back
to the spectral net's input x (the raw vectors, or the AE codes when the autoencoder stage runs),
and the spectral stage minimizes

    trace(YᵀLY)/m + alpha · ‖x − x̂‖² / (m·d),   x̂ = decoder(Ỹ)

so Ỹ must keep enough of x to rebuild it, which regularizes the embedding against the collapse of
noisy batch graphs. The decoder trains with the spectral net in the same stage; alpha = 0 leaves
the decoder untouched and reproduces SpectralNet exactly. Its layers are LeakyReLU with a linear
output; ``decoder.first_activation=tanh`` puts the reference's tanh after its first layer
(Arthedon/SpectralNetAutoEncoder, Model/SpectralNetAEModel.py: ``Linear → Tanh`` first, then
``Linear → LeakyReLU``, then ``Linear``).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from deepclust_cli.engine.context import Context
from deepclust_cli.engine.distributed import SINGLE, World
from deepclust_cli.methods.spectralnet.config import SpectralNetAEConfig
from deepclust_cli.methods.spectralnet.method import SpectralNet
from deepclust_cli.nets.mlp import mlp


class SpectralNetAE(SpectralNet):
    """SpectralNet whose spectral stage also reconstructs its input from Ỹ, weighted by ``alpha``."""

    name = "spectralnet_ae"
    Config = SpectralNetAEConfig
    config: SpectralNetAEConfig

    def _build_nets(self, in_dim: int) -> None:
        super()._build_nets(in_dim)
        code_dim = self.config.ae.code_dim if self.config.ae.enabled else in_dim
        # Its own seeded stream: the other nets start exactly as in SpectralNet.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed + 1)
            decoder = mlp(self.config.embedding_dim, [*self.config.decoder_hidden, code_dim], activation="leaky_relu")
            if self.config.decoder.first_activation == "tanh":
                decoder[1] = nn.Tanh()  # the reference's decoder: tanh after its first layer only
        self.nets["decoder"] = decoder.to(self.device)

    def _stage_parameters(self) -> dict[str, list[nn.Parameter]]:
        """The decoder trains in the spectral stage, with the spectral net."""
        parameters = super()._stage_parameters()
        parameters["spectral"] += parameters.pop("decoder")
        return parameters

    def _spectral_batch_terms(
        self,
        codes: torch.Tensor,
        affinity_space: torch.Tensor,
        rows: torch.Tensor,
        context: Context,
        weights: Optional[torch.Tensor] = None,
        world: World = SINGLE,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``loss = spectral + alpha·reconstruction``, with both terms reported; alpha = 0 skips
        the decoder so the objective and its gradients are SpectralNet's, bit for bit. The
        reconstruction is a mean over samples: each rank decodes its own shard and weighs the
        shard's mean by its share of the batch."""
        shard, raw, spectral = self._shard_spectral_loss(codes, affinity_space, rows, context, weights, world)
        if self.config.alpha == 0:
            return spectral, {"loss": spectral, "spectral": spectral}
        with context.autocast():
            reconstruction = self.nets["decoder"](raw)
        share = (reconstruction.float() - codes[shard]).square().mean() * (len(shard) / len(rows))
        error = world.sum(share)
        terms = {"loss": spectral + self.config.alpha * error, "spectral": spectral, "reconstruction": error}
        return spectral + self.config.alpha * share, terms
