"""Run the fault scenarios in real processes and print what survived.

Each of the five methods is killed with SIGKILL at random moments of a tiny run and resumed from
``last.ckpt`` (the final metrics must equal an uninterrupted run's exactly, timings aside);
SIGINT and SIGTERM must save, stop and print a resume command that works; a checkpoint writer is
killed mid-write; crafted, truncated and corrupted checkpoints, NaN input and a diverging loss
must each be refused in one line. Then one writer per session (two resumes at once, --test-only of
a live run), a checkpoint outside its session, sweep names that collide, SIGTERM to a parallel
sweep, refused resumes that must change nothing, and a disk that fills at the start, during
training and while the results are written (on a small tmpfs in a private mount namespace).

    .venv/bin/python scripts/reliability_report.py --tries 3
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the fault harness is shared with the tests

import faults  # noqa: E402
from benchlib import machine  # noqa: E402
from conftest import write_bar_mnist  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=3, help="random moments per kill/signal scenario")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="*", default=list(faults.TINY_RUNS))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(f"# reliability report ({machine()}), {args.tries} tries per kill/signal scenario, seed {args.seed}\n")
    print(f"{'scenario':<52} | {'tries':>5} | {'survived':>8} | anything lost")
    print(f"{'-' * 52}-|-------|----------|--------------")
    with tempfile.TemporaryDirectory(prefix="reliability-") as scratch:
        root = Path(scratch)
        data = write_bar_mnist(root / "data")
        scenarios: list[tuple[str, int, Callable[[Path], faults.Outcome]]] = []
        for method in args.methods:
            run = faults.run_args(method, data)
            reference = {}

            def killed(folder: Path, run=run, reference=reference) -> faults.Outcome:
                if not reference:
                    reference.update(faults.reference_metrics(run, folder / "reference"))
                return faults.interrupt_and_resume(run, folder / "killed", reference, rng)

            scenarios.append((f"kill -9 at a random moment, resume: {method}", args.tries, killed))
        run = faults.run_args("spectralnet", data)
        reference = {}
        for number in (signal.SIGINT, signal.SIGTERM):

            def stopped(folder: Path, number=number) -> faults.Outcome:
                if not reference:
                    reference.update(faults.reference_metrics(run, folder / "reference"))
                return faults.interrupt_and_resume(run, folder / "stopped", reference, rng, signal_number=number, max_delay=0.5)

            scenarios.append((f"{signal.Signals(number).name}, resume as printed: spectralnet", args.tries, stopped))
        scenarios += [
            ("kill -9 during a checkpoint write", args.tries, lambda folder: faults.kill_during_write(folder, rng)),
            ("checkpoint crafted to run code", 1, faults.hostile_checkpoint),
            ("truncated checkpoint", args.tries, lambda folder: faults.damaged_checkpoint(folder, rng, truncate=True)),
            ("checkpoint with 64 bytes zeroed", args.tries, lambda folder: faults.damaged_checkpoint(folder, rng, truncate=False)),
            ("NaN and inf in the input", 1, faults.nan_in_input),
            ("loss becomes NaN", 1, faults.nan_loss),
            ("two --resume of one checkpoint at once", 1, faults.two_resumes_at_once),
            ("--test-only of a live run, 3 times", 1, faults.test_only_of_a_live_run),
            ("checkpoint copied out of its session, resumed", 1, faults.checkpoint_outside_its_session),
            ("sweep over two paths that clean to one name", 1, faults.sweep_names_that_clean_alike),
            ("SIGTERM to a parallel sweep, rerun", 1, faults.sigterm_to_a_parallel_sweep),
            ("resume with other widths, other data", 1, faults.refused_resume),
            ("kill -9 of one of 2 data-parallel ranks, resumed", 1, faults.kill_9_of_one_rank),
        ]
        if faults.private_tmpfs_available():
            moments = {"start": "at the start", "training": "during training", "end": "writing the results"}
            scenarios += [(f"disk full {words}, rerun as printed", 1, lambda folder, moment=moment: faults.full_disk(folder, moment))
                          for moment, words in moments.items()]
        else:
            print("(disk-full scenarios skipped: this machine does not let unshare -rm mount a tmpfs)")
        for index, (name, tries, scenario) in enumerate(scenarios):
            started, outcomes = time.perf_counter(), []
            for attempt in range(tries):
                folder = root / f"{index}-{attempt}"
                folder.mkdir()
                outcomes.append(scenario(folder))
            survived = sum(outcome.survived for outcome in outcomes)
            lost = "; ".join(sorted({o.lost for o in outcomes if not o.survived})) or "nothing"
            early = sum(o.detail == "the run finished before the signal arrived" for o in outcomes)
            note = f" ({early} finished before the signal)" if early else ""
            print(f"{name:<52} | {tries:>5} | {survived:>8} | {lost}{note}  [{time.perf_counter() - started:.0f} s]", flush=True)


if __name__ == "__main__":
    main()
