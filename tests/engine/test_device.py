import random

import numpy as np
import pytest
import torch

from deepclust_cli.engine.device import autocast, select_device
from deepclust_cli.engine.memory import reuse_freed_memory
from deepclust_cli.engine.seeds import restore_rng_state, rng_state, seed_everything
from deepclust_cli.errors import ConfigError


def test_empty_gpu_list_means_cpu():
    assert select_device([]) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without that GPU")
def test_missing_gpu_is_a_clear_error():
    with pytest.raises(ConfigError, match=r"gpus=\[0\] asks for cuda:0 but this machine has no CUDA device"):
        select_device([0])


@pytest.fixture
def four_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)


def test_each_local_rank_takes_its_own_gpu_from_the_list(four_gpus):
    assert [select_device([2, 0], rank) for rank in (0, 1)] == [torch.device("cuda", 2), torch.device("cuda", 0)]


def test_a_bad_gpu_list_is_a_clear_error(four_gpus):
    with pytest.raises(ConfigError, match=r"gpus=\[0, 5\] asks for cuda:5 but this machine has CUDA devices 0..3"):
        select_device([0, 5])
    with pytest.raises(ConfigError, match="lists a GPU twice"):
        select_device([1, 1])
    with pytest.raises(ConfigError, match="process 2 of this machine has no GPU"):
        select_device([0, 1], local_rank=2)


def test_seed_everything_repeats_all_generators():
    seed_everything(7)
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(7)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_rng_state_round_trip_through_a_weights_only_checkpoint(tmp_path):
    seed_everything(3)
    state = rng_state()
    expected = (random.random(), np.random.rand(), np.random.randn(), torch.rand(2).tolist())
    torch.save(state, tmp_path / "rng.pt")
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    assert (random.random(), np.random.rand(), np.random.randn(), torch.rand(2).tolist()) == expected


def test_autocast_bf16_on_cpu_lowers_matmul_precision():
    a = torch.randn(4, 4)
    with autocast(torch.device("cpu"), "bf16"):
        assert (a @ a).dtype == torch.bfloat16
    with autocast(torch.device("cpu"), "fp32"):
        assert (a @ a).dtype == torch.float32


def test_reuse_freed_memory_takes_effect_under_glibc():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert reuse_freed_memory() is True
