"""The principal-component projection against NumPy's SVD."""

import numpy as np
import pytest
import torch

from deepclust_cli.methods.lnscc.projection import PrincipalProjection


def test_components_are_the_leading_right_singular_vectors():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6)) + rng.normal(size=6)
    projection = PrincipalProjection(6, 3).fit(torch.tensor(x, dtype=torch.float32), chunk=128)
    centered = x - x.mean(axis=0)
    _, singular, rows = np.linalg.svd(centered, full_matrices=False)
    for column in range(3):
        got = projection.components[:, column].double().numpy()
        assert abs(got @ rows[column]) == pytest.approx(1.0, abs=1e-4)
        assert got[np.abs(got).argmax()] > 0  # the sign convention
    projected = projection(torch.tensor(x, dtype=torch.float32)).double().numpy()
    assert np.allclose(projected.var(axis=0), singular[:3] ** 2 / len(x), rtol=1e-3)
    assert np.allclose(projected.mean(axis=0), 0, atol=1e-4)


def test_component_count_is_checked():
    with pytest.raises(ValueError, match=r"n_components must be in \[1, 4\], got 5"):
        PrincipalProjection(4, 5)
