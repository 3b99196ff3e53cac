"""Sharpness measures against exact values on quadratic bowls."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape_widgets.directions import random_directions
from landscape_widgets.sharpness import sharpness, tunnel_widths
from landscape_widgets.wedge import WEDGE_DATA, wedge_model, wedge_objective


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
