"""Optimizers and per-epoch learning-rate schedules built from a :class:`TrainerConfig`."""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

import torch

from deepclust_cli.config import OptimizerName, ScheduleName, TrainerConfig


def make_optimizer(parameters: Iterable[torch.nn.Parameter], trainer: TrainerConfig) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD (with momentum and optional Nesterov) at ``trainer.lr``."""
    params = list(parameters)
    if trainer.optimizer is OptimizerName.adam:
        return torch.optim.Adam(params, lr=trainer.lr, weight_decay=trainer.weight_decay)
    if trainer.optimizer is OptimizerName.adamw:
        return torch.optim.AdamW(params, lr=trainer.lr, weight_decay=trainer.weight_decay)
    return torch.optim.SGD(
        params,
        lr=trainer.lr,
        momentum=trainer.momentum,
        nesterov=trainer.nesterov and trainer.momentum > 0,
        weight_decay=trainer.weight_decay,
    )


def step_lr(lr: float, epoch: int, milestones: Sequence[int], gamma: float) -> float:
    """The step schedule as a function of the epoch (0-based): ``lr · gamma^#{m ∈ milestones : m ≤ epoch}``.

    Stateless, so a schedule that restarts (AND's rounds) or resumes is just a new epoch count.
    """
    return lr * gamma ** sum(1 for milestone in milestones if milestone <= epoch)


class LRSchedule:
    """The learning-rate schedule of one training stage, stepped once per epoch.

    ``plateau``: ReduceLROnPlateau on the validation loss (``factor``, ``patience``); the stage is
    *exhausted* — training should stop — once the rate has fallen to ``min_lr`` (SpectralNet's rule).
    ``step``: × ``gamma`` at each epoch in ``milestones``. ``cosine``: anneal to ``min_lr`` over
    ``max_epochs``. ``none``: constant.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, trainer: TrainerConfig) -> None:
        self.optimizer = optimizer
        self.kind = trainer.schedule
        self.min_lr = trainer.min_lr
        self.scheduler: Optional[Any]
        if self.kind is ScheduleName.plateau:
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="min", factor=trainer.plateau_factor, patience=trainer.plateau_patience
            )
        elif self.kind is ScheduleName.step:
            self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
                optimizer, milestones=list(trainer.milestones), gamma=trainer.gamma
            )
        elif self.kind is ScheduleName.cosine:
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=trainer.max_epochs, eta_min=trainer.min_lr
            )
        else:
            self.scheduler = None

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def step(self, validation_loss: Optional[float] = None) -> None:
        """Advance one epoch; the plateau schedule needs the epoch's validation loss."""
        if self.kind is ScheduleName.plateau:
            if validation_loss is None:
                raise ValueError("the plateau schedule needs the epoch's validation loss")
            self.scheduler.step(validation_loss)
        elif self.scheduler is not None:
            self.scheduler.step()

    @property
    def exhausted(self) -> bool:
        # A relative tolerance: 1e-3 * 0.1**4 is 1.0000000000000002e-07 in floating point.
        return self.kind is ScheduleName.plateau and self.lr <= self.min_lr * (1 + 1e-6)

    def state_dict(self) -> dict[str, Any]:
        return {} if self.scheduler is None else self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state)
