"""A training stage: optimizer, plateau schedule with a min-lr stop, epoch loop, resumable state.

Multi-stage methods (SpectralNet's autoencoder, Siamese and spectral nets) run one
:class:`Stage` each. The stage owns everything that must survive an interruption — optimizer and
schedule state, the epoch counter, the loss history — in ``state_dict()``, so a method that keeps
its stages in its own state resumes mid-stage from any checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Callable, Iterable, Mapping, Optional, Union

import torch

from deepclust_cli.config import Precision, ScheduleName, TrainerConfig
from deepclust_cli.engine.cadence import CheckpointCadence
from deepclust_cli.engine.context import Context
from deepclust_cli.engine.distributed import SINGLE, World
from deepclust_cli.engine.optim import LRSchedule, make_optimizer
from deepclust_cli.methods.config import StageConfig


def epoch_generator(seed: int, stage: str, epoch: int, stream: int = 0) -> torch.Generator:
    """A CPU generator fixed by (seed, stage, epoch, stream): shuffles that do not depend on how
    many epochs ran in this process, so a resumed run draws what an uninterrupted one draws."""
    key = hashlib.sha256(f"{seed}/{stage}/{epoch}/{stream}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(key[:8], "little"))


def batches(n: int, batch_size: int, generator: torch.Generator, device: torch.device) -> list[torch.Tensor]:
    """A shuffled partition of ``range(n)`` into index batches on ``device``."""
    return list(torch.randperm(n, generator=generator).to(device).split(batch_size))


class Stage:
    """One stage's optimizer, schedule, epoch counter and loss history, and its epoch loop.

    In a data-parallel run each rank steps on its share of the loss and the gradients are summed
    over ``world``'s ranks before the update, so every replica takes the same step.
    """

    def __init__(
        self,
        name: str,
        parameters: Iterable[torch.nn.Parameter],
        config: StageConfig,
        trainer: TrainerConfig,
        world: World = SINGLE,
    ) -> None:
        self.name = name
        self.config = config
        settings = dataclasses.replace(
            trainer,
            lr=config.lr,
            max_epochs=config.epochs,
            schedule=ScheduleName.plateau,
            plateau_factor=config.lr_decay,
            plateau_patience=config.patience,
            min_lr=config.min_lr,
        )
        parameters = list(parameters)
        self.parameters = parameters
        self.world = world
        self.optimizer = make_optimizer(parameters, settings)
        self.schedule = LRSchedule(self.optimizer, settings)
        device = parameters[0].device if parameters else torch.device("cpu")
        # fp16 gradients underflow without loss scaling; bf16 and fp32 need none.
        self.scaler = torch.amp.GradScaler(device.type, enabled=trainer.precision is Precision.fp16)
        self.epoch = 0
        self.done = False
        self.converged = False
        self.history: dict[str, list[float]] = {"train": [], "valid": [], "lr": []}

    def step(self, loss: Optional[torch.Tensor]) -> None:
        """One optimizer step on ``loss`` (scaled for fp16), its gradients summed over the ranks.
        None: this rank holds no rows of the batch but still joins the sum."""
        self.optimizer.zero_grad(set_to_none=True)
        if loss is not None:
            self.scaler.scale(loss).backward()
        self.world.sum_gradients(self.parameters)
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def run(
        self,
        context: Context,
        train_epoch: Callable[[int], Union[float, Mapping[str, float]]],
        validate: Callable[[], float],
        checkpoint: Callable[[], None],
    ) -> None:
        """Train until ``epochs``, the min-lr stop or convergence, from wherever the stage stands.

        ``train_epoch(epoch)`` returns the mean training loss — or a mapping with that loss under
        ``"loss"`` and the epoch means of the objective's terms under their own names, which join
        the history and TensorBoard — ``validate()`` the validation loss that drives the schedule
        and the convergence test, ``checkpoint()`` saves the method: every
        ``trainer.checkpoint_every`` epochs unless the last save is younger than
        ``trainer.checkpoint_min_seconds`` (short epochs would spend their time saving), and
        always when the stage ends.
        """
        if self.done:
            return
        progress = context.progress(total=self.config.epochs, desc=self.name, unit="epoch")
        progress.update(self.epoch)
        cadence = CheckpointCadence(context)
        while not self.done:
            terms = train_epoch(self.epoch)
            terms = dict(terms) if isinstance(terms, Mapping) else {"loss": terms}
            train_loss = terms.pop("loss")
            context.require_finite(train_loss, f"{self.name} epoch {self.epoch + 1}: the training loss")
            valid_loss = validate()
            lr = self.schedule.lr
            self.schedule.step(valid_loss)
            self.epoch += 1
            for key, value in (("train", train_loss), ("valid", valid_loss), ("lr", lr), *terms.items()):
                self.history.setdefault(key, []).append(float(value))
            self.converged = self._has_converged()
            self.done = self.epoch >= self.config.epochs or self.schedule.exhausted or self.converged
            scalars = {f"{self.name}/loss_train": train_loss, f"{self.name}/loss_valid": valid_loss, f"{self.name}/lr": lr}
            context.log_scalars({**scalars, **{f"{self.name}/{key}": value for key, value in terms.items()}}, step=self.epoch)
            progress.set(loss=train_loss, valid=valid_loss, lr=lr)
            progress.update()
            if cadence.due(self.epoch, force=self.done):
                checkpoint()
        progress.close()
        if self.converged:
            reason = f"converging (validation loss within tolerance {self.config.tolerance:g} for {self.config.tolerance_epochs} epochs)"
        elif self.schedule.exhausted:
            reason = "its learning rate reached min_lr"
        else:
            reason = f"{self.epoch} epochs"
        context.log(f"{self.name}: stopped after {reason}; loss {self.history['train'][-1]:.6g}, valid {self.history['valid'][-1]:.6g}")

    def _has_converged(self) -> bool:
        """Whether the last ``tolerance_epochs`` validation losses all failed to beat the best
        before them by more than ``tolerance``·|best|."""
        losses, window = self.history["valid"], self.config.tolerance_epochs
        if self.config.tolerance <= 0 or len(losses) <= window:
            return False
        best_before = min(losses[:-window])
        return min(losses[-window:]) > best_before - self.config.tolerance * abs(best_before)

    def state_dict(self) -> dict[str, Any]:
        """Progress and history; optimizer and schedule only while the stage still has epochs to run."""
        state: dict[str, Any] = {"epoch": self.epoch, "done": self.done, "history": self.history}
        if not self.done:
            state["optimizer"] = self.optimizer.state_dict()
            state["schedule"] = self.schedule.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.done = bool(state["done"])
        self.history = {key: list(values) for key, values in state["history"].items()}
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
            self.schedule.load_state_dict(state["schedule"])


def run_minibatch_stage(
    stage: Stage,
    net: torch.nn.Module,
    train: torch.Tensor,
    valid: torch.Tensor,
    loss_of: Callable[[torch.Tensor], torch.Tensor],
    context: Context,
    checkpoint: Callable[[], None],
    seed: int,
    rows_per_batch: Optional[int] = None,
) -> None:
    """The plain epoch loop (autoencoders, Siamese nets): shuffled minibatches of the ``train``
    rows, ``loss_of(rows)`` (a mean over ``rows``) per batch, the mean loss over the ``valid`` rows
    as validation loss. Across data-parallel ranks each takes its shard of every batch, its loss
    weighted by the shard's share of the batch; validation runs whole on every rank."""
    size = rows_per_batch or stage.config.batch_size
    device, world = train.device, context.world

    def train_epoch(epoch: int) -> float:
        net.train()
        total = torch.zeros((), device=device)
        for rows in batches(len(train), size, epoch_generator(seed, stage.name, epoch), device):
            shard = world.shard(rows)
            loss = loss_of(train[shard]) * (len(shard) / len(rows)) if len(shard) else None
            stage.step(loss)
            if loss is not None:
                total += loss.detach() * len(rows)
        return float(world.sum(total)) / len(train)

    def validate() -> float:
        net.eval()
        with torch.no_grad():
            total = sum(loss_of(rows) * len(rows) for rows in valid.split(size))
        return float(total) / len(valid)

    stage.run(context, train_epoch, validate, checkpoint)
