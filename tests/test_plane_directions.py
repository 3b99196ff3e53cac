"""Plane directions by kind: random, Hessian, trajectory PCA, two models."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape_widgets.analysis.curvature import explicit_hessian
from landscape_widgets.analysis.plane_directions import plane_directions
from landscape_widgets.analysis.trajectory import project
from landscape_widgets.core.directions import random_directions
from landscape_widgets.core.objective import Objective
from landscape_widgets.core.params import flatten_params


def problem():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x, y = torch.randn(30, 3, dtype=torch.float64), torch.randint(0, 2, (30,))
    return model, Objective(model, F.cross_entropy, (x, y), device="cpu")


def test_random_kind_is_random_directions():
    model, ob = problem()
    dirs, how = plane_directions(ob, "random", 2, seed=4, normalization="layer")
    for d, e in zip(dirs, random_directions(model, 2, seed=4, normalization="layer")):
        torch.testing.assert_close(d, e)
    assert how["directions"] == "random" and how["normalization"] == "layer"


def test_hessian_kind_gives_the_top_eigenvectors():
    model, ob = problem()
    dirs, how = plane_directions(ob, "hessian", 2)
    h = explicit_hessian(ob)
    top = torch.linalg.eigvalsh(h).flip(0)[:2]
    for d, lam in zip(dirs, top):
        assert float(d.norm()) == pytest.approx(1.0)
        assert float(d @ h @ d) == pytest.approx(float(lam), rel=1e-3)
    assert how["directions"] == "hessian"


def test_trajectory_kind_reaches_the_farthest_checkpoint_at_one():
    model, ob = problem()
    final = flatten_params(model)
    gen = torch.Generator().manual_seed(1)
    path = [final + torch.randn(final.numel(), generator=gen, dtype=torch.float64) * s for s in (3.0, 2.0, 1.0)]
    path.append(final)
    dirs, how = plane_directions(ob, "trajectory", 2, trajectory=path)
    unit = [d / d.norm() for d in dirs]
    coords = project(torch.stack(path), final, unit)
    # along each axis the farthest checkpoint is at coordinate +-1 in the plane's units
    np.testing.assert_allclose(np.abs(coords).max(axis=0), [float(d.norm()) for d in dirs], rtol=1e-6)
    assert len(how["explained_variance"]) == 2
    with pytest.raises(ValueError, match="two directions"):
        plane_directions(ob, "trajectory", 3, trajectory=path)
    with pytest.raises(ValueError, match="pass trajectory"):
        plane_directions(ob, "trajectory", 2)
    sub = Objective(model, F.cross_entropy, ob.data, params="0.*", device="cpu")
    with pytest.raises(ValueError, match="params='all'"):
        plane_directions(sub, "trajectory", 2, trajectory=path)


def test_two_models_kind_points_at_the_second_model():
    model, ob = problem()
    torch.manual_seed(9)
    other = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    dirs, how = plane_directions(ob, "two models", 3, seed=2, model2=other)
    torch.testing.assert_close(ob.theta + dirs[0], flatten_params(other))
    for i in range(3):
        for j in range(i):
            assert abs(float(dirs[i] @ dirs[j])) < 1e-9 * float(dirs[i].norm() * dirs[j].norm())
    assert how["directions"] == "two models"
    with pytest.raises(ValueError, match="model2"):
        plane_directions(ob, "two models", 2)
    with pytest.raises(ValueError, match="kind must be one of"):
        plane_directions(ob, "sideways", 2)


def test_axes_kind_shows_the_wedge_models_flat_valley():
    """Coordinate axes through a wedge optimum: along its long axis (short coordinate 0)
    the loss is exactly 0; off it, the distance to the wedge, |short coordinate|."""
    from landscape_widgets.builtin.wedge import WEDGE_DATA, wedge_model, wedge_objective
    from landscape_widgets.core.grids import plane
    from landscape_widgets.core.landscape import compute_landscape

    model = wedge_model(20, 4, seed=0)
    ob = Objective(model, wedge_objective, WEDGE_DATA, accuracy=False)
    dirs, how = plane_directions(ob, "axes", 2)
    point = ob.theta
    assert how["axes"] == [int(point.abs().argmax()), int(point.abs().argmin())]
    assert all(float(d.norm()) == 1.0 and int(d.count_nonzero()) == 1 for d in dirs)
    grid = plane((-0.5, 0.5), num=11)
    ds = compute_landscape(model, wedge_objective, WEDGE_DATA, grid, directions=dirs)
    loss = ds["loss"].values
    np.testing.assert_allclose(loss[:, 5], 0.0, atol=1e-6)  # beta = 0: on the wedge
    np.testing.assert_allclose(loss[5, :], np.abs(ds["beta"].values), atol=1e-6)
    with pytest.raises(ValueError, match="different parameter indices"):
        plane_directions(ob, "axes", 2, axes=[3, 3])
