"""Property-based tests: whatever values a user gives the methods, the trainer and the data, the
run either works or stops with one ``deepclust: error:`` line — never a traceback."""

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepclust_cli.errors import DeepclustError
from deepclust_cli.methods import METHODS

# Values of every kind a typo or a bad sweep produces.
ANY_VALUE = st.one_of(
    st.integers(-3, 3),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=6),
    st.lists(st.integers(-2, 64), max_size=4),
)


@pytest.mark.parametrize("name", METHODS.names())
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_method_parameters_construct_or_fail_with_one_line(name, data):
    method_class = METHODS.get(name)
    fields = [field.name for field in dataclasses.fields(method_class.Config) if field.name != "name"]
    params = data.draw(st.dictionaries(st.sampled_from(fields), ANY_VALUE, max_size=4))
    base = {"n_clusters": 3} if "n_clusters" in fields else {"object_type": "squares"}
    try:
        method_class(**{**base, **params})
    except DeepclustError as error:
        assert "\n" not in str(error) and str(error), repr(error)


def one_line_or_success(result) -> None:
    if result.code == 0:
        return
    lines = result.err.strip().splitlines()
    assert lines and lines[-1].startswith("deepclust: error: "), result.err
    assert len([line for line in lines if line.startswith("deepclust")]) == 1, result.err


NUMBERS = st.one_of(st.integers(-2, 40), st.sampled_from(["0.0", "1e-3", "-1", "nan", "inf", "1e30", "abc", "[1,2]", "null"]))
TRAINER_KEYS = ["max_epochs", "max_batches", "momentum", "checkpoint_every", "checkpoint_min_seconds", "log_every", "processes"]
METHOD_KEYS = {
    "kmeans": ["n_clusters", "n_init", "max_iter", "tol", "init"],
    "spectral": ["n_clusters", "n_neighbors", "n_init", "predict_neighbors", "eigen_solver"],
    "spectralnet": ["n_clusters", "n_neighbors", "scale_k", "spectral.batch_size", "spectral.lr", "spectral.hidden", "validation_fraction"],
    "spectralnet_ae": ["n_clusters", "alpha", "n_neighbors", "spectral.batch_size", "embedding_dim", "decoder.hidden"],
}
FAST = ["method.spectral.epochs=1", "method.n_init=1"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_overrides_run_or_fail_with_one_line(deepclust, data):
    method = data.draw(st.sampled_from(sorted(METHOD_KEYS)))
    overrides = [
        f"dataset.n_samples={data.draw(st.integers(0, 80))}",
        f"dataset.n_classes={data.draw(st.integers(0, 6))}",
        f"dataset.n_features={data.draw(st.integers(0, 5))}",
    ]
    for key in data.draw(st.lists(st.sampled_from(METHOD_KEYS[method]), max_size=3, unique=True)):
        overrides.append(f"method.{key}={data.draw(NUMBERS)}")
    for key in data.draw(st.lists(st.sampled_from(TRAINER_KEYS), max_size=3, unique=True)):
        overrides.append(f"trainer.{key}={data.draw(NUMBERS)}")
    fast = FAST if method.startswith("spectralnet") else []
    one_line_or_success(deepclust(f"method={method}", "dataset=blobs", *fast, *overrides))


ARRAYS = st.builds(
    lambda shape, fill, poison: (shape, fill, poison),
    st.lists(st.integers(0, 6), min_size=0, max_size=3).map(tuple),
    st.sampled_from(["float64", "float32", "int64", "bool"]),
    st.sampled_from([None, math.nan, math.inf]),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=ARRAYS, n_clusters=st.integers(-1, 8))
def test_any_features_file_runs_or_fails_with_one_line(deepclust, tmp_path, spec, n_clusters):
    shape, dtype, poison = spec
    values = np.random.default_rng(0).random(shape).astype(dtype)
    if poison is not None and values.size and values.dtype.kind == "f":
        values.flat[0] = poison
    path = tmp_path / "features.npy"
    np.save(path, values)
    one_line_or_success(deepclust("method=kmeans", "dataset=features", f"dataset.path={path}", f"method.n_clusters={n_clusters}"))
