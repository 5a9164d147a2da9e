"""A run that dies loses nothing: killed (SIGKILL) or stopped (SIGINT, SIGTERM) at a random moment
and resumed, each method ends with exactly the metrics of an uninterrupted run; a checkpoint
writer killed mid-write leaves a whole checkpoint; a full disk is one line and the rerun finishes."""

import random
import signal

import pytest

from conftest import write_bar_mnist
from faults import full_disk, interrupt_and_resume, kill_9_of_one_rank, kill_during_write, private_tmpfs_available, reference_metrics, run_args


@pytest.fixture(scope="module")
def bar_data(tmp_path_factory):
    return write_bar_mnist(tmp_path_factory.mktemp("data"))


@pytest.mark.parametrize("method", ["spectralnet", "spectralnet_ae", "and", "lnscc", "geocluster"])
def test_kill_9_at_a_random_moment_then_resume_equals_an_uninterrupted_run(method, bar_data, tmp_path):
    args = run_args(method, bar_data)
    expected = reference_metrics(args, tmp_path / "reference")
    outcome = interrupt_and_resume(args, tmp_path / "killed", expected, random.Random(f"kill-{method}"), max_delay=0.5)
    assert outcome.survived, f"{outcome.lost}: {outcome.detail}"


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_saves_stops_and_prints_the_resume_command(signal_number, bar_data, tmp_path):
    args = run_args("spectralnet", bar_data)
    expected = reference_metrics(args, tmp_path / "reference")
    outcome = interrupt_and_resume(args, tmp_path / "stopped", expected, random.Random(0), signal_number=signal_number, max_delay=0.3)
    assert outcome.survived, f"{outcome.lost}: {outcome.detail}"
    assert outcome.detail == ""  # stopped mid-run, not after it finished


def test_a_kill_during_a_checkpoint_write_leaves_a_whole_checkpoint(tmp_path):
    rng = random.Random(0)
    for attempt in range(3):
        folder = tmp_path / str(attempt)
        folder.mkdir()
        outcome = kill_during_write(folder, rng)
        assert outcome.survived, outcome.lost


def test_sigterm_to_a_data_parallel_run_stops_every_rank_at_one_checkpoint(bar_data, tmp_path):
    """deepclust passes the SIGTERM on to its two ranks; they agree on the epoch, rank 0 saves,
    all stop, and the printed command resumes both ranks to the uninterrupted run's metrics."""
    args = [*run_args("spectralnet", bar_data), "trainer.processes=2"]
    expected = reference_metrics(args, tmp_path / "reference")
    outcome = interrupt_and_resume(args, tmp_path / "stopped", expected, random.Random(1), signal_number=signal.SIGTERM, max_delay=0.3)
    assert outcome.survived, f"{outcome.lost}: {outcome.detail}"
    assert outcome.detail == ""


def test_kill_9_of_one_data_parallel_rank_is_one_line_with_the_resume_command(tmp_path):
    outcome = kill_9_of_one_rank(tmp_path)
    assert outcome.survived, f"{outcome.lost}: {outcome.detail}"


@pytest.mark.skipif(not private_tmpfs_available(), reason="needs unshare -rm to mount a small tmpfs (tests/engine/test_disk.py injects the error instead)")
@pytest.mark.parametrize("moment", ["start", "training", "end"])
def test_a_full_disk_is_one_line_the_record_stays_true_and_the_printed_command_finishes(moment, tmp_path):
    """On a real tmpfs that is full at the start, fills once the run has a checkpoint, or fills while
    the results are written: one 'disk full' line, run.json "failed" with it, the last checkpoint
    whole, no temp files; with room again, the command the line gives ends with the uninterrupted
    run's exact metrics."""
    outcome = full_disk(tmp_path, moment)
    assert outcome.survived, f"{outcome.lost}: {outcome.detail}"

