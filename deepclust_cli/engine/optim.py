"""The one optimizer factory every method trains through, and the learning-rate schedules.

:class:`Optimizer` is a method's optimizer as the trainer configures it: the family is
``trainer.optimizer`` (``auto``: the method's reference — Adam, or SGD for AND), SGD takes
``trainer.momentum`` and ``trainer.nesterov``, fp16 autocast always comes with gradient scaling,
the gradients are summed over data-parallel ranks before the update, and every step is counted
for the run's TensorBoard steps and ``trainer.log_every``. The method says what to optimize: the
parameters, the learning rate, the weight decay.
"""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

import torch

from deepclust_cli.config import OptimizerName, Precision
from deepclust_cli.engine.context import Context


class Optimizer:
    """``torch.optim`` Adam, AdamW or SGD over ``parameters`` at ``lr``, stepped by :meth:`step`."""

    def __init__(
        self,
        parameters: Iterable[torch.nn.Parameter],
        context: Context,
        *,
        lr: float,
        name: str,
        weight_decay: float = 0.0,
        reference: OptimizerName = OptimizerName.adam,
    ) -> None:
        trainer = context.trainer
        self.family = reference if trainer.optimizer is OptimizerName.auto else trainer.optimizer
        self.context = context
        self.name = name  # the loop whose steps these are: its TensorBoard tag is <name>/loss_step
        params = list(parameters)
        if self.family is OptimizerName.adam:
            self.torch: torch.optim.Optimizer = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        elif self.family is OptimizerName.adamw:
            self.torch = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        else:
            self.torch = torch.optim.SGD(
                params, lr=lr, momentum=trainer.momentum, nesterov=trainer.nesterov and trainer.momentum > 0, weight_decay=weight_decay
            )
        # fp16 gradients underflow without loss scaling; bf16 and fp32 need none.
        self.scaler = torch.amp.GradScaler(context.device.type, enabled=trainer.precision is Precision.fp16)

    @property
    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for group in self.torch.param_groups for p in group["params"]]

    def add_parameters(self, parameters: Sequence[torch.nn.Parameter]) -> None:
        """Train ``parameters`` too from now on, at the current learning rate (LNSCC's centers)."""
        self.torch.add_param_group({"params": list(parameters)})

    @property
    def lr(self) -> float:
        return float(self.torch.param_groups[0]["lr"])

    def set_lr(self, lr: float) -> None:
        for group in self.torch.param_groups:
            group["lr"] = lr

    def step(self, loss: Optional[torch.Tensor], batch_loss: Optional[torch.Tensor] = None) -> None:
        """One update on ``loss``: gradients (scaled under fp16), summed over the ranks, applied.

        ``loss`` None: this rank holds no rows of the batch but joins the sum. ``batch_loss`` is
        the whole batch's loss for TensorBoard when it is not the sum of the ranks' ``loss``
        (SpectralNet's every rank computes the gathered batch's loss)."""
        self.torch.zero_grad(set_to_none=True)
        if loss is not None:
            self.scaler.scale(loss).backward()
        self.context.world.sum_gradients(self.parameters)
        self.scaler.step(self.torch)
        self.scaler.update()
        self.context.count_step(self.name, loss, batch_loss)

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.torch.state_dict(), "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.torch.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


class PlateauSchedule:
    """ReduceLROnPlateau on the validation loss: × ``factor`` after ``patience`` epochs without a
    better one; *exhausted* — the stage should stop — once the rate has fallen to ``min_lr``
    (SpectralNet's rule)."""

    def __init__(self, optimizer: Optimizer, factor: float, patience: int, min_lr: float) -> None:
        self.optimizer = optimizer
        self.min_lr = min_lr
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer.torch, mode="min", factor=factor, patience=patience)

    @property
    def lr(self) -> float:
        return self.optimizer.lr

    def step(self, validation_loss: float) -> None:
        self.scheduler.step(validation_loss)

    @property
    def exhausted(self) -> bool:
        # A relative tolerance: 1e-3 * 0.1**4 is 1.0000000000000002e-07 in floating point.
        return self.lr <= self.min_lr * (1 + 1e-6)

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)


def step_lr(lr: float, epoch: int, milestones: Sequence[int], decay: float) -> float:
    """The step schedule as a function of the epoch (0-based): ``lr · decay^#{m ∈ milestones : m ≤ epoch}``.

    Stateless, so a schedule that restarts (AND's rounds) or resumes is just a new epoch count.
    """
    return lr * decay ** sum(1 for milestone in milestones if milestone <= epoch)
