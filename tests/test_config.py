import pytest
from omegaconf import OmegaConf

from deepclust_cli.config import RunConfig, TrainerConfig, make_config, to_settings
from deepclust_cli.errors import ConfigError


def run_config(**top):
    base = OmegaConf.structured(RunConfig)
    return OmegaConf.merge(base, {"method": {"name": "kmeans"}, "dataset": {"name": "blobs"}, "logger": {"name": "tensorboard"}, **top})


@pytest.mark.parametrize(
    "values, message",
    [
        ({"max_epochs": 0}, "trainer: max_epochs must be >= 1 or null, got 0"),
        ({"max_batches": "many"}, "trainer.max_batches: Value 'many' of type 'str' could not be converted to Integer"),
        ({"momentum": 1.0}, "trainer: momentum must be in [0, 1), got 1.0"),
        ({"optimizer": "rmsprop"}, "trainer.optimizer: Invalid value 'rmsprop', expected one of [auto, adam, adamw, sgd]"),
        ({"precision": "fp64"}, "trainer.precision: Invalid value 'fp64', expected one of [fp32, bf16, fp16]"),
        ({"lr": 0.1}, "trainer.lr: Key 'lr' not in 'TrainerConfig'"),  # learning rates are the method's
    ],
)
def test_trainer_errors_are_one_line_and_name_the_key(values, message):
    with pytest.raises(ConfigError) as error:
        make_config(TrainerConfig, values, "trainer")
    assert str(error.value) == message


def test_valid_trainer_values_become_typed_objects():
    trainer = make_config(TrainerConfig, {"optimizer": "sgd", "precision": "bf16", "max_epochs": 2}, "trainer")
    assert trainer.optimizer.name == "sgd" and trainer.precision.value == "bf16" and trainer.max_epochs == 2


def test_test_only_without_resume_is_refused():
    with pytest.raises(ConfigError, match="test_only needs a checkpoint: add --resume PATH"):
        to_settings(run_config(test_only=True))


def test_restart_without_resume_is_refused():
    with pytest.raises(ConfigError, match="restart only applies with --resume"):
        to_settings(run_config(restart=True))


def test_bad_name_and_seed():
    with pytest.raises(ConfigError, match="name must be"):
        to_settings(run_config(name="a/b"))
    with pytest.raises(ConfigError, match=r"seed must be in \[0, 2\*\*32\)"):
        to_settings(run_config(seed=-1))


def test_gpus_must_be_integers():
    with pytest.raises(Exception, match="gpus"):
        run_config(gpus=["zero"])
