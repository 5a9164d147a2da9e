"""The autoencoder stage SpectralNet and LNSCC both pretrain their features with (Shaham et al.
2018, §5: the codes of an autoencoder are the later nets' input; LNSCC's ``features.source=ae``)."""

from __future__ import annotations

from typing import Callable

import torch

from deepclust_cli.methods.stage import Stage, run_minibatch_stage
from deepclust_cli.nets.autoencoder import Autoencoder
from deepclust_cli.nets.mlp import apply_in_batches


def pretrain_autoencoder(
    stage: Stage, autoencoder: Autoencoder, x: torch.Tensor, train: torch.Tensor, valid: torch.Tensor, save: Callable[[], None], seed: int
) -> torch.Tensor:
    """Train (or finish training) ``autoencoder`` on the ``train`` rows of ``x`` under MSE(x, x̂),
    the ``valid`` rows' mean MSE driving the stage's schedule (rows from
    :func:`~deepclust_cli.methods.stage.validation_split`); returns the codes of all of ``x``."""

    def loss_of(rows: torch.Tensor) -> torch.Tensor:
        with stage.context.autocast():
            return autoencoder.reconstruction_loss(x[rows])

    run_minibatch_stage(stage, autoencoder, train, valid, loss_of, save, seed)
    return apply_in_batches(autoencoder.encoder, x)
