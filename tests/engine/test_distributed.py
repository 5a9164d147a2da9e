"""Data parallel: shards, the launch plan, and — in two gloo processes — that summed shard
gradients equal the whole batch's gradient for a per-sample loss and for SpectralNet's
whole-batch objective, and that gathered rows come back in the batch's order."""

import os

import pytest
import torch

from conftest import bar_digits
from deepclust_cli.engine import distributed
from deepclust_cli.engine.context import Context
from deepclust_cli.engine.distributed import SINGLE, Launch, World, plan
from deepclust_cli.errors import ConfigError, DataError
from deepclust_cli.methods import AND
from deepclust_cli.methods.spectralnet.method import spectral_loss
from deepclust_cli.methods.spectralnet.network import SpectralNetwork
from deepclust_cli.nets.mlp import mlp
from deepclust_cli.ops.neighbors import gaussian_knn_weights


@pytest.mark.parametrize("n, size", [(10, 3), (7, 2), (1, 2), (256, 4)])
def test_shards_cover_the_batch_in_order_with_sizes_within_one(n, size):
    rows = torch.arange(n)
    shards = [World(rank, size).shard(rows) for rank in range(size)]
    assert torch.equal(torch.cat(shards), rows)
    sizes = [len(shard) for shard in shards]
    assert max(sizes) - min(sizes) <= 1


def test_a_single_process_world_leaves_everything_as_it_is():
    net = mlp(3, [4, 2])
    net(torch.ones(5, 3)).sum().backward()
    before = [p.grad.clone() for p in net.parameters()]
    SINGLE.sum_gradients(net.parameters())
    assert all(torch.equal(p.grad, g) for p, g in zip(net.parameters(), before))
    value = torch.tensor([1.5, 2.0])
    assert SINGLE.sum(value) is value and SINGLE.gather(value, 2) is value and SINGLE.broadcast_object("x") == "x"


def test_the_launch_plan(monkeypatch):
    for key in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    assert plan([], 1, "auto") == Launch(size=1, backend="gloo")
    assert plan([], 2, "auto") == Launch(size=2, backend="gloo")
    assert plan([0, 1], 1, "auto") == Launch(size=2, backend="nccl")
    assert plan([0, 1], 2, "gloo") == Launch(size=2, backend="gloo")
    assert plan([], 2, "gloo").spawns and not plan([0], 1, "auto").spawns
    with pytest.raises(ConfigError, match="must be 1 or 2"):
        plan([0, 1], 3, "auto")
    with pytest.raises(ConfigError, match="list one GPU per process"):
        plan([0], 2, "auto")
    with pytest.raises(ConfigError, match="nccl needs GPUs"):
        plan([], 2, "nccl")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert plan([], 1, "auto") == Launch(size=4, backend="gloo", external=True)
    assert not plan([], 1, "auto").spawns
    with pytest.raises(ConfigError, match="--nproc_per_node sets the processes"):
        plan([], 2, "auto")


