"""Sharpness measures against exact values on quadratic bowls."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape_widgets.core.directions import random_directions
from landscape_widgets.analysis.sharpness import sharpness, tunnel_widths
from landscape_widgets.builtin.wedge import WEDGE_DATA, wedge_model, wedge_objective


def bowl():
    """loss(w) = |w|^2 for a bias-free Linear(4, 1) at w = 0: X = 2 I, y = 0."""
    model = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    return model, (2 * torch.eye(4), torch.zeros(4, 1))


def test_sharpness_is_the_quadratic_form():
    model, data = bowl()
    ds = sharpness(model, F.mse_loss, data, radius=0.3, n_directions=4, normalization="none",
                   bias_bn="random", device="cpu")
    dirs = random_directions(model, 4, normalization="none", bias_bn="random")
    expected = np.array([0.09 * float(d @ d) for d in dirs])
    np.testing.assert_allclose(ds["increase"].values, expected, rtol=1e-5)
    assert ds.attrs["base_loss"] == 0.0
    assert ds.attrs["mean_increase"] == pytest.approx(expected.mean(), rel=1e-5)


def test_sharpness_grows_with_radius_on_a_trained_net():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3))
    data = (torch.randn(60, 5), torch.randint(0, 3, (60,)))
    small = sharpness(model, F.cross_entropy, data, radius=0.05, n_directions=3, device="cpu")
    large = sharpness(model, F.cross_entropy, data, radius=0.5, n_directions=3, device="cpu")
    assert abs(small.attrs["mean_increase"]) < abs(large.attrs["mean_increase"])


def test_tunnel_width_of_a_bowl_is_sqrt_threshold():
    model, data = bowl()
    ds = tunnel_widths(model, F.mse_loss, data, threshold=0.25, n_directions=5, max_radius=2.0,
                       tol=1e-5, device="cpu")
    np.testing.assert_allclose(ds["width"].values, 0.5, atol=2e-5)
    assert ds.attrs["median_width"] == pytest.approx(0.5, abs=2e-5)


def test_tunnel_width_is_infinite_along_a_flat_wedge():
    # at the origin of a wedge model with n = D - 1 long directions, moving along a
    # coordinate axis keeps the loss 0; a random direction leaves the wedges linearly
    model = wedge_model(3, 2, seed=0, scale=0.0)
    ds = tunnel_widths(model, wedge_objective, WEDGE_DATA, threshold=0.1, n_directions=3,
                       max_radius=1.0, device="cpu")
    d = [x / x.norm() for x in random_directions(model, 3, normalization="none", bias_bn="random")]
    # loss along d is r * min|d_i|, so the width is threshold / min|d_i| (or inf if > max_radius)
    expected = [0.1 / float(x.abs().min()) for x in d]
    expected = [w if w <= 1.0 else np.inf for w in expected]
    np.testing.assert_allclose(ds["width"].values, expected, rtol=2e-3)


def test_threshold_below_base_loss_is_an_error():
    model, (x, y) = bowl()
    with torch.no_grad():
        model.weight.fill_(1.0)
    with pytest.raises(ValueError, match="already above the threshold"):
        tunnel_widths(model, F.mse_loss, (x, y), threshold=0.1, device="cpu")


def _perturbed_loss(model, loss_fn, data, point):
    from landscape_widgets.core.params import model_at

    with torch.no_grad():
        return float(loss_fn(model_at(model, point).eval()(data[0]), data[1]))


@pytest.mark.parametrize("fan_in", [4, 64], ids=["below-cache-threshold", "cached-input-layer"])
def test_every_direction_gets_its_own_values_whatever_the_input_layer(fan_in):
    """Regression: with the input-layer cache active (fan-in >= 32, like the demo MLP),
    sharpness used to re-aim one evaluator whose cache still held the first direction."""
    from landscape_widgets.core.params import flatten_params

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(fan_in, 32), nn.ReLU(), nn.Linear(32, 10))
    data = (torch.randn(200, fan_in), torch.randint(0, 10, (200,)))
    ds = sharpness(model, F.cross_entropy, data, radius=0.5, n_directions=3, seed=0)
    theta = flatten_params(model)
    base = _perturbed_loss(model, F.cross_entropy, data, theta)
    dirs = random_directions(model, 3, seed=0)
    expected = [_perturbed_loss(model, F.cross_entropy, data, theta + 0.5 * d) - base for d in dirs]
    np.testing.assert_allclose(ds["increase"].values, expected, rtol=1e-4, atol=1e-6)
    assert len(set(np.round(ds["increase"].values, 6))) == 3


def test_tunnel_widths_with_the_cached_input_layer_match_a_fresh_evaluator_per_direction():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    data = (torch.randn(100, 64), torch.randint(0, 10, (100,)))
    ds = tunnel_widths(model, F.cross_entropy, data, n_directions=3, max_radius=40.0, seed=1)
    from landscape_widgets.core.evaluation import PointEvaluator

    for i, d in enumerate(random_directions(model, 3, seed=1, normalization="none", bias_bn="random")):
        ev = PointEvaluator(model, F.cross_entropy, data, [d / d.norm()], cache_input_layer=False)
        w = ds["width"].values[i]
        assert np.isfinite(w)
        below, above = ev.evaluate([[w * 0.99]]).loss[0], ev.evaluate([[w * 1.01]]).loss[0]
        assert below <= ds.attrs["threshold"] <= above
