import pytest
from omegaconf import OmegaConf

from deepclust_cli.cli import check_group_choices, overrides_last, parse_overrides, quote, translate_argv
from deepclust_cli.errors import ConfigError


def test_resume_and_test_only_flags_become_overrides():
    assert translate_argv(["--resume", "out/a b/last.ckpt", "--test-only", "seed=1"]) == [
        "resume='out/a b/last.ckpt'",
        "test_only=true",
        "seed=1",
    ]
    assert translate_argv(["--resume=x.ckpt"]) == ["resume='x.ckpt'"]


def test_resume_without_a_path_is_an_error():
    with pytest.raises(ConfigError, match="--resume needs a checkpoint path"):
        translate_argv(["--resume"])
    with pytest.raises(ConfigError, match="--resume needs a checkpoint path"):
        translate_argv(["--resume", "--test-only"])
    for empty in (["--resume", ""], ["--resume="]):  # an unset shell variable must not start a fresh run
        with pytest.raises(ConfigError, match="--resume needs a checkpoint path"):
            translate_argv(empty)


def test_quoted_values_survive_hydra_and_omegaconf_parsing():
    for path in ["odd/it's, [x]=1/last.ckpt", "back\\slash", "trailing\\", "it\\'s", "text ${b} here"]:
        (override,) = parse_overrides([f"resume={quote(path)}"])
        assert OmegaConf.create({"resume": override.value()}).resume == path


def test_flags_move_before_overrides():
    assert overrides_last(["a=1", "-m", "b=2", "--cfg", "job", "c=3", "--info", "searchpath"]) == [
        "-m", "--cfg", "job", "--info", "searchpath", "a=1", "b=2", "c=3",
    ]


def test_group_choices_are_checked_for_every_sweep_value(tmp_path):
    (tmp_path / "method").mkdir()
    (tmp_path / "method" / "kmeans.yaml").write_text("name: kmeans\n")
    check_group_choices(parse_overrides(["method=kmeans", "seed=1,2"]), [tmp_path])
    with pytest.raises(ConfigError, match=r"unknown method 'kmean' \(did you mean 'kmeans'\?\); registered methods: kmeans"):
        check_group_choices(parse_overrides(["method=kmeans,kmean"]), [tmp_path])
