"""m-tunnels (a trained triangle through three optima) and short-direction counts."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape_widgets.analysis.short_directions import short_directions
from landscape_widgets.analysis.simplex import lattice_edges, simplex_lattice, simplex_plane, simplex_tunnel
from landscape_widgets.builtin.training import TrainConfig, trained
from landscape_widgets.core.params import flatten_params


def test_lattice_and_edges():
    lattice = simplex_lattice(2, 4)
    assert lattice.shape == (15, 3)
    np.testing.assert_allclose(lattice.sum(1), 1.0)
    edges = lattice_edges(lattice, 4)
    assert len(edges) == 30  # 3 * (1 + 2 + 3 + 4)
    for i, j in edges:
        assert np.abs(lattice[i] - lattice[j]).sum() == pytest.approx(2 / 4)
    assert simplex_lattice(1, 3).shape == (4, 2)
    with pytest.raises(ValueError, match="subdivisions >= 1"):
        simplex_lattice(2, 0)


def optima(seeds):
    results = [trained("mlp", "digits", TrainConfig(seed=s)) for s in seeds]
    return [r.model for r, _ in results], results[0][1]


@pytest.mark.parametrize("seeds", [(0, 1, 2), (1, 2, 3), (0, 2, 3)])
def test_trained_triangle_stays_below_the_largest_linear_barrier(seeds):
    models, dataset = optima(seeds)
    tun = simplex_tunnel(models, F.cross_entropy, dataset.train, subdivisions=2, steps=100, seed=seeds[0])
    assert tun.attrs["m"] == 2 and len(tun.attrs["linear_barriers"]) == 3
    assert tun.attrs["max_loss"] < max(tun.attrs["linear_barriers"])
    # the optima stay, and every trained point kept its place on the simplex
    flats = torch.stack([flatten_params(m) for m in models]).double()
    points = torch.as_tensor(tun["points"].values).double()
    bary = torch.as_tensor(tun["barycentric"].values[: len(points)])
    span, _ = torch.linalg.qr((flats[1:] - flats[0]).T)
    placed = (points - flats[0]) @ span
    np.testing.assert_allclose(placed.numpy(), ((bary @ flats - flats[0]) @ span).numpy(), atol=1e-4)
    moved = (points - bary @ flats).norm(dim=1)
    vertex = bary.max(dim=1).values == 1
    assert float(moved[vertex].max()) == 0.0 and float(moved[~vertex].min()) > 1e-3


def test_simplex_plane_places_the_triangle():
    models, dataset = optima((0, 1, 2))
    tun = simplex_tunnel(models, F.cross_entropy, dataset.train, subdivisions=1, steps=1)
    ds = simplex_plane(models, tun, F.cross_entropy, dataset.train, num=5)
    np.testing.assert_allclose(ds["vertex_alpha"].values[:2], [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(ds["vertex_beta"].values[:2], [0.0, 0.0], atol=1e-6)
    assert ds["vertex_beta"].values[2] > 0
    xy = tun["barycentric"].values @ np.stack([ds["vertex_alpha"], ds["vertex_beta"]], 1)
    np.testing.assert_allclose(ds["tunnel_alpha"].values, xy[:, 0], atol=1e-6)
    with pytest.raises(ValueError, match="three models"):
        simplex_plane(models[:2], tun, F.cross_entropy, dataset.train)


def known_spectrum():
    """A quadratic mean((x w - y)^2) in 6 parameters: H = 2 x^T x / N everywhere."""
    torch.manual_seed(0)
    model = nn.Linear(6, 1, bias=False).double()
    x = torch.randn(60, 6, dtype=torch.float64) * torch.tensor([3.0, 2.0, 1.5, 0.5, 0.3, 0.1], dtype=torch.float64)
    y = torch.randn(60, 1, dtype=torch.float64)
    return model, (x, y), torch.linalg.eigvalsh(2 * x.T @ x / len(x)).numpy()


@pytest.mark.parametrize("between", [0, 2, 4])
def test_short_direction_count_equals_eigenvalues_above_the_threshold(between):
    model, data, ev = known_spectrum()
    top = ev[::-1]
    threshold = float(np.sqrt(top[between] * top[between + 1]))
    w = flatten_params(model).double()
    points = [w, w + 1.0, w - 2.0]  # a quadratic: the same Hessian at every point
    ds = short_directions(model, F.mse_loss, data, points, threshold, t=[0, 0.5, 1], steps=6, device="cpu")
    assert ds["count"].values.tolist() == [between + 1] * 3
    np.testing.assert_allclose(ds["lambda_max"].values, top[0], rtol=1e-8)
    assert ds["t"].values.tolist() == [0, 0.5, 1]
    # fewer steps than parameters: never more than the true count (interlacing)
    few = short_directions(model, F.mse_loss, data, points[:1], threshold, steps=3, device="cpu")
    assert int(few["count"][0]) <= between + 1


def test_short_directions_refuses_bad_input():
    model, data, _ = known_spectrum()
    with pytest.raises(ValueError, match="threshold must be positive"):
        short_directions(model, F.mse_loss, data, [flatten_params(model)], 0.0)
    with pytest.raises(ValueError, match="give the points"):
        short_directions(model, F.mse_loss, data, [], 1.0)
