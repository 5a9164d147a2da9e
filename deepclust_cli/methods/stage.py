"""A training stage — SpectralNet's autoencoder, Siamese and spectral nets, LNSCC's autoencoder —
on the engine's loop: the optimizer at the stage's learning rate, a plateau schedule on a
held-out validation loss, and three stops: ``epochs``, the rate reaching ``min_lr``, convergence.

A stage keeps everything that must survive an interruption — the loop's position and history,
the optimizer and schedule — in :meth:`Stage.state_dict`, so a method that keeps its stages in
its own state resumes mid-stage from any checkpoint.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Optional, Union

import torch

from deepclust_cli.engine.context import Context
from deepclust_cli.engine.loop import Loop, Pass
from deepclust_cli.engine.optim import Optimizer, PlateauSchedule
from deepclust_cli.engine.seeds import batches, epoch_generator, passes_for
from deepclust_cli.methods.config import StageConfig


class Stage:
    """One stage's optimizer, schedule and loop. ``run`` trains until the loop's end (``epochs``,
    capped by ``trainer.max_epochs``), the min-lr stop or convergence, from wherever it stands."""

    def __init__(self, name: str, parameters: Iterable[torch.nn.Parameter], config: StageConfig, context: Context) -> None:
        self.name = name
        self.config = config
        self.optimizer = Optimizer(parameters, context, lr=config.lr, weight_decay=config.weight_decay, name=name)
        self.schedule = PlateauSchedule(self.optimizer, config.lr_decay, config.patience, config.min_lr)
        self.loop = Loop(name, config.epochs, context)
        self.context = context

    @property
    def done(self) -> bool:
        return self.loop.done

    def run(
        self,
        train_epoch: Callable[[int], Union[float, Mapping[str, float]]],
        validate: Callable[[], float],
        save: Callable[[], None],
    ) -> None:
        """``train_epoch(epoch)`` returns the mean training loss — or a mapping with that loss under
        ``"loss"`` and the epoch means of the objective's terms under their own names, which join
        the history and TensorBoard — and ``validate()`` the validation loss that drives the
        schedule and the convergence test; ``save()`` checkpoints the method."""
        if self.loop.done:
            return

        def run_pass() -> Pass:
            terms = train_epoch(self.loop.position)
            terms = dict(terms) if isinstance(terms, Mapping) else {"loss": terms}
            loss = terms.pop("loss")
            valid, lr = validate(), self.schedule.lr
            self.schedule.step(valid)
            converged = self._has_converged([*self.loop.values("valid"), valid])
            return Pass(loss, {"valid": valid, "lr": lr, **terms}, stop=self.schedule.exhausted or converged)

        self.loop.run(run_pass, lambda score: save())
        losses, valid = self.loop.values("loss"), self.loop.values("valid")
        if self._has_converged(valid):
            reason = f"converging (validation loss within tolerance {self.config.tolerance:g} for {self.config.tolerance_epochs} epochs)"
        elif self.schedule.exhausted:
            reason = "its learning rate reached min_lr"
        else:
            reason = f"{self.loop.position} epochs"
        self.context.log(f"{self.name}: stopped after {reason}; loss {losses[-1]:.6g}, valid {valid[-1]:.6g}")

    def _has_converged(self, losses: list[float]) -> bool:
        """Whether the last ``tolerance_epochs`` validation losses all failed to beat the best
        before them by more than ``tolerance``·|best|."""
        window = self.config.tolerance_epochs
        if self.config.tolerance <= 0 or len(losses) <= window:
            return False
        best_before = min(losses[:-window])
        return min(losses[-window:]) > best_before - self.config.tolerance * abs(best_before)

    def state_dict(self) -> dict[str, Any]:
        """The loop; the optimizer and schedule only while the stage still has epochs to run."""
        state: dict[str, Any] = {"loop": self.loop.state_dict()}
        if not self.loop.done:
            state["optimizer"] = self.optimizer.state_dict()
            state["schedule"] = self.schedule.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loop.load_state_dict(state["loop"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
            self.schedule.load_state_dict(state["schedule"])


def validation_split(n: int, fraction: float, seed: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The one rule every stage holds out its validation rows by: a seeded ``fraction`` of the
    ``n`` rows, at least 2; returns (training rows, validation rows)."""
    n_valid = max(2, round(fraction * n))
    order = torch.randperm(n, generator=epoch_generator(seed, "split", 0)).to(device)
    return order[n_valid:], order[:n_valid]


def run_minibatch_stage(
    stage: Stage,
    net: torch.nn.Module,
    train: torch.Tensor,
    valid: torch.Tensor,
    loss_of: Callable[[torch.Tensor], torch.Tensor],
    save: Callable[[], None],
    seed: int,
    rows_per_batch: Optional[int] = None,
    sample: Optional[Callable[[int, int], torch.Tensor]] = None,
) -> None:
    """The plain epoch (autoencoders, Siamese nets): shuffled minibatches of the ``train`` rows
    (reshuffled passes until ``min_batches`` batches ran), ``loss_of(rows)`` (a mean over
    ``rows``) per batch, the mean loss over the ``valid`` rows as validation loss. Across data-parallel ranks each takes its shard of every batch, its loss
    weighted by the shard's share of the batch; validation runs whole on every rank.

    ``sample(epoch, pass)``, when given, draws each pass's rows afresh (already shuffled; e.g.
    sampled Siamese pairs, one row each) in place of a pass over ``train``; it must be seeded by
    its arguments alone, so that a resumed run draws what an uninterrupted one drew."""
    size = rows_per_batch or stage.config.batch_size
    context = stage.context
    device, world = train.device, context.world

    passes = passes_for(stage.config.min_batches, -(-len(train) // size))

    def epoch_batches(epoch: int) -> list[torch.Tensor]:
        if sample is None:
            return [train[rows] for p in range(passes) for rows in batches(len(train), size, epoch_generator(seed, stage.name, epoch, p), device)]
        drawn = [sample(epoch, 0)]
        drawn += [sample(epoch, p) for p in range(1, passes_for(stage.config.min_batches, -(-len(drawn[0]) // size)))]
        return [rows for rows_of_pass in drawn for rows in rows_of_pass.split(size)]

    def train_epoch(epoch: int) -> float:
        net.train()
        total, count = torch.zeros((), device=device), 0
        for rows in context.limit_batches(epoch_batches(epoch)):
            shard = world.shard(rows)
            loss = loss_of(shard) * (len(shard) / len(rows)) if len(shard) else None
            stage.optimizer.step(loss)
            if loss is not None:
                total += loss.detach() * len(rows)
            count += len(rows)
        return float(world.sum(total)) / count

    def validate() -> float:
        net.eval()
        with torch.no_grad():
            total = sum(loss_of(rows) * len(rows) for rows in valid.split(size))
        return float(total) / len(valid)

    stage.run(train_epoch, validate, save)