def test_slurm_tasks_become_ranks(monkeypatch):
    slurm = {"SLURM_JOB_ID": "123", "SLURM_NTASKS": "4", "SLURM_PROCID": "3", "SLURM_LOCALID": "1",
             "SLURM_JOB_NUM_NODES": "2", "SLURM_NODEID": "1", "SLURM_JOB_NODELIST": "gpu[07-08]"}
    # A private copy of the environment: submitit exports into os.environ, and later tests must not see it.
    monkeypatch.setattr(os, "environ", {"PATH": os.environ.get("PATH", ""), **slurm})
    assert not distributed.adopt_slurm_tasks()  # not a submitit job: plain srun or salloc shells are left alone
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    assert distributed.adopt_slurm_tasks()
    assert [os.environ[key] for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")] == ["3", "4", "1", "gpu07"]
    assert plan([0, 1], 1, "auto") == Launch(size=4, backend="nccl", external=True)
    assert not distributed.adopt_slurm_tasks()  # exported once


def mean_loss_gradients(world: World) -> list[torch.Tensor]:
    """A per-sample mean loss: each rank's shard mean weighted by its share, gradients summed."""
    net = mlp(4, [8, 3])
    with torch.no_grad():
        for index, parameter in enumerate(net.parameters()):
            parameter.copy_(torch.linspace(-1, 1, parameter.numel()).view_as(parameter) * (index + 1) / 3)
    batch = torch.linspace(-2, 2, 11 * 4).view(11, 4).sin()
    shard = world.shard(batch)
    (net(shard).square().mean() * (len(shard) / len(batch))).backward()
    world.sum_gradients(net.parameters())
    return [p.grad for p in net.parameters()]


def spectral_gradients(world: World) -> tuple[list[torch.Tensor], torch.Tensor]:
    """SpectralNet's step: shard outputs gathered, orthonormalized and scored as one batch."""
    torch.manual_seed(0)
    net = SpectralNetwork(2, [16, 16], 3, "qr", 1e-4)
    points = torch.linspace(0, 6, 60 * 2).view(60, 2).cos() + torch.linspace(0, 1, 60).unsqueeze(1)
    raw = world.gather(net.body(world.shard(points)), len(points))
    weights, _ = net.fit_orthonorm(raw)
    affinities, indices = gaussian_knn_weights(points, 5, 2, True)
    spectral_loss(affinities, indices, raw @ weights).backward()
    world.sum_gradients(net.parameters())
    return [p.grad for p in net.parameters()], raw.detach()


def two_rank_checks(world: World) -> dict:
    """What the test compares with one process; also checks the error path crosses processes."""
    gathered = world.gather(torch.arange(world.rank * 10, world.rank * 10 + 3 - world.rank).float(), 5)
    return {
        "mean": mean_loss_gradients(world),
        "spectral": spectral_gradients(world),
        "gathered": gathered,
        "summed": world.sum(torch.tensor([world.rank + 1.0])),
        "broadcast": world.broadcast_object(f"rank {world.rank}"),
    }


def and_replicas(world: World) -> dict:
    """AND fitted by two ranks: every rank's bank, anchors and weights, gathered to rank 0."""
    images = bar_digits(96, 0)[0][:, None]
    method = AND(n_clusters=10, backbone="small_convnet", anchor_fractions=[0.0, 0.5], epochs=2, batch_size=32, n_init=1)
    method.fit(images, context=Context(seed=0, show_progress=False, world=world))
    weights = torch.cat([p.detach().reshape(-1) for p in method.net.parameters()])
    rows = [method.bank.features.reshape(-1), method.anchor.float(), method.neighbors.reshape(-1).float(), weights]
    return {"per_rank": world.gather(torch.cat(rows).unsqueeze(0), world.size), "sizes": [len(r) for r in rows]}


def failing_rank(world: World) -> None:
    raise DataError(f"bad data seen by rank {world.rank}")


def test_two_gloo_processes_take_the_whole_batch_step():
    result = distributed.spawn(two_rank_checks, (), Launch(size=2, backend="gloo"))
    for parallel, single in zip(result["mean"], mean_loss_gradients(SINGLE)):
        torch.testing.assert_close(parallel, single, rtol=1e-5, atol=1e-7)
    grads, raw = spectral_gradients(SINGLE)
    torch.testing.assert_close(result["spectral"][1], raw, rtol=1e-6, atol=1e-7)
    for parallel, single in zip(result["spectral"][0], grads):
        torch.testing.assert_close(parallel, single, rtol=1e-4, atol=1e-6)
    assert result["gathered"].tolist() == [0.0, 1.0, 2.0, 10.0, 11.0]
    assert result["summed"].tolist() == [3.0] and result["broadcast"] == "rank 0"


def test_and_ranks_keep_one_bank_one_anchor_set_and_one_model():
    result = distributed.spawn(and_replicas, (), Launch(size=2, backend="gloo"))
    first, second = result["per_rank"]
    bank, anchors, neighbors, weights = first.split(result["sizes"])
    assert torch.equal(first, second)
    assert anchors.sum() == 48 and not torch.equal(neighbors, torch.arange(96.0))
    assert bank.abs().sum() > 0 and weights.abs().sum() > 0


def test_a_user_error_in_a_rank_is_raised_as_itself():
    with pytest.raises(DataError, match=r"bad data seen by rank [01]"):
        distributed.spawn(failing_rank, (), Launch(size=2, backend="gloo"))
