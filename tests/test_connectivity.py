"""Mode connectivity: linear barrier, trained Bezier curve, F&J tunnel, the curve plane."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape_widgets.analysis.connectivity import (
    bezier_coefficients,
    connectivity_plane,
    curve_path,
    curve_plane,
    linear_path,
    loss_barrier,
    recompute_bn_stats_,
    train_bezier,
    tunnel,
)
from landscape_widgets.core.params import flatten_params, load_flat_params_
from landscape_widgets.builtin.training import TrainConfig, mean_loss, trained


@pytest.fixture(scope="module")
def two_solutions():
    """Two digits MLPs trained independently (different seeds, so different inits)."""
    (r0, data), (r1, _) = trained("mlp", "digits", TrainConfig(seed=0)), trained("mlp", "digits", TrainConfig(seed=1))
    return r0.model, r1.model, data


def test_linear_path_ends_at_the_two_models(two_solutions):
    m0, m1, data = two_solutions
    lin = linear_path(m0, m1, F.cross_entropy, data.train, num=5)
    assert float(lin["loss"][0]) == pytest.approx(mean_loss(m0, data.train), rel=1e-5)
    assert float(lin["loss"][-1]) == pytest.approx(mean_loss(m1, data.train), rel=1e-5)
    assert lin.attrs["barrier"] > 0.1  # independently trained MLPs: a clear barrier


def test_trained_bezier_curve_is_lower_than_the_linear_barrier(two_solutions):
    m0, m1, data = two_solutions
    lin = linear_path(m0, m1, F.cross_entropy, data.train, num=11)
    losses = []
    bend = train_bezier(m0, m1, F.cross_entropy, data.train, steps=150, on_step=lambda i, n, l: losses.append(l))
    assert len(losses) == 150
    curve = curve_path(m0, m1, bend, F.cross_entropy, data.train, num=11)
    assert float(curve["loss"][0]) == pytest.approx(float(lin["loss"][0]), rel=1e-5)
    assert float(curve["loss"][-1]) == pytest.approx(float(lin["loss"][-1]), rel=1e-5)
    assert float(curve["loss"].max()) < 0.5 * float(lin["loss"].max())
    assert curve.attrs["barrier"] < lin.attrs["barrier"]


def test_tunnel_points_stay_on_their_hyperplanes(two_solutions):
    m0, m1, data = two_solutions
    ds = tunnel(m0, m1, F.cross_entropy, data.train, n_points=2, steps=40, num_per_segment=3)
    w1, w2 = flatten_params(m0).double(), flatten_params(m1).double()
    seg = w2 - w1
    pts = torch.as_tensor(ds["points"].values).double()
    fractions = ((pts - w1) @ seg / (seg @ seg)).numpy()
    np.testing.assert_allclose(fractions, [0, 1 / 3, 2 / 3, 1], atol=1e-4)
    lin = linear_path(m0, m1, F.cross_entropy, data.train, num=7)
    assert float(ds["loss"].max()) < float(lin["loss"].max())
    np.testing.assert_allclose(ds["alpha"].values, np.linspace(0, 1, 7))


def test_curve_plane_places_the_points():
    gen = torch.Generator().manual_seed(0)
    w1, w2, bend = (torch.randn(10, generator=gen) for _ in range(3))
    u, v = curve_plane(w1, w2, bend)
    assert float(u @ v) == pytest.approx(0.0, abs=1e-6)
    assert float(u.norm()) == pytest.approx(1.0) and float(v.norm()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="bend lies on the line"):
        curve_plane(w1, w2, (w1 + w2) / 2)


def test_connectivity_plane_projects_both_paths():
    torch.manual_seed(0)
    m0, m1 = nn.Linear(3, 2), nn.Linear(3, 2)
    x, y = torch.randn(20, 3), torch.randint(0, 2, (20,))
    w1, w2 = flatten_params(m0), flatten_params(m1)
    bend = (w1 + w2) / 2 + 0.3 * torch.randn(w1.shape)
    ds = connectivity_plane(m0, m1, bend, F.cross_entropy, (x, y), num=5, device="cpu")
    assert ds["curve_alpha"].values[[0, -1]] == pytest.approx([0, 1], abs=1e-6)
    assert ds["curve_beta"].values[[0, -1]] == pytest.approx([0, 0], abs=1e-6)
    # the curve's midpoint is (w1 + 2 bend + w2) / 4: its beta is half the bend's
    mid = len(ds["t"]) // 2
    assert float(ds["curve_beta"][mid]) == pytest.approx(0.5 * ds.attrs["bend_beta"], rel=1e-5)
    # a grid value is the loss at w1 + scale * (alpha u + beta v)
    u, v = curve_plane(w1, w2, bend)
    a, b = float(ds["alpha"][3]), float(ds["beta"][1])
    point = w1 + ds.attrs["scale"] * (a * u + b * v)
    m = nn.Linear(3, 2)
    load_flat_params_(m, point)
    with torch.no_grad():
        expected = float(F.cross_entropy(m(x), y))
    assert float(ds["loss"][3, 1]) == pytest.approx(expected, rel=1e-5)
    assert ds.attrs["scale"] == pytest.approx(float((w2 - w1).norm()))


def test_bezier_coefficients_give_the_endpoints():
    np.testing.assert_allclose(bezier_coefficients([0.0, 0.5, 1.0]), [[0, 0], [0.5, 0.25], [0, 1]])


def test_loss_barrier_is_height_above_the_chord():
    assert loss_barrier(np.array([1.0, 3.0, 2.0])) == pytest.approx(1.5)
    assert loss_barrier(np.array([1.0, 0.5, 2.0])) == 0.0


def test_recompute_bn_stats_matches_the_data():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    x = torch.randn(50, 3) * 3 + 1
    recompute_bn_stats_(model, (x, torch.zeros(50)))
    h = model[0](x).detach()
    np.testing.assert_allclose(model[1].running_mean, h.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model[1].running_var, h.var(0), rtol=1e-4)
    assert not model.training


def test_connectivity_view_draws_the_dashed_line_the_curve_and_the_three_points():
    from landscape_widgets.widgets.connectivity import KEY, connectivity_view

    torch.manual_seed(0)
    m0, m1 = nn.Linear(3, 2), nn.Linear(3, 2)
    w1, w2 = flatten_params(m0), flatten_params(m1)
    bend = (w1 + w2) / 2 + 0.3 * torch.randn(w1.shape)
    ds = connectivity_plane(m0, m1, bend, F.cross_entropy, (torch.randn(20, 3), torch.randint(0, 2, (20,))),
                            num=5, device="cpu")
    box = connectivity_view(ds)
    figure = box.children[0]
    line, curve = figure.marks[-4:-2]
    assert line.colors == ["white"] and line.line_style == "dashed" and "white, dashed" in KEY
    assert curve.colors == ["red"] and curve.line_style == "solid"
    np.testing.assert_allclose(line.x, ds["linear_alpha"].values)
    np.testing.assert_allclose(curve.x, ds["curve_alpha"].values)
    # w1, w2 and the bend as dots under their labels; no red cross over w1 (the red is the curve's)
    dots, labels = figure.marks[-2:]
    assert list(dots.x) == list(labels.x) == [0.0, 1.0, ds.attrs["bend_alpha"]] and dots.colors == ["white"]
    assert list(labels.text) == ["w1", "w2", "bend"]
    assert not any(m.visible for m in figure.marks if getattr(m, "marker", None) == "cross")
