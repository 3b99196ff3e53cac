"""Trust statistics on a quadratic, against closed forms."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from landscape_widgets.analysis.comparison import radius_to_loss
from landscape_widgets.analysis.trust import bootstrap_spread, check_range, normalization_spread, seed_spread
from landscape_widgets.core.directions import random_directions
from landscape_widgets.core.grids import plane
from landscape_widgets.core.landscape import compute_landscape


def quadratic(at_minimum=False):
    """mean((x w - y)^2): exactly L(w + v) = L(w) + g.v + v.H v / 2, H = 2 x^T x / N."""
    torch.manual_seed(0)
    model = nn.Linear(4, 1, bias=False).double()
    x = torch.randn(100, 4, dtype=torch.float64) * torch.tensor([1.0, 2.0, 0.5, 1.5], dtype=torch.float64)
    y = x @ torch.tensor([[0.5], [-1.0], [2.0], [0.1]], dtype=torch.float64) + torch.randn(100, 1, dtype=torch.float64)
    if at_minimum:
        with torch.no_grad():
            model.weight.copy_(torch.linalg.lstsq(x, y).solution.T)
    w = model.weight.detach()[0]
    h = 2 * x.T @ x / len(x)
    g = 2 * x.T @ (x @ w[:, None] - y)[:, 0] / len(x)
    base = float(F.mse_loss(x @ w[:, None], y))
    return model, (x, y), base, g, h


def exact_plane(grid, d1, d2, base, g, h):
    a, b = (torch.as_tensor(c, dtype=torch.float64) for c in np.meshgrid(*[ax.values for ax in grid.axes], indexing="ij"))
    v = a[..., None] * d1 + b[..., None] * d2
    return (base + v @ g + 0.5 * torch.einsum("...i,ij,...j->...", v, h, v)).numpy()


def test_seed_spread_is_the_spread_of_the_exact_planes():
    model, data, base, g, h = quadratic()
    grid = plane(num=5)
    ds = seed_spread(model, F.mse_loss, data, grid, seeds=range(5), normalization="filter", device="cpu")
    exact = np.stack([exact_plane(grid, *random_directions(model, 2, seed=s, normalization="filter"), base, g, h)
                      for s in range(5)])
    np.testing.assert_allclose(ds["loss"].values, exact, rtol=1e-10)
    np.testing.assert_allclose(ds["loss_mean"].values, exact.mean(0), rtol=1e-10)
    np.testing.assert_allclose(ds["loss_sd"].values, exact.std(0, ddof=1), rtol=1e-8)
    assert ds.attrs["mean_sd"] == pytest.approx(exact.std(0, ddof=1).mean())
    with pytest.raises(ValueError, match="at least two seeds"):
        seed_spread(model, F.mse_loss, data, grid, seeds=[0])


def test_bootstrap_error_matches_the_closed_form_for_equal_batches():
    model, (x, y), *_ = quadratic()
    loader = DataLoader(TensorDataset(x, y), batch_size=5)  # 20 equal batches
    grid = plane(num=3)
    ds = bootstrap_spread(model, F.mse_loss, loader, grid, resamples=8000, seed=1, device="cpu")
    dirs = random_directions(model, 2, seed=0)
    for i, a in enumerate(grid.axes[0].values):
        for j, b in enumerate(grid.axes[1].values):
            w = model.weight.detach()[0] + a * dirs[0] + b * dirs[1]
            batch_means = ((x @ w - y[:, 0]) ** 2).reshape(20, 5).mean(1).numpy()
            se = batch_means.std(ddof=0) / math.sqrt(20)  # the bootstrap's own standard error
            assert ds["loss"].values[i, j] == pytest.approx(batch_means.mean(), rel=1e-10)
            assert ds["loss_se"].values[i, j] == pytest.approx(se, rel=0.05)
            assert ds["loss_lo"].values[i, j] < batch_means.mean() < ds["loss_hi"].values[i, j]
    with pytest.raises(ValueError, match="at least 10"):
        bootstrap_spread(model, F.mse_loss, (x, y), grid)


def test_check_range_finds_where_the_loss_doubles():
    model, data, base, g, h = quadratic(at_minimum=True)
    dirs = random_directions(model, 2, seed=0, normalization="none")
    # at the minimum L(a d) = L* + a^2 d.H d / 2 reaches 2 L* at a = sqrt(2 L* / d.H d)
    exact = min(math.sqrt(2 * base / float(d @ h @ d)) for d in dirs)
    ok = check_range(model, F.mse_loss, data, plane((-2 * exact, 2 * exact), num=3), dirs, device="cpu")
    assert ok["radius"] == pytest.approx(exact, rel=1e-3)
    assert ok["verdict"] == "ok" and ok["threshold"] == pytest.approx(2 * base)
    with pytest.warns(UserWarning, match=r"far too large.*try a range of ±"):
        big = check_range(model, F.mse_loss, data, plane((-100 * exact, 100 * exact), num=3), dirs, device="cpu")
    assert big["verdict"] == "too large"
    assert big["suggested"] in {m * 10.0**e for e in range(-3, 4) for m in (1, 2, 5)}
    assert 1.2 * exact < big["suggested"] < 5 * exact
    with pytest.warns(UserWarning, match="far too small"):
        small = check_range(model, F.mse_loss, data, plane((-exact / 10, exact / 10), num=3), dirs, device="cpu")
    assert small["verdict"] == "too small"


def test_normalization_spread_agrees_with_single_landscapes():
    model, data, *_ = quadratic()
    grid = plane(num=5)
    ds = normalization_spread(model, F.mse_loss, data, grid, seed=3, device="cpu")
    for n in ("none", "layer", "filter"):
        single = compute_landscape(model, F.mse_loss, data, grid, seed=3, normalization=n, device="cpu")
        np.testing.assert_allclose(ds["loss"].sel(normalization=n).values, single["loss"].values, rtol=1e-12)
        assert ds["radius"].sel(normalization=n).item() == radius_to_loss(single)
