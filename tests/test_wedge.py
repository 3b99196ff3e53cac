"""The wedge toy landscape: exact values, use as a model, the hyperplane experiment."""

import numpy as np
import pytest
import torch

from landscape_widgets.core.directions import random_directions
from landscape_widgets.core.grids import plane
from landscape_widgets.core.landscape import compute_landscape
from landscape_widgets.builtin.wedge import (
    WEDGE_DATA,
    WedgeModel,
    hyperplane_experiment,
    subspace_optimization,
    wedge_loss,
    wedge_model,
    wedge_objective,
    wedge_optimum,
)


def test_wedge_loss_is_zero_on_a_wedge():
    x = wedge_optimum(20, 4, seed=3)
    assert int((x != 0).sum()) == 4
    assert float(wedge_loss(x, 4)) == 0.0
    assert float(wedge_loss(torch.zeros(20), 4)) == 0.0
    # a point with fewer than n non-zero coordinates is on a wedge too
    assert float(wedge_loss(wedge_optimum(20, 2, seed=1), 4)) == 0.0


def test_wedge_loss_is_the_distance_to_the_nearest_wedge():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 8, generator=gen, dtype=torch.float64)
    n = 3
    # brute force: distance to every coordinate subspace spanned by n axes
    import itertools

    for row, value in zip(x, wedge_loss(x, n)):
        dists = [row[[i for i in range(8) if i not in axes]].norm() for axes in itertools.combinations(range(8), n)]
        assert float(value) == pytest.approx(float(min(dists)), rel=1e-12)
        # moving onto the nearest wedge: zero the D - n smallest coordinates
        proj = row.clone()
        proj[torch.argsort(row.abs())[: 8 - n]] = 0
        assert float((row - proj).norm()) == pytest.approx(float(value), rel=1e-12)
        assert float(wedge_loss(proj, n)) == 0.0


def test_wedge_loss_rejects_bad_n():
    with pytest.raises(ValueError, match="n_long"):
        wedge_loss(torch.zeros(5), 5)


def test_wedge_model_works_in_compute_landscape():
    model = wedge_model(10, 2, seed=0)
    with torch.no_grad():
        assert float(wedge_objective(model(WEDGE_DATA[0]), WEDGE_DATA[1])) == 0.0
    ds = compute_landscape(model, wedge_objective, WEDGE_DATA, grid=plane(num=5), device="cpu")
    assert "accuracy" not in ds
    theta = model.point.detach().reshape(-1).double()
    dirs = random_directions(model, 2, seed=0)
    a, b = 0.5, -1.0
    expected = float(wedge_loss(theta + a * dirs[0].double() + b * dirs[1].double(), 2))
    assert float(ds["loss"].sel(alpha=a, beta=b)) == pytest.approx(expected, rel=1e-5)
    assert float(ds["loss"].sel(alpha=0.0, beta=0.0)) == 0.0
    batched = compute_landscape(model, wedge_objective, WEDGE_DATA, grid=plane(num=5),
                                device="cpu", strategy="batched")
    np.testing.assert_allclose(batched["loss"].values, ds["loss"].values, rtol=1e-5, atol=1e-6)


def test_hyperplane_optimization_succeeds_iff_d_at_least_D_minus_n():
    dim, n = 30, 6
    ratios = hyperplane_experiment(dim, n, dims=[5, 12, dim - n, dim - n + 3], steps=100)
    assert ratios[dim - n] < 1e-6 and ratios[dim - n + 3] < 1e-6
    assert ratios[5] > 0.3 and ratios[12] > 0.1


def test_subspace_optimization_rejects_bad_d():
    with pytest.raises(ValueError, match="subspace dimension"):
        subspace_optimization(10, 2, 0)


def test_wedge_model_rejects_bad_sizes():
    with pytest.raises(ValueError, match="n_long"):
        WedgeModel(4, 4)


def test_two_wedges_have_a_linear_barrier_and_a_low_tunnel():
    from landscape_widgets.analysis.connectivity import linear_path, tunnel

    dim, n = 10, 2
    m1 = WedgeModel(dim, n, wedge_optimum(dim, n, axes=[0, 1], seed=0))
    m2 = WedgeModel(dim, n, wedge_optimum(dim, n, axes=[2, 3], seed=1))
    lin = linear_path(m1, m2, wedge_objective, WEDGE_DATA, num=11)
    # the midpoint has 4 non-zero coordinates: its loss is the norm of the 2 smallest
    mid = (m1.point + m2.point).detach()[0] / 2
    assert float(lin["loss"].sel(alpha=0.5)) == pytest.approx(float(wedge_loss(mid, n)), rel=1e-5)
    assert lin.attrs["barrier"] > 0.5
    tun = tunnel(m1, m2, wedge_objective, WEDGE_DATA, n_points=5, steps=100, lr=0.02, momentum=0.0)
    assert tun.attrs["barrier"] < 0.5 * lin.attrs["barrier"]
    # the two-segment path through the origin, where all wedges meet, has zero loss
    for a, b in [(m1.point, torch.zeros_like(m1.point)), (torch.zeros_like(m2.point), m2.point)]:
        t = torch.linspace(0, 1, 7)[:, None]
        assert float(wedge_loss(((1 - t) * a + t * b).detach(), n).max()) == 0.0
