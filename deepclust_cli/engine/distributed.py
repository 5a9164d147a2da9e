"""Data-parallel training over PyTorch's process groups: one process per GPU, or per CPU share.

Every process (rank) holds the whole dataset and a full replica of the model. A global batch is
cut into contiguous shards, one per rank (:meth:`World.shard`); each rank runs its shard forward,
and the gradients are summed over ranks (:meth:`World.sum_gradients`) before the optimizer steps,
so all replicas take the same step. A loss that is a mean over samples is weighted by its shard's
share of the batch, ``len(shard) / len(batch)``, so the sum of the ranks' gradients is the
gradient of the global batch's mean. A loss over the batch as a whole (SpectralNet's graph
Laplacian, its orthonormalization) is computed on every rank from the gathered shard outputs
(:meth:`World.gather`), in which only the rank's own rows carry gradient: summed over ranks, the
partial gradients again make the whole batch's gradient.

Why not :class:`torch.nn.parallel.DistributedDataParallel`: it averages per-rank losses that are
independent of the other ranks' outputs, while SpectralNet's step differentiates through an
orthonormalization computed from all ranks' outputs. The same collectives (NCCL on GPUs, gloo
on the CPU) do the work here; the gradients of a step travel in one flat buffer.

Processes start in one of three ways: ``deepclust gpus=[0,1]`` (or ``trainer.processes=2`` on the
CPU) spawns them itself (:func:`spawn`); ``torchrun --nproc_per_node=N -m deepclust_cli ...``
starts them from outside, multi-node included; a SLURM job of several tasks from the submitit
launcher joins its tasks (:func:`adopt_slurm_tasks`). The last two reach :func:`joined` through
torch's ``env://`` variables.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import multiprocessing.connection
import os
import pickle
import signal
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from deepclust_cli.errors import ConfigError, DeepclustError, Interrupted

# How long a rank waits for the others at a collective (e.g. while rank 0 alone scores a held-out evaluation).
TIMEOUT = _dt.timedelta(minutes=30)


@dataclass(frozen=True)
class World:
    """This process's place among the ranks; in a single process every collective is the identity."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0  # the rank among the processes of this machine (picks the GPU)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes the session folder."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1

    def shard_bounds(self, n: int) -> tuple[int, int]:
        """``[start, stop)`` of this rank's contiguous share of ``n`` rows (sizes differ by at most one)."""
        base, extra = divmod(n, self.size)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (self.rank < extra)

    def shard(self, rows: torch.Tensor) -> torch.Tensor:
        """This rank's share of a global batch ``rows``."""
        start, stop = self.shard_bounds(len(rows))
        return rows[start:stop]

    def gather(self, local: torch.Tensor, total: int) -> torch.Tensor:
        """Every rank's shard of a batch of ``total`` rows, concatenated in rank order — the
        batch's own order. The rank's own rows keep their autograd history; the others' are
        constants, so a loss of the result sends gradient only into this rank's computation."""
        if not self.parallel:
            return local
        sizes = [stop - start for start, stop in (World(r, self.size).shard_bounds(total) for r in range(self.size))]
        padded = local.detach().new_zeros((max(sizes), *local.shape[1:]))
        padded[: len(local)] = local.detach()
        parts = [torch.empty_like(padded) for _ in range(self.size)]
        dist.all_gather(parts, padded)
        pieces = [part[:size] for part, size in zip(parts, sizes)]
        pieces[self.rank] = local
        return torch.cat(pieces)

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` summed over ranks (a new tensor; ``value`` itself in a single process)."""
        if not self.parallel:
            return value
        total = value.detach().clone()
        dist.all_reduce(total)
        return total

    def sum_gradients(self, parameters: Iterable[nn.Parameter]) -> None:
        """Replace every gradient by its sum over ranks, in one flat all-reduce; a parameter this
        rank did not reach counts as a zero gradient (every rank must send the same layout)."""
        if not self.parallel:
            return
        trained = [p for p in parameters if p.requires_grad]
        for parameter in trained:
            if parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)
        flat = torch.cat([p.grad.reshape(-1) for p in trained])
        dist.all_reduce(flat)
        for parameter, summed in zip(trained, flat.split([p.numel() for p in trained])):
            parameter.grad.copy_(summed.view_as(parameter))

    def broadcast_buffers(self, module: nn.Module) -> None:
        """Rank 0's buffers (batch-norm running statistics) to every rank, so that evaluation
        features agree whichever rank computes them."""
        if not self.parallel:
            return
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)

    def broadcast_object(self, value: Any) -> Any:
        """Rank 0's ``value`` (any picklable object) on every rank."""
        if not self.parallel:
            return value
        holder = [value]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]


SINGLE = World()


@dataclass(frozen=True)
class Launch:
    """How many ranks a run has, which backend joins them and who starts them."""

    size: int = 1
    backend: str = "gloo"
    external: bool = False  # started outside deepclust: torchrun or SLURM tasks (RANK, WORLD_SIZE, MASTER_ADDR set)

    @property
    def spawns(self) -> bool:
        """Whether deepclust starts the ranks itself."""
        return self.size > 1 and not self.external


def plan(gpus: Sequence[int], processes: int, backend: str) -> Launch:
    """The launch ``gpus``, ``trainer.processes`` and ``trainer.backend`` ask for.

    Under torchrun the environment decides the ranks; otherwise ``gpus=[0, 1, ...]`` gives one
    rank per GPU and ``trainer.processes`` the ranks on the CPU. ``backend`` auto is NCCL with
    GPUs, gloo without.
    """
    gpus = list(gpus)
    environment = int(os.environ.get("WORLD_SIZE", "1"))
    external = "RANK" in os.environ and environment > 1
    if external:
        if processes > 1:
            raise ConfigError("under torchrun, --nproc_per_node sets the processes; drop trainer.processes")
        size = environment
    elif len(gpus) > 1:
        if processes not in (1, len(gpus)):
            raise ConfigError(f"gpus={gpus} runs one process per GPU; trainer.processes={processes} must be 1 or {len(gpus)}")
        size = len(gpus)
    else:
        if processes > 1 and gpus:
            raise ConfigError(f"trainer.processes={processes} with gpus={gpus}: list one GPU per process, e.g. gpus=[0,1]")
        size = processes
    if backend == "auto":
        backend = "nccl" if gpus else "gloo"
    if backend == "nccl" and not gpus:
        raise ConfigError("trainer.backend=nccl needs GPUs; use trainer.backend=gloo (or auto) with gpus=[]")
    return Launch(size=size, backend=backend, external=external)


@contextlib.contextmanager
def joined(launch: Launch) -> Iterator[World]:
    """This process's :class:`World`: joined to torchrun's process group for the block, or the
    single process."""
    if not launch.external:
        yield SINGLE
        return
    world = World(int(os.environ["RANK"]), launch.size, int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(launch.backend, init_method="env://", rank=world.rank, world_size=world.size, timeout=TIMEOUT)
    try:
        yield world
        dist.barrier()  # the ranks leave together (see _rank_main)
    finally:
        dist.destroy_process_group()


def spawn(task: Callable[..., Any], args: tuple[Any, ...], launch: Launch) -> Any:
    """Run ``task(*args, world)`` in ``launch.size`` fresh processes joined on this machine;
    returns rank 0's result. A user error in any rank is raised here as that error; a rank that a
    signal ended (kill -9, the out-of-memory killer) as :class:`RankLost`; anything else propagates
    as torch's report of the failed process. The other ranks get :data:`GRACE_SECONDS` to end on
    their own first (a collective with the lost rank fails at once) before they are stopped."""
    port = _free_port()
    # torch logs each rank it stops after another failed; the failure itself is what we report.
    logging.getLogger("torch.multiprocessing.spawn").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="deepclust-ranks-") as scratch:
        outbox = Path(scratch)
        ranks = mp.start_processes(
            _rank_main, args=(task, args, launch, port, outbox), nprocs=launch.size, start_method="spawn", join=False
        )
        # The ranks stop at their next checkpoint on SIGINT/SIGTERM. Ctrl-C reaches them from the
        # terminal; a SIGTERM sent to this process alone is passed on to them. (Python takes
        # handlers in the main thread only; elsewhere the defaults stay, as for StopRequests.)
        previous = {}
        if threading.current_thread() is threading.main_thread():
            previous = {
                signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
                signal.SIGTERM: signal.signal(signal.SIGTERM, lambda number, frame: _forward(ranks.processes, number)),
            }
        try:
            failed = _first_failure(ranks.processes, GRACE_SECONDS)
            try:
                while not ranks.join():  # all have ended, or the grace is over: torch stops the rest
                    pass
            except (mp.ProcessRaisedException, mp.ProcessExitedException) as report:
                killed = ranks.processes[failed].exitcode if failed is not None else None
                if killed is not None and killed < 0:
                    raise RankLost(failed, launch.size, -killed) from None
                for path in sorted(outbox.glob("error-*.pkl")):
                    raise pickle.loads(path.read_bytes()) from None
                raise report
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
        return pickle.loads((outbox / "result.pkl").read_bytes())


GRACE_SECONDS = 30.0  # how long the other ranks may take to end by themselves once one has failed


class RankLost(DeepclustError):
    """A rank ended by a signal, not by an error of its own: the run cannot go on without it."""

    def __init__(self, rank: int, size: int, signal_number: int, message: Optional[str] = None) -> None:
        name = signal.Signals(signal_number).name if signal_number in signal.valid_signals() else f"signal {signal_number}"
        cause = " (as the kernel's out-of-memory killer does)" if signal_number == signal.SIGKILL else ""
        super().__init__(message or f"rank {rank} of {size} was killed by {name}{cause}")
        self.rank, self.size, self.signal_number = rank, size, signal_number

    def __reduce__(self) -> tuple:
        return (type(self), (self.rank, self.size, self.signal_number, str(self)))


def _first_failure(processes: Sequence[Any], grace: float) -> Optional[int]:
    """Wait until every process has ended; the index of the first that failed (None: none did).
    Once one has failed the others get ``grace`` seconds. Of processes seen ending together, one
    a signal ended comes first: the others' errors (a broken collective) follow from it."""
    waiting = {process.sentinel: index for index, process in enumerate(processes)}
    failed, deadline = None, None
    while waiting:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready = multiprocessing.connection.wait(list(waiting), timeout)
        if not ready:
            break
        ended = [waiting.pop(sentinel) for sentinel in ready]
        for index in ended:
            processes[index].join()
        for index in sorted(ended, key=lambda i: processes[i].exitcode >= 0):
            if processes[index].exitcode != 0 and failed is None:
                failed, deadline = index, time.monotonic() + grace
    return failed


def _forward(processes: Sequence[Any], number: int) -> None:
    for process in processes:
        if process.is_alive():
            os.kill(process.pid, number)


def _rank_main(rank: int, task: Callable[..., Any], args: tuple[Any, ...], launch: Launch, port: int, outbox: Path) -> None:
    """One spawned rank: join the group, run the task, leave rank 0's result (or a user error)
    in ``outbox`` for :func:`spawn` — files, not a pipe, whose buffer would block a large result."""
    world = World(rank, launch.size, rank)
    if launch.backend == "gloo":
        # The ranks share this machine's cores; more threads than cores would only contend.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // launch.size))
    dist.init_process_group(
        launch.backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=launch.size, timeout=TIMEOUT
    )
    try:
        try:
            result = task(*args, world)
        except Interrupted:
            # Every rank stops at the agreed checkpoint, or after the run for a late signal (where a
            # rank without it returns): they leave together too, as below.
            with contextlib.suppress(RuntimeError):  # a peer already gone: the report names it
                dist.barrier()
            raise
        if world.is_main:
            (outbox / "result.pkl").write_bytes(pickle.dumps(result))
        # The ranks leave together: one that tore gloo down while rank 0 still scored the
        # evaluation (the others return at once) was seen to abort at exit under load.
        dist.barrier()
    except DeepclustError as error:
        (outbox / f"error-{rank}.pkl").write_bytes(pickle.dumps(error))
        raise
    finally:
        dist.destroy_process_group()


def adopt_slurm_tasks() -> bool:
    """In a SLURM job of several tasks started by submitit (``hydra/launcher=slurm`` with
    ``tasks_per_node`` or ``nodes`` > 1), export torch's ``env://`` variables (MASTER_ADDR,
    MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK) from SLURM's, so that the tasks join as the ranks
    of one data-parallel run. Returns whether it did."""
    tasks = int(os.environ.get("SLURM_NTASKS", "1"))
    if os.environ.get("SUBMITIT_EXECUTOR") != "slurm" or tasks <= 1 or "RANK" in os.environ:
        return False
    from submitit.helpers import TorchDistributedEnvironment

    TorchDistributedEnvironment().export(set_cuda_visible_devices=False)  # each rank picks gpus[LOCAL_RANK]
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def describe(world: World, launch: Launch) -> Optional[str]:
    """A log line about the ranks, or None for a single process."""
    if not world.parallel:
        return None
    starter = "torchrun or SLURM" if launch.external else "deepclust"
    return f"data parallel: {world.size} processes ({launch.backend}, started by {starter}); rank 0 writes the session"
