"""A training stage: the plateau schedule's min-lr stop, convergence within tolerance, terms in
the history and TensorBoard, and the one validation rule."""

import pytest
import torch

from deepclust_cli.engine.context import Context
from deepclust_cli.errors import ConfigError
from deepclust_cli.methods.config import StageConfig
from deepclust_cli.methods.stage import Stage, run_minibatch_stage, validation_split


class Recorder(Context):
    def __init__(self):
        super().__init__(show_progress=False)
        self.scalars = {}

    def log_scalars(self, values, step):
        for key, value in values.items():
            self.scalars.setdefault(key, []).append((step, value))


def run_stage(config, valid_losses, context=None, terms=None):
    context = context or Context(show_progress=False)
    stage = Stage("demo", [torch.nn.Parameter(torch.zeros(1))], config, context)
    losses = iter(valid_losses)
    saves = []
    stage.run(lambda epoch: terms or 1.0, lambda: next(losses), lambda: saves.append(stage.loop.position))
    return stage, saves


def test_without_tolerance_a_stage_runs_every_epoch():
    stage, saves = run_stage(StageConfig(epochs=6, patience=100), [1.0] * 6)
    assert stage.loop.position == 6 and stage.done
    assert saves[-1] == 6


def test_the_plateau_schedule_stops_the_stage_at_min_lr():
    stage, _ = run_stage(StageConfig(epochs=50, lr=1e-3, lr_decay=0.1, patience=0, min_lr=1e-5), [1.0] * 50)
    # epoch 1 sets the best, epochs 2 and 3 each divide the rate by 10: 1e-5 is reached after 3
    assert stage.loop.position == 3 and stage.schedule.exhausted
    assert stage.loop.values("lr") == pytest.approx([1e-3, 1e-3, 1e-4])


def test_tolerance_stops_once_the_validation_loss_stops_improving():
    # improves by 10 % per epoch, then by 0.001 % per epoch: converged after 3 flat epochs
    losses = [1.0, 0.9, 0.81, 0.80999, 0.809985, 0.80998, 0.80997, 0.80996]
    stage, _ = run_stage(StageConfig(epochs=8, patience=100, tolerance=1e-3, tolerance_epochs=3), losses)
    assert stage.done and stage.loop.position == 6
    assert stage.loop.values("valid") == losses[:6]


def test_tolerance_does_not_stop_a_stage_that_still_improves():
    losses = [1.0 * 0.9**epoch for epoch in range(8)]
    stage, _ = run_stage(StageConfig(epochs=8, patience=100, tolerance=1e-3, tolerance_epochs=2), losses)
    assert stage.loop.position == 8


def test_objective_terms_join_the_history_and_tensorboard():
    recorder = Recorder()
    stage, _ = run_stage(StageConfig(epochs=2), [1.0, 0.5], recorder, terms={"loss": 3.0, "spectral": 1.0, "reconstruction": 2.0})
    assert stage.loop.values("loss") == [3.0, 3.0]
    assert stage.loop.values("reconstruction") == [2.0, 2.0]
    assert [value for _, value in recorder.scalars["demo/reconstruction"]] == [2.0, 2.0]
    assert [value for _, value in recorder.scalars["demo/valid"]] == [1.0, 0.5]


def test_a_resumed_stage_continues_at_the_next_epoch():
    first, _ = run_stage(StageConfig(epochs=3, patience=100), [1.0] * 3)
    state = first.state_dict()
    again = Stage("demo", [torch.nn.Parameter(torch.zeros(1))], StageConfig(epochs=3, patience=100), Context(show_progress=False))
    again.load_state_dict(state)
    again.run(lambda epoch: 1.0, lambda: 1.0, lambda: None)
    assert again.loop.position == 3 and again.loop.values("valid") == [1.0] * 3


def test_one_validation_rule_holds_out_a_seeded_fraction_of_at_least_two_rows():
    train, valid = validation_split(100, 0.1, seed=0, device=torch.device("cpu"))
    assert len(valid) == 10 and len(train) == 90
    assert sorted(torch.cat([train, valid]).tolist()) == list(range(100))
    assert torch.equal(validation_split(100, 0.1, seed=0, device=torch.device("cpu"))[1], valid)
    assert not torch.equal(validation_split(100, 0.1, seed=1, device=torch.device("cpu"))[1], valid)
    assert len(validation_split(5, 0.1, seed=0, device=torch.device("cpu"))[1]) == 2


def test_stage_settings_are_validated():
    with pytest.raises(ConfigError, match="tolerance must be >= 0"):
        StageConfig(tolerance=-1)
    with pytest.raises(ConfigError, match="tolerance_epochs must be >= 1"):
        StageConfig(tolerance_epochs=0)
    with pytest.raises(ConfigError, match="weight_decay must be >= 0"):
        StageConfig(weight_decay=-1)
    with pytest.raises(ConfigError, match="min_batches must be >= 1"):
        StageConfig(min_batches=0)


@pytest.mark.parametrize("min_batches, passes", [(1, 1), (2, 1), (5, 3), (6, 3)])
def test_an_epoch_repeats_reshuffled_passes_until_min_batches_ran(min_batches, passes):
    """20 rows in batches of 10 are 2 batches a pass: an epoch makes ceil(min_batches / 2) passes,
    each row once per pass, in a fresh order each pass."""
    rows = torch.arange(20, dtype=torch.float32).unsqueeze(1)
    net = torch.nn.Linear(1, 1)
    seen = []

    def loss_of(batch):
        seen.append(batch[:, 0].long().tolist())
        return net(batch).square().mean()

    config = StageConfig(epochs=1, batch_size=10, min_batches=min_batches, patience=100)
    stage = Stage("demo", net.parameters(), config, Context(show_progress=False))
    run_minibatch_stage(stage, net, torch.arange(20), torch.arange(2), lambda index: loss_of(rows[index]), lambda: None, seed=0)
    training = seen[: 2 * passes]  # then the validation batch
    assert len(seen) == 2 * passes + 1
    orders = [sum(training[2 * p : 2 * p + 2], []) for p in range(passes)]
    assert all(sorted(order) == list(range(20)) for order in orders)
    assert len({tuple(order) for order in orders}) == passes
