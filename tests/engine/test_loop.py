"""The engine's one loop: capped passes, rounds, history, scalars, the finite-loss check, the
checkpoint cadence, stop requests and resumption."""

import math
import signal

import pytest

from deepclust_cli.config import TrainerConfig, make_config
from deepclust_cli.engine.context import Context
from deepclust_cli.engine.interrupt import StopRequests
from deepclust_cli.engine.loop import Loop, Pass
from deepclust_cli.errors import TrainingDiverged


class Recorder(Context):
    def __init__(self, **trainer):
        super().__init__(show_progress=False, trainer=make_config(TrainerConfig, {"checkpoint_min_seconds": 0, **trainer}, "trainer"))
        self.scalars = []

    def log_scalars(self, values, step):
        self.scalars.append(values)


def run(loop, passes, saves=None):
    saves = [] if saves is None else saves
    results = iter(passes)
    loop.run(lambda: next(results), lambda score: saves.append((loop.position, score)))
    return saves


def test_a_loop_runs_its_passes_records_their_values_and_saves_at_its_end():
    context = Recorder(checkpoint_every=2)
    loop = Loop("demo", 5, context)
    saves = run(loop, [Pass(float(i), {"lr": 0.1}) for i in range(5)])
    assert loop.done and loop.position == 5
    assert loop.history["loss"] == [[1, 0.0], [2, 1.0], [3, 2.0], [4, 3.0], [5, 4.0]]
    assert loop.values("lr") == [0.1] * 5
    assert [position for position, _ in saves] == [2, 4, 5]  # every 2nd pass, and the last
    assert context.scalars[0] == {"demo/loss": 0.0, "demo/lr": 0.1}


def test_max_epochs_caps_every_loop_and_its_rounds():
    context = Recorder(max_epochs=2)
    loop = Loop("and", 6, context, rounds=3)
    assert (loop.rounds, loop.length, loop.total) == (2, 2, 4)
    positions = []

    def one_pass():
        positions.append((loop.round, loop.pass_in_round))
        return Pass(1.0)

    loop.run(one_pass, lambda score: None)
    assert positions == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert loop.where() == {"stage": "and", "round": 2, "epoch": 0}


def test_a_pass_can_stop_the_loop_and_force_a_save_with_a_score():
    loop = Loop("demo", 10, Recorder(checkpoint_every=100))
    saves = run(loop, [Pass(1.0, save=True, score=0.5), Pass(1.0), Pass(None, stop=True)])
    assert loop.position == 3 and loop.done
    assert saves == [(1, 0.5), (3, None)]
    assert loop.history["loss"] == [[1, 1.0], [2, 1.0]]  # a pass that trained nothing reports no loss


def test_a_non_finite_loss_stops_before_anything_is_saved():
    loop = Loop("demo", 3, Recorder())
    saves = []
    with pytest.raises(TrainingDiverged, match="demo epoch 2: the training loss became nan"):
        run(loop, [Pass(1.0), Pass(math.nan)], saves)
    assert saves == [(1, None)]


def test_a_stop_request_saves_at_the_next_pass_end_whatever_the_cadence():
    context = Recorder(checkpoint_every=100)
    context.stop_requests = StopRequests(quiet=True)
    loop = Loop("demo", 5, context)

    def one_pass():
        if loop.position == 1:
            context.stop_requests.signal_number = signal.SIGTERM
        return Pass(1.0)

    saves = []
    loop.run(one_pass, lambda score: (saves.append(loop.position), loop.__setattr__("done", True)))
    assert saves == [2]


def test_a_loop_resumes_after_its_last_saved_pass():
    first = Loop("demo", 4, Recorder())
    run(first, [Pass(1.0), Pass(2.0), Pass(3.0, stop=True)])
    second = Loop("demo", 6, Recorder())
    second.load_state_dict(first.state_dict())
    assert second.done  # a finished loop stays finished
    half = Loop("demo", 4, Recorder())
    half.load_state_dict({"position": 2, "done": False, "history": {"loss": [[1, 1.0], [2, 2.0]]}})
    run(half, [Pass(3.0), Pass(4.0)])
    assert half.values("loss") == [1.0, 2.0, 3.0, 4.0]
