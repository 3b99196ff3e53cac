"""PAL's parabola, local entropy and the smoothed loss against closed forms on a quadratic."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape_widgets.analysis.line_search import pal_line
from landscape_widgets.analysis.smoothing import local_entropy, local_entropy_map
from landscape_widgets.core.grids import plane


def quadratic():
    """mean((x w - y)^2) = L* + 1/2 (w - w*)^T H (w - w*), H = 2 x^T x / N."""
    torch.manual_seed(0)
    model = nn.Linear(4, 1, bias=False).double()
    x = torch.randn(40, 4, dtype=torch.float64) * torch.tensor([1.0, 2.0, 0.5, 1.5], dtype=torch.float64)
    y = torch.randn(40, 1, dtype=torch.float64)
    h = 2 * x.T @ x / len(x)
    w_star = torch.linalg.lstsq(x, y).solution[:, 0]
    l_star = float(F.mse_loss(x @ w_star[:, None], y))
    return model, (x, y), h, w_star, l_star


def test_pal_on_a_quadratic_proposes_the_exact_line_minimum():
    model, data, h, w_star, l_star = quadratic()
    w = model.weight.detach()[0]
    g = h @ (w - w_star)
    u = -g / g.norm()
    curvature = float(u @ h @ u)
    ds = pal_line(model, F.mse_loss, data, mu=0.05, num=21, device="cpu")
    assert ds.attrs["b"] == pytest.approx(-float(g.norm()), rel=1e-10)
    assert ds.attrs["a"] == pytest.approx(curvature / 2, rel=1e-8)
    s_star = float(g.norm()) / curvature
    assert ds.attrs["s_star"] == pytest.approx(s_star, rel=1e-8)
    assert ds.attrs["s_min"] == pytest.approx(s_star, rel=1e-3)  # the true minimum, found numerically
    np.testing.assert_allclose(ds["parabola"].values, ds["loss"].values, rtol=1e-9, atol=1e-12)
    assert ds.attrs["loss_min"] <= ds["loss"].values.min() + 1e-12
    assert ds.attrs["loss_at_s_star"] == pytest.approx(ds.attrs["loss_min"], rel=1e-9)


def test_pal_proposes_no_step_on_a_concave_line():
    model, data, *_ = quadratic()
    ds = pal_line(model, lambda out, y: -F.mse_loss(out, y), data, mu=0.1, num=5, device="cpu")
    assert ds.attrs["a"] < 0 and np.isnan(ds.attrs["s_star"])


def closed_form(h, mu, sigma, l_star):
    """log E exp(-L(theta + eps)) and E L(theta + eps) for eps ~ N(0, sigma^2 I)."""
    m = torch.eye(len(h), dtype=h.dtype) + sigma**2 * h
    entropy = -l_star - 0.5 * torch.logdet(m) - 0.5 * mu @ h @ torch.linalg.solve(m, mu)
    smoothed = l_star + 0.5 * mu @ h @ mu + 0.5 * sigma**2 * torch.trace(h)
    return float(entropy), float(smoothed)


@pytest.mark.parametrize("gamma", [4.0, 1.0])
def test_local_entropy_and_smoothed_loss_match_their_closed_forms(gamma):
    model, data, h, w_star, l_star = quadratic()
    mu = model.weight.detach()[0] - w_star
    entropy, smoothed = closed_form(h, mu, 1 / np.sqrt(gamma), l_star)
    got = local_entropy(model, F.mse_loss, data, gamma=gamma, samples=3000, seed=2, device="cpu")
    assert got["sigma"] == pytest.approx(1 / np.sqrt(gamma))
    assert abs(got["local_entropy"] - entropy) < 4 * got["local_entropy_stderr"]
    assert abs(got["smoothed_loss"] - smoothed) < 4 * got["smoothed_loss_stderr"]
    assert got["local_entropy_stderr"] < 0.05 * abs(entropy)
    # a wide scope (small gamma) averages higher losses: lower entropy than a narrow one
    narrow = local_entropy(model, F.mse_loss, data, gamma=1e6, samples=50, device="cpu")
    with torch.no_grad():
        assert narrow["local_entropy"] == pytest.approx(-float(F.mse_loss(model(data[0]), data[1])), rel=1e-3)
    assert got["local_entropy"] < narrow["local_entropy"]


def test_local_entropy_map_uses_the_same_draws_at_every_point():
    model, data, h, w_star, l_star = quadratic()
    ds = local_entropy_map(model, F.mse_loss, data, plane((-0.5, 0.5), (-0.5, 0.5), num=3), gamma=4.0, samples=400,
                           normalization="none", device="cpu")
    assert set(ds.data_vars) >= {"loss", "local_entropy", "smoothed_loss", "local_entropy_stderr"}
    assert bool(ds["done"].all())
    # smoothed - plain = sigma^2 tr(H) / 2 exactly in expectation; with common draws the
    # difference is the same estimate at every point up to the linear term's noise
    diff = (ds["smoothed_loss"] - ds["loss"]).values
    assert np.allclose(diff, 0.5 * 0.25 * float(torch.trace(h)), rtol=0.15)
    with torch.no_grad():
        centre = float(F.mse_loss(model(data[0]), data[1]))
    assert ds["loss"].sel(alpha=0.0, beta=0.0).item() == pytest.approx(centre)


def test_bad_settings_are_refused():
    model, data, *_ = quadratic()
    with pytest.raises(ValueError, match="gamma must be positive"):
        local_entropy(model, F.mse_loss, data, gamma=0)
    with pytest.raises(ValueError, match="at least 2 samples"):
        local_entropy(model, F.mse_loss, data, samples=1)
    with pytest.raises(ValueError, match="mu > 0"):
        pal_line(model, F.mse_loss, data, mu=0)


class CurvedLinear(nn.Module):
    """``x @ (w0 + k (w - w0))``: at ``w = w0`` the same outputs for every ``k``, with
    ``k^2`` times the curvature."""

    def __init__(self, w0: torch.Tensor, k: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(w0.clone()[None])  # [1, n]: a 2-D weight, as filter normalization needs
        self.register_buffer("w0", w0.clone()[None])
        self.register_buffer("k", torch.tensor(k, dtype=w0.dtype))

    def forward(self, x):
        return x @ (self.w0 + self.k * (self.weight - self.w0)).T


class ScaledLinear(nn.Module):
    """``k * (x @ w)``: the same function at ``w / k``, a rescaled parametrization."""

    def __init__(self, w: torch.Tensor, k: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(w.clone()[None] / k)
        self.register_buffer("k", torch.tensor(k, dtype=w.dtype))

    def forward(self, x):
        return self.k * (x @ self.weight.T)


def test_flatness_table_ranks_a_sharper_minimum_below_a_flatter_one():
    from landscape_widgets.analysis.sharpness import sharpness
    from landscape_widgets.analysis.smoothing import flatness_table

    _, data, h, w_star, l_star = quadratic()
    models = {"flat": CurvedLinear(w_star, 1.0), "sharp": CurvedLinear(w_star, 3.0),
              "flat, rescaled": ScaledLinear(w_star, 3.0)}
    table = flatness_table(models, F.mse_loss, data, gamma=4.0, samples=400, radius=0.3, device="cpu")
    np.testing.assert_allclose(table["loss"].values, l_star, rtol=1e-9)
    flat, sharp, rescaled = (table.sel(model=m) for m in models)
    assert float(sharp["sharpness"]) == pytest.approx(9 * float(flat["sharpness"]), rel=1e-6)  # k^2
    assert float(sharp["local_entropy"]) < float(flat["local_entropy"])
    # filter normalization makes sharpness blind to the rescaling; raw-noise local entropy is not
    assert float(rescaled["sharpness"]) == pytest.approx(float(flat["sharpness"]), rel=1e-9)
    assert float(rescaled["local_entropy"]) < float(flat["local_entropy"])
    # each column is the function's own value
    assert float(flat["local_entropy"]) == pytest.approx(
        local_entropy(models["flat"], F.mse_loss, data, gamma=4.0, samples=400, device="cpu")["local_entropy"])
    assert float(flat["sharpness"]) == pytest.approx(
        sharpness(models["flat"], F.mse_loss, data, radius=0.3, device="cpu").attrs["mean_increase"])
