import pytest
import torch

from deepclust_cli.engine.context import Context
from deepclust_cli.engine.stage import Stage, StageConfig
from deepclust_cli.errors import ConfigError

QUIET = Context(show_progress=False)


class Recorder(Context):
    def __init__(self):
        super().__init__(show_progress=False)
        self.scalars = {}

    def log_scalars(self, values, step):
        for key, value in values.items():
            self.scalars.setdefault(key, []).append((step, value))


def run_stage(config, valid_losses, context=QUIET, terms=None):
    stage = Stage("demo", [torch.nn.Parameter(torch.zeros(1))], config, context.trainer)
    losses = iter(valid_losses)
    saves = []
    stage.run(context, lambda epoch: terms or 1.0, lambda: next(losses), lambda: saves.append(stage.epoch))
    return stage, saves


def test_without_tolerance_a_stage_runs_every_epoch():
    stage, saves = run_stage(StageConfig(epochs=6, patience=100), [1.0] * 6)
    assert stage.epoch == 6 and not stage.converged
    assert saves[-1] == 6


def test_tolerance_stops_once_the_validation_loss_stops_improving():
    # improves by 10 % per epoch, then by 0.001 % per epoch: converged after 3 flat epochs
    losses = [1.0, 0.9, 0.81, 0.80999, 0.809985, 0.80998, 0.80997, 0.80996]
    stage, _ = run_stage(StageConfig(epochs=8, patience=100, tolerance=1e-3, tolerance_epochs=3), losses)
    assert stage.converged and stage.done
    assert stage.epoch == 6
    assert stage.history["valid"] == losses[:6]


def test_tolerance_does_not_stop_a_stage_that_still_improves():
    losses = [1.0 * 0.9**epoch for epoch in range(8)]
    stage, _ = run_stage(StageConfig(epochs=8, patience=100, tolerance=1e-3, tolerance_epochs=2), losses)
    assert stage.epoch == 8 and not stage.converged


def test_objective_terms_join_the_history_and_tensorboard():
    recorder = Recorder()
    stage, _ = run_stage(StageConfig(epochs=2), [1.0, 0.5], recorder, terms={"loss": 3.0, "spectral": 1.0, "reconstruction": 2.0})
    assert stage.history["train"] == [3.0, 3.0]
    assert stage.history["reconstruction"] == [2.0, 2.0]
    assert recorder.scalars["demo/reconstruction"] == [(1, 2.0), (2, 2.0)]
    assert recorder.scalars["demo/loss_train"] == [(1, 3.0), (2, 3.0)]


def test_tolerance_is_validated():
    with pytest.raises(ConfigError, match="tolerance must be >= 0"):
        StageConfig(tolerance=-1)
    with pytest.raises(ConfigError, match="tolerance_epochs must be >= 1"):
        StageConfig(tolerance_epochs=0)
