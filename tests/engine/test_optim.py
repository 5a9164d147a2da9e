import pytest
import torch

from deepclust_cli.config import TrainerConfig, make_config
from deepclust_cli.engine.optim import LRSchedule, make_optimizer, step_lr


def trainer(**values):
    return make_config(TrainerConfig, values, "trainer")


def test_optimizers_follow_the_config():
    params = [torch.nn.Parameter(torch.zeros(2))]
    assert isinstance(make_optimizer(params, trainer(optimizer="adam")), torch.optim.Adam)
    sgd = make_optimizer(params, trainer(optimizer="sgd", lr=0.03, momentum=0.9, nesterov=True, weight_decay=5e-4))
    assert isinstance(sgd, torch.optim.SGD)
    group = sgd.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (0.03, 0.9, True, 5e-4)


def test_plateau_schedule_reduces_then_exhausts_at_min_lr():
    params = [torch.nn.Parameter(torch.zeros(1))]
    config = trainer(lr=1e-3, schedule="plateau", plateau_factor=0.1, plateau_patience=0, min_lr=1e-5)
    schedule = LRSchedule(make_optimizer(params, config), config)
    schedule.step(1.0)
    assert schedule.lr == pytest.approx(1e-3) and not schedule.exhausted
    schedule.step(1.0)  # no improvement, patience 0 → × 0.1
    assert schedule.lr == pytest.approx(1e-4) and not schedule.exhausted
    schedule.step(1.0)
    assert schedule.lr == pytest.approx(1e-5) and schedule.exhausted


def test_plateau_needs_the_validation_loss():
    params = [torch.nn.Parameter(torch.zeros(1))]
    config = trainer(schedule="plateau")
    with pytest.raises(ValueError, match="validation loss"):
        LRSchedule(make_optimizer(params, config), config).step()


def test_step_schedule_and_state_round_trip():
    params = [torch.nn.Parameter(torch.zeros(1))]
    config = trainer(optimizer="sgd", lr=0.03, schedule="step", milestones=[2, 4], gamma=0.1)
    optimizer = make_optimizer(params, config)
    schedule = LRSchedule(optimizer, config)
    lrs = []
    for _ in range(5):
        optimizer.step()
        schedule.step()
        lrs.append(schedule.lr)
    assert lrs == pytest.approx([0.03, 0.003, 0.003, 0.0003, 0.0003])
    restored = LRSchedule(make_optimizer(params, config), config)
    restored.load_state_dict(schedule.state_dict())
    assert restored.state_dict()["last_epoch"] == 5


def test_cosine_reaches_min_lr():
    params = [torch.nn.Parameter(torch.zeros(1))]
    config = trainer(lr=0.1, schedule="cosine", max_epochs=4, min_lr=0.0)
    optimizer = make_optimizer(params, config)
    schedule = LRSchedule(optimizer, config)
    for _ in range(4):
        optimizer.step()
        schedule.step()
    assert schedule.lr == pytest.approx(0.0, abs=1e-12)


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
