"""The one optimizer factory: the family, SGD's momentum and Nesterov, fp16 loss scaling, step
counting and TensorBoard points of the batch loss; the plateau and step schedules."""

import pytest
import torch

from deepclust_cli.config import OptimizerName, TrainerConfig, make_config
from deepclust_cli.engine.context import Context
from deepclust_cli.engine.optim import Optimizer, PlateauSchedule, step_lr


class Recorder(Context):
    def __init__(self, **trainer):
        super().__init__(show_progress=False, trainer=make_config(TrainerConfig, trainer, "trainer"))
        self.scalars = []

    def log_scalars(self, values, step):
        self.scalars.append((step, values))


def parameters():
    return [torch.nn.Parameter(torch.zeros(2))]


def test_auto_is_the_methods_reference_and_any_other_family_wins():
    assert isinstance(Optimizer(parameters(), Recorder(), lr=0.1, name="x").torch, torch.optim.Adam)
    assert isinstance(Optimizer(parameters(), Recorder(), lr=0.1, name="x", reference=OptimizerName.sgd).torch, torch.optim.SGD)
    assert isinstance(Optimizer(parameters(), Recorder(optimizer="adamw"), lr=0.1, name="x", reference=OptimizerName.sgd).torch, torch.optim.AdamW)


def test_sgd_takes_the_trainers_momentum_and_nesterov_and_the_methods_lr_and_weight_decay():
    sgd = Optimizer(parameters(), Recorder(optimizer="sgd", momentum=0.5, nesterov=False), lr=0.03, weight_decay=5e-4, name="x")
    group = sgd.torch.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (0.03, 0.5, False, 5e-4)
    # Nesterov needs momentum: momentum 0 is plain SGD whatever nesterov says
    assert Optimizer(parameters(), Recorder(optimizer="sgd", momentum=0.0), lr=0.1, name="x").torch.param_groups[0]["nesterov"] is False


def test_fp16_always_comes_with_gradient_scaling():
    assert Optimizer(parameters(), Recorder(precision="fp16"), lr=0.1, name="x").scaler.is_enabled()
    assert not Optimizer(parameters(), Recorder(precision="bf16"), lr=0.1, name="x").scaler.is_enabled()


def test_every_step_is_counted_and_every_log_every_th_batch_loss_logged():
    context = Recorder(log_every=2)
    weight = torch.nn.Parameter(torch.tensor([1.0]))
    optimizer = Optimizer([weight], context, lr=0.1, name="demo")
    for _ in range(5):
        optimizer.step((weight * 3).sum())
    assert context.step == 5
    assert [step for step, _ in context.scalars] == [2, 4]
    assert set(context.scalars[0][1]) == {"demo/loss_step"}
    assert float(weight.detach()) != 1.0


def test_optimizer_state_round_trips_with_a_new_parameter_group():
    context = Recorder()
    first, extra = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(1))
    optimizer = Optimizer([first], context, lr=0.1, name="x")
    optimizer.add_parameters([extra])
    optimizer.step((first.sum() + extra.sum()) ** 2)
    again = Optimizer([torch.nn.Parameter(torch.ones(2))], context, lr=0.1, name="x")
    again.add_parameters([torch.nn.Parameter(torch.ones(1))])
    again.load_state_dict(optimizer.state_dict())
    assert len(again.parameters) == 2 and again.torch.state_dict()["state"].keys() == optimizer.torch.state_dict()["state"].keys()


def test_plateau_schedule_reduces_then_exhausts_at_min_lr():
    optimizer = Optimizer(parameters(), Recorder(), lr=1e-3, name="x")
    schedule = PlateauSchedule(optimizer, factor=0.1, patience=0, min_lr=1e-5)
    schedule.step(1.0)
    assert schedule.lr == pytest.approx(1e-3) and not schedule.exhausted
    schedule.step(1.0)  # no improvement, patience 0 → × 0.1
    assert schedule.lr == pytest.approx(1e-4) and not schedule.exhausted
    schedule.step(1.0)
    assert schedule.lr == pytest.approx(1e-5) and schedule.exhausted


def test_step_lr_decays_at_each_milestone_reached():
    rates = [step_lr(0.03, epoch, [80, 120, 160], 0.1) for epoch in (0, 79, 80, 119, 120, 160, 199)]
    assert rates == pytest.approx([0.03, 0.03, 0.003, 0.003, 0.0003, 0.00003, 0.00003])


def test_step_lr_agrees_with_multistep_scheduler():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[2, 5], gamma=0.5)
    for epoch in range(8):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(step_lr(0.5, epoch, [2, 5], 0.5))
        optimizer.step()
        scheduler.step()
