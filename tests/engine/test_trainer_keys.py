"""Every key of the trainer group takes effect for every method that trains: change it, observe the
difference. A trainer key without a probe here fails, and so does a probe that sees no difference.

Most probes fit each method on tiny data through the library with a recording context and compare
what it saw — passes of the loops, optimizer steps, TensorBoard points, checkpoints, the
determinism flag, the trained weights. ``num_workers``, ``processes`` and ``backend`` act on how
a run reads its data and starts its ranks, so their probes run the CLI.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from conftest import bar_digits
from deepclust_cli.config import TrainerConfig, make_config
from deepclust_cli.engine.context import Context
from deepclust_cli.methods import METHODS
from deepclust_cli.ops.geometry import family

# torchvision 0.29 deprecates its image codecs in favour of TorchCodec; they still work.
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")

TRAINING = ["spectralnet", "spectralnet_ae", "and", "lnscc", "geocluster", "ae_kmeans"]  # the methods with training loops
DATA_PARALLEL = [name for name in TRAINING if METHODS.get(name).data_parallel]
# GeoCluster reads geometric objects, never images; ae_kmeans reads them through ClusteringMethod.prepare as kmeans does.
READS_IMAGES = ["spectralnet", "spectralnet_ae", "and", "lnscc"]

SPECTRALNET = {
    "n_clusters": 3, "n_neighbors": 5, "scale_k": 2,
    "ae": {"enabled": True, "hidden": [8], "code_dim": 4, "epochs": 3, "batch_size": 32},
    "siamese": {"enabled": True, "hidden": [8], "output_dim": 4, "epochs": 3, "batch_size": 32},
    "spectral": {"hidden": [16], "epochs": 3, "batch_size": 48},
}
PARAMS: dict[str, dict[str, Any]] = {
    "spectralnet": SPECTRALNET,
    "spectralnet_ae": {**SPECTRALNET, "alpha": 0.1},
    "and": {"n_clusters": 3, "backbone": "small_convnet", "embedding_dim": 8, "anchor_fractions": [0.0, 0.5], "epochs": 3,
            "batch_size": 16, "n_init": 1, "augment": {"saturation": 0.0, "hue": 0.0, "grayscale_p": 0.0}},
    "lnscc": {"n_clusters": 3, "n_neighbors": 8, "hidden": [16], "embedding_dim": 2, "epochs": 4, "clustering_epoch": 2,
              "batch_size": 64, "plot_every": 0, "features": {"source": "ae", "ae": {"hidden": [8], "code_dim": 4, "epochs": 3, "batch_size": 32}}},
    "geocluster": {"object_type": "squares", "branching": 4, "threshold": 12, "max_depth": 3, "student": {"samples": 256, "steps": 20, "batch_size": 64},
                   "teacher": "energy", "energy": {"steps": 5}},
    "ae_kmeans": {"n_clusters": 3, "n_init": 2, "ae": {"hidden": [8], "code_dim": 4, "epochs": 3, "batch_size": 32}},
}


@functools.lru_cache(maxsize=None)
def data_of(name: str) -> torch.Tensor:
    if name == "and":
        return torch.from_numpy(bar_digits(48, seed=0)[0]).unsqueeze(1)
    if name == "geocluster":
        return family("squares").generate(150, 20.0, 0.2, 1.0, torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(0)
    centers = torch.tensor([[0.0] * 6, [6.0] * 6, [-6.0, 6.0] * 3])
    return (centers.repeat_interleave(64, dim=0) + torch.randn(192, 6, generator=generator)).float()


class Recorder(Context):
    """A library context that keeps what the engine did: scalars, checkpoints, the determinism flag."""

    def __init__(self, trainer: TrainerConfig) -> None:
        super().__init__(show_progress=False, trainer=trainer)
        self.pass_logs = 0
        self.step_logs = 0
        self.checkpoints = 0
        self.deterministic_seen: set[bool] = set()

    def log_scalars(self, values: dict[str, float], step: int) -> None:
        if any(tag.endswith("/loss_step") for tag in values):
            self.step_logs += 1
        else:
            self.pass_logs += 1

    def checkpoint(self, method: Any, progress: dict[str, Any], *, score: Any = None) -> None:
        self.checkpoints += 1
        self.deterministic_seen.add(torch.are_deterministic_algorithms_enabled())


@dataclasses.dataclass(frozen=True)
class Observed:
    passes: int  # passes of all loops (epochs, rounds' epochs, tree levels)
    steps: int  # optimizer steps
    step_logs: int  # TensorBoard points of the batch loss
    checkpoints: int
    deterministic: frozenset
    weights: tuple  # every float tensor of the fitted state, flattened


def weights_of(state: Any) -> list[float]:
    if isinstance(state, torch.Tensor):
        return state.double().flatten().tolist() if state.is_floating_point() else []
    if isinstance(state, dict):
        return [w for key in sorted(state) if "optimizer" not in str(key) for w in weights_of(state[key])]
    if isinstance(state, (list, tuple)):
        return [w for item in state for w in weights_of(item)]
    return []


@functools.lru_cache(maxsize=None)
def fit(name: str, **trainer: Any) -> Observed:
    context = Recorder(make_config(TrainerConfig, {"checkpoint_min_seconds": 0, **trainer}, "trainer"))
    method = METHODS.get(name)(seed=0, **PARAMS[name]).fit(data_of(name), context=context)
    return Observed(context.pass_logs, context.step, context.step_logs, context.checkpoints,
                    frozenset(context.deterministic_seen), tuple(weights_of(method.state_dict())))


# Each probe: (the observation compared, the trainer values of the two fits). The base fit comes first.
Probe = tuple[Callable[[Observed], Any], dict[str, Any], dict[str, Any]]
LIBRARY_PROBES: dict[str, Callable[[str], Probe]] = {
    "max_epochs": lambda name: (lambda seen: seen.passes, {}, {"max_epochs": 1}),
    "max_batches": lambda name: (lambda seen: seen.steps, {}, {"max_batches": 1}),
    "optimizer": lambda name: (lambda seen: seen.weights, {}, {"optimizer": "adam" if name == "and" else "sgd"}),
    "momentum": lambda name: (lambda seen: seen.weights, {"optimizer": "sgd", "momentum": 0.0}, {"optimizer": "sgd", "momentum": 0.9}),
    "nesterov": lambda name: (lambda seen: seen.weights, {"optimizer": "sgd", "nesterov": False}, {"optimizer": "sgd", "nesterov": True}),
    "precision": lambda name: (lambda seen: seen.weights, {}, {"precision": "bf16"}),
    "deterministic": lambda name: (lambda seen: seen.deterministic, {"deterministic": False}, {"deterministic": True}),
    "checkpoint_every": lambda name: (lambda seen: seen.checkpoints, {}, {"checkpoint_every": 2}),
    "checkpoint_min_seconds": lambda name: (lambda seen: seen.checkpoints, {}, {"checkpoint_min_seconds": 3600}),
    "log_every": lambda name: (lambda seen: seen.step_logs, {"log_every": 1}, {"log_every": 1000}),
}
CLI_PROBES = {"num_workers", "processes", "backend"}


def test_every_trainer_key_has_a_probe():
    keys = {field.name for field in dataclasses.fields(TrainerConfig)}
    assert keys == set(LIBRARY_PROBES) | CLI_PROBES, "a trainer key needs a probe that shows its effect"


@pytest.mark.parametrize("name", TRAINING)
@pytest.mark.parametrize("key", sorted(LIBRARY_PROBES))
def test_a_trainer_key_changes_what_the_method_does(key, name):
    observe, base, changed = LIBRARY_PROBES[key](name)
    assert observe(fit(name, **base)) != observe(fit(name, **changed)), f"trainer.{key} had no effect on {name}"


# -- the keys that act on the CLI's run: data loading and ranks ---------------------------------
def write_image_folder(top: Path) -> None:
    """imagenet/train/<three classes>/ of 12×12 PNG bar images."""
    from PIL import Image

    images, labels = bar_digits(24, seed=0)
    for index, (image, label) in enumerate(zip(images, labels % 3)):
        folder = top / "imagenet" / "train" / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[8:20, 8:20]).save(folder / f"{index}.png")


CLI_RUNS = {
    "spectralnet": ["method=spectralnet", "method.spectral.batch_size=8", "method.n_neighbors=3", "method.scale_k=1"],
    "spectralnet_ae": ["method=spectralnet_ae", "method.spectral.batch_size=8", "method.n_neighbors=3", "method.scale_k=1"],
    "and": ["method=and", "method.backbone=small_convnet", "method.batch_size=8", "method.n_init=1", "method.knn_neighbors=5"],
    "lnscc": ["method=lnscc", "method.n_neighbors=4", "method.batch_size=16", "method.plot_every=0", "method.n_init=2"],
    "geocluster": ["method=geocluster", "dataset=squares", "dataset.n_objects=100", "method.threshold=30"],
    "ae_kmeans": ["method=ae_kmeans", "method.ae.hidden=[16]", "method.ae.batch_size=8", "method.n_init=1"],
}


@pytest.mark.parametrize("name", READS_IMAGES)
def test_num_workers_decodes_images_read_from_disk_in_worker_processes(deepclust, tmp_path, monkeypatch, name):
    write_image_folder(tmp_path / "data")
    workers_seen: list[int] = []
    original = torch.utils.data.DataLoader.__init__

    def recording(self, *args, **kwargs):
        workers_seen.append(kwargs.get("num_workers", 0))
        original(self, *args, **kwargs)

    monkeypatch.setattr(torch.utils.data.DataLoader, "__init__", recording)
    run = [*CLI_RUNS[name], "dataset=imagenet", "dataset.n_classes=3", "dataset.image_size=12", "dataset.test_dir=null", f"data_dir={tmp_path / 'data'}", "trainer=debug"]
    assert deepclust(*run).code == 0
    assert workers_seen == []  # trainer.num_workers=0: decoded in the run's own process
    result = deepclust(*run, "trainer.num_workers=2")
    assert result.code == 0, result.err
    assert workers_seen and set(workers_seen) == {2}


@pytest.mark.parametrize("name", TRAINING)
def test_processes_and_backend_start_ranks_or_say_why_not(deepclust, monkeypatch, name):
    launched = []

    def spawn(task, args, launch):
        launched.append((launch.size, launch.backend))
        return {}

    monkeypatch.setattr("deepclust_cli.engine.distributed.spawn", spawn)
    run = [*CLI_RUNS[name], "trainer=debug"] if name != "and" else [*CLI_RUNS[name], "dataset=mnist", "trainer=debug"]
    result = deepclust(*run, "trainer.processes=2", "trainer.backend=gloo")
    if name in DATA_PARALLEL:
        assert launched == [(2, "gloo")]
        refused = deepclust(*run, "trainer.processes=2", "trainer.backend=nccl")
        assert refused.code == 2 and "trainer.backend=nccl needs GPUs" in refused.err
    else:
        assert result.code == 2 and "trains in one process" in result.err
        assert launched == []
