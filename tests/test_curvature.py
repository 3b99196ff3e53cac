"""Hessian tools: Lanczos vs the explicit Hessian, Hutchinson vs the exact trace, the
convexity map on a quadratic."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape_widgets.core.grids import plane
from landscape_widgets.core.objective import Objective
from landscape_widgets.analysis.curvature import (
    convexity_map,
    explicit_hessian,
    hessian_eigenvalues,
    hutchinson_trace,
    lanczos,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one thread avoids OpenMP contention when the cores are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_problem(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x = torch.randn(40, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (40,))
    return model, (x, y)


def test_lanczos_matches_eigvalsh_of_explicit_hessian():
    model, data = tiny_problem()
    f = Objective(model, F.cross_entropy, data, device="cpu")
    h = explicit_hessian(f)
    assert torch.allclose(h, h.T, atol=1e-10)
    exact = torch.linalg.eigvalsh(h).numpy()
    steps = []
    ev = hessian_eigenvalues(model, F.cross_entropy, data, k=3, steps=40, device="cpu",
                             on_step=lambda i, n: steps.append(i))
    assert steps[-1] <= 40 and steps == list(range(1, len(steps) + 1))
    scale = np.abs(exact).max()
    np.testing.assert_allclose(ev["top"], exact[::-1][:3], rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(ev["bottom"], exact[:3], rtol=1e-4, atol=1e-4 * scale)
    assert exact.min() < 0 < exact.max()  # a real non-convex test case


def test_lanczos_full_space_recovers_all_eigenvalues():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(12, 12))
    a = torch.tensor(a + a.T)
    ritz = lanczos(lambda v: a @ v, 12, steps=12)
    np.testing.assert_allclose(ritz, np.linalg.eigvalsh(a.numpy()), rtol=1e-8, atol=1e-8)


def test_hutchinson_trace_within_5_percent():
    model, data = tiny_problem()
    f = Objective(model, F.cross_entropy, data, device="cpu")
    exact = float(torch.trace(explicit_hessian(f)))
    est, err = hutchinson_trace(model, F.cross_entropy, data, samples=4000, seed=1, device="cpu")
    assert abs(est - exact) < 0.05 * abs(exact)
    assert 0 < err < 0.05 * abs(exact)


def quadratic_model():
    torch.manual_seed(0)
    model = nn.Linear(3, 1, bias=False).double()
    x = torch.randn(30, 3, dtype=torch.float64) * torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    y = torch.randn(30, 1, dtype=torch.float64)
    return model, (x, y), x


def test_convexity_map_is_constant_on_a_quadratic():
    model, data, x = quadratic_model()
    ds = convexity_map(model, F.mse_loss, data, grid=plane(num=3), steps=3, device="cpu")
    h = 2 * x.T @ x / len(x)  # Hessian of mean((x w - y)^2)
    ev = torch.linalg.eigvalsh(h).numpy()
    assert bool(ds["done"].all())
    np.testing.assert_allclose(ds["convexity"].values, abs(ev[0] / ev[-1]), rtol=1e-8)
    np.testing.assert_allclose(ds["lambda_max"].values, ev[-1], rtol=1e-8)
    assert ds["convexity"].dims == ("alpha", "beta")
    assert np.isfinite(ds["loss"].values).all()


def test_convexity_map_rejects_a_line():
    model, data, _ = quadratic_model()
    from landscape_widgets.core.grids import line

    with pytest.raises(ValueError, match="2-D grid"):
        convexity_map(model, F.mse_loss, data, grid=line(num=3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_eigenvalues_agree_on_cuda():
    model, data = tiny_problem()
    cpu = hessian_eigenvalues(model, F.cross_entropy, data, k=2, device="cpu")
    gpu = hessian_eigenvalues(model, F.cross_entropy, data, k=2, device="cuda")
    np.testing.assert_allclose(cpu["top"], gpu["top"], rtol=1e-6)


def test_convexity_panel_streams_into_a_heat_map():
    pytest.importorskip("bqplot")
    from landscape_widgets.widgets.convexity import LABEL, convexity_panel

    model, data, _ = quadratic_model()
    panel = convexity_panel(model, F.mse_loss, data, grid=plane(num=3), steps=3, device="cpu")
    assert panel.wait(60)
    assert panel.runner.error is None
    ds = panel.result
    assert bool(ds["done"].all())
    np.testing.assert_allclose(panel.view.contour.heatmap.color, ds["convexity"].values.T)
    assert panel.view.contour.color_axis.label == LABEL
    assert "9/9" in panel.view.widget.title
