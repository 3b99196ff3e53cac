"""Hessian tools: Lanczos vs the explicit Hessian, Hutchinson vs the exact trace, the
convexity map on a quadratic and, fast path against eigvalsh and the plain path, on small
non-convex models (one with BatchNorm and a residual block), and the Hessian directions."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape_widgets.core.grids import plane
from landscape_widgets.core.landscape import compute_landscape
from landscape_widgets.core.objective import Objective
from landscape_widgets.core.results import empty_landscape
from landscape_widgets.analysis.curvature import (
    CONVEX_THRESHOLD,
    batched_hvp_operator,
    batched_lanczos_ritz,
    convexity_map,
    explicit_hessian,
    hessian_directions,
    hessian_eigenvalues,
    hutchinson_trace,
    hvp_operator,
    lanczos,
    lanczos_ritz,
    slice_convex_fraction,
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
    # one fixed linear scale for every map (the quadratic's ratio is far inside it), white at
    # the stated threshold: blue below, red above
    from landscape_widgets.plotting.colours import CONVEXITY_COLOURS

    scale = panel.view.color_scale
    assert (scale.min, scale.max) == (0.0, 1.0) and float(ds["convexity"].max()) < 0.9
    stops = np.linspace(scale.min, scale.max, len(scale.colors))
    assert scale.colors[int(np.flatnonzero(stops == CONVEX_THRESHOLD)[0])] == CONVEXITY_COLOURS[1] == "#f7f7f7"


def _landscape(f, num=21):
    a = b = np.linspace(-1, 1, num)
    ds = empty_landscape(plane(num=num))
    ds["loss"].values[:] = f(*np.meshgrid(a, b, indexing="ij"))
    ds["done"].values[:] = True
    return ds


def test_slice_convex_fraction_on_analytic_surfaces():
    assert slice_convex_fraction(_landscape(lambda a, b: a**2 + 3 * b**2)) == 1.0
    assert slice_convex_fraction(_landscape(lambda a, b: a**2 - b**2)) == 0.0  # a saddle everywhere
    assert slice_convex_fraction(_landscape(lambda a, b: 2 * a * b + 0.5 * (a**2 + b**2))) == 0.0  # indefinite
    # a^3 + b^2 curves up where a > 0 (the central difference of a cubic is exact):
    # 9 of the 18 interior columns of a 20-point axis, which has no column at a = 0
    assert slice_convex_fraction(_landscape(lambda a, b: a**3 + b**2, num=20)) == 0.5
    unfinished = _landscape(lambda a, b: a**2)
    unfinished["done"].values[0, 0] = False
    with pytest.raises(ValueError, match="unfinished"):
        slice_convex_fraction(unfinished)
    with pytest.raises(ValueError, match="3x3"):
        slice_convex_fraction(_landscape(lambda a, b: a**2, num=2))


class ResidualBN(nn.Module):
    """Linear, BatchNorm, a residual tanh block and a linear head: 143 parameters."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(4, 8)
        self.bn = nn.BatchNorm1d(8)
        self.block = nn.Linear(8, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        h = self.bn(self.inp(x))
        return self.head(h + torch.tanh(self.block(h)))


def residual_bn_problem(seed=0):
    torch.manual_seed(seed)
    model = ResidualBN().double()
    x = torch.randn(60, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (60,))
    model.train()
    with torch.no_grad():
        model(x)  # running statistics away from their initial 0 / 1
    return model.eval(), (x, y)


def exact_ratio_at(model, data, point):
    """|λ_min / λ_max| from eigvalsh of the explicit Hessian at ``point``."""
    h = explicit_hessian(Objective(model, F.cross_entropy, data, device="cpu"), point)
    ev = torch.linalg.eigvalsh(h).numpy()
    return abs(ev[0] / ev[-1]), ev


def plane_points(f, directions, grid):
    """The flat parameter points of ``grid`` (coordinates ``alpha``, ``beta``)."""
    d1, d2 = directions
    return [f.theta + float(a) * d1 + float(b) * d2 for a, b in grid.coords(np.arange(grid.size))]


@pytest.mark.parametrize("point_batch", [1, 4])
@pytest.mark.parametrize("problem", [tiny_problem, residual_bn_problem])
def test_fast_convexity_map_matches_eigvalsh(problem, point_batch):
    model, data = problem()
    f = Objective(model, F.cross_entropy, data, device="cpu")
    gen = torch.Generator().manual_seed(3)
    dirs = [0.5 * torch.randn(f.layout.size, generator=gen, dtype=torch.float64) / f.layout.size**0.5 * f.theta.norm()
            for _ in range(2)]
    grid = plane(num=3)
    # 24 iterations at most: fewer than the parameters, so convergence matters. The 3x3 plane's
    # neighbours are far apart: with the tiny MLP, point 7's lowest eigenvector is nearly
    # orthogonal to that of point 4, its warm start (|cos| 0.04), and close to point 4's
    # second lowest; a warm start from the lowest Ritz vector alone gets point 7 0.009 off.
    steps = 12
    assert 2 * steps < f.layout.size
    ds = convexity_map(model, F.cross_entropy, data, grid=grid, directions=dirs, steps=steps, tol=1e-4,
                       point_batch=point_batch, device="cpu")
    for flat, point in enumerate(plane_points(f, dirs, grid)):
        exact, ev = exact_ratio_at(model, data, point)
        pos = np.unravel_index(flat, grid.shape)
        assert ev[0] < 0 < ev[-1]  # non-convex there: the ratio is not trivially 0
        np.testing.assert_allclose(ds["convexity"].values[pos], exact, atol=1e-3)
        np.testing.assert_allclose(ds["lambda_max"].values[pos], ev[-1], rtol=1e-4)
    assert ds["iterations"].values.min() < 2 * steps  # the early stop did stop early


def test_warm_start_and_early_stop_agree_with_the_plain_path():
    model, data = residual_bn_problem()
    grid = plane(num=5)
    plain = convexity_map(model, F.cross_entropy, data, grid=grid, steps=30, tol=None, warm_start=False,
                          keep_graph=False, device="cpu")
    fast = convexity_map(model, F.cross_entropy, data, grid=grid, steps=30, tol=1e-4, device="cpu")
    cold_early = convexity_map(model, F.cross_entropy, data, grid=grid, steps=30, tol=1e-4, warm_start=False,
                               device="cpu")
    assert (plain["iterations"].values == 60).all()
    for ds in (fast, cold_early):
        np.testing.assert_allclose(ds["convexity"].values, plain["convexity"].values, atol=1e-3)
        np.testing.assert_allclose(ds["lambda_max"].values, plain["lambda_max"].values, rtol=1e-4)
        np.testing.assert_allclose(ds["loss"].values, plain["loss"].values, rtol=1e-12)
    # warm starts converge in fewer iterations than cold ones
    assert fast["iterations"].values.mean() < cold_early["iterations"].values.mean() < 60
    assert fast.attrs["warm_start"] == 1 and plain.attrs["lanczos_tol"] == "none"


def test_kept_graph_gives_the_same_products_with_several_batches():
    model, data = residual_bn_problem()
    f = Objective(model, F.cross_entropy, data, device="cpu", batch_size=25)
    assert f.data.n_batches == 3
    point = f.theta + 0.1 * torch.randn(f.layout.size, dtype=torch.float64)
    v = torch.randn(3, f.layout.size, dtype=torch.float64)
    kept, rebuilt = hvp_operator(f, point, keep_graph=True), hvp_operator(f, point, keep_graph=False)
    for row in v:
        torch.testing.assert_close(kept(row), rebuilt(row), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(torch.vmap(kept)(v), torch.stack([rebuilt(row) for row in v]), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("batch_size", [None, 25])
def test_batched_products_are_each_points_own(batch_size):
    """Row i of the vmapped product is H(point i) v_i, with the graphs kept or rebuilt
    (one batch and three)."""
    model, data = residual_bn_problem()
    f = Objective(model, F.cross_entropy, data, device="cpu", batch_size=batch_size)
    gen = torch.Generator().manual_seed(1)
    points = f.theta + 0.3 * torch.randn(3, f.layout.size, generator=gen, dtype=torch.float64)
    v = torch.randn(3, f.layout.size, generator=gen, dtype=torch.float64)
    one_by_one = torch.stack([hvp_operator(f, p)(row) for p, row in zip(points, v)])
    for keep in (True, False):
        torch.testing.assert_close(batched_hvp_operator(f, points, keep_graph=keep)(v), one_by_one,
                                   rtol=1e-10, atol=1e-12)


def test_lanczos_runs_in_lockstep_stop_as_each_alone_would():
    """Three operators with different spectra: each lockstep run stops at its own step,
    with the Ritz values and residuals of a run of its own."""
    gen = torch.Generator().manual_seed(0)
    spectra = torch.stack([torch.linspace(-1, 5, 150), torch.linspace(0.1, 2, 150) ** 3,
                           torch.cat([torch.tensor([-4.0, 9.0]), torch.rand(148, generator=gen)])]).double()
    starts = torch.randn(3, 150, generator=gen, dtype=torch.float64)
    together = batched_lanczos_ritz(lambda v: spectra * v, 150, 60, starts, tol=1e-6)
    alone = [lanczos_ritz(lambda v, d=d: d * v, 150, 60, start, tol=1e-6) for d, start in zip(spectra, starts)]
    assert len({len(r.values) for r in alone}) > 1  # they stop at different steps
    for a, b in zip(together, alone):
        assert len(a.values) == len(b.values)
        np.testing.assert_allclose(a.values, b.values, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(a.residuals, b.residuals, rtol=1e-6, atol=1e-10)


class ReadsAScalar(nn.Module):
    """A forward that reads a weight's value as a Python number: torch.vmap refuses it."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))

    def forward(self, x):
        return self.body(x) / (1.0 + 0.0 * float(self.body[0].weight.abs().max().item()))


def test_a_model_vmap_refuses_gets_its_convexity_map_point_by_point():
    torch.manual_seed(0)
    model = ReadsAScalar().double()
    x, y = torch.randn(40, 4, dtype=torch.float64), torch.randint(0, 3, (40,))
    grid = plane(num=3)
    one_by_one = convexity_map(model, F.cross_entropy, (x, y), grid=grid, steps=8, point_batch=1, device="cpu")
    with pytest.warns(RuntimeWarning, match="point by point"):
        asked = convexity_map(model, F.cross_entropy, (x, y), grid=grid, steps=8, point_batch=4, device="cpu")
    for name in ("convexity", "lambda_min", "lambda_max", "iterations"):
        np.testing.assert_array_equal(asked[name].values, one_by_one[name].values)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batched_convexity_map_on_cuda_matches_the_cpu():
    model, data = residual_bn_problem()
    grid = plane(num=5)
    cpu = convexity_map(model, F.cross_entropy, data, grid=grid, steps=30, tol=1e-4, device="cpu")
    gpu = convexity_map(model, F.cross_entropy, data, grid=grid, steps=30, tol=1e-4, device="cuda")
    np.testing.assert_allclose(gpu["convexity"].values, cpu["convexity"].values, atol=1e-3)
    np.testing.assert_allclose(gpu["lambda_max"].values, cpu["lambda_max"].values, rtol=1e-4)


def test_lanczos_tol_stops_early_within_the_residual_bound():
    spectrum = torch.cat([torch.tensor([-3.0, 10.0]), torch.linspace(-1, 5, 198)]).double()
    steps = []
    ritz = lanczos(lambda v: spectrum * v, 200, steps=100, tol=1e-6, on_step=lambda i, n: steps.append(i))
    assert len(ritz) == steps[-1] < 100
    np.testing.assert_allclose([ritz[0], ritz[-1]], [-3.0, 10.0], atol=1e-5 * 10)
    warm = lanczos(lambda v: spectrum * v, 200, steps=100, tol=1e-6,
                   start=torch.eye(200, dtype=torch.float64)[0] + torch.eye(200, dtype=torch.float64)[1] + 1e-3)
    assert len(warm) < len(ritz)
    np.testing.assert_allclose([warm[0], warm[-1]], [-3.0, 10.0], atol=1e-5 * 10)
    with pytest.raises(ValueError, match="start vector has shape"):
        lanczos(lambda v: v, 5, start=torch.ones(4))
    with pytest.raises(ValueError, match="tol must be > 0"):
        lanczos(lambda v: v, 5, tol=0)


def test_hessian_directions_are_top_eigenvectors_of_the_explicit_hessian():
    model, data = residual_bn_problem()
    f = Objective(model, F.cross_entropy, data, device="cpu")
    exact = torch.linalg.eigvalsh(explicit_hessian(f)).numpy()[::-1]
    dirs = hessian_directions(model, F.cross_entropy, data, k=3, steps=60, device="cpu")
    assert len(dirs) == 3 and all(d.shape == (f.layout.size,) and d.dtype == f.theta.dtype for d in dirs)
    hvp = hvp_operator(f)
    rayleigh = [float(d @ hvp(d)) for d in dirs]
    np.testing.assert_allclose(rayleigh, exact[:3], rtol=1e-3)
    gram = torch.stack(dirs) @ torch.stack(dirs).T
    torch.testing.assert_close(gram, torch.eye(3, dtype=gram.dtype), atol=1e-8, rtol=0)


def test_hessian_directions_of_a_quadratic_are_its_eigenvectors():
    torch.manual_seed(1)
    n = 6
    v, _ = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64))
    spectrum = torch.tensor([9.0, 5.0, 3.0, 2.0, 1.0, 0.5], dtype=torch.float64)
    u, _ = torch.linalg.qr(torch.randn(40, n, dtype=torch.float64))
    # x = sqrt(N/2) U diag(sqrt(spectrum)) V^T, so the Hessian 2 x^T x / N of the mean squared error is V diag V^T
    x = (20**0.5) * u @ torch.diag(spectrum.sqrt()) @ v.T
    model = nn.Linear(n, 1, bias=False).double()
    data = (x, torch.randn(40, 1, dtype=torch.float64))
    torch.testing.assert_close(2 * x.T @ x / 40, v @ torch.diag(spectrum) @ v.T)
    dirs = hessian_directions(model, F.mse_loss, data, k=2, device="cpu")
    for d, expected in zip(dirs, v.T[:2]):
        assert abs(float(d @ expected)) == pytest.approx(1.0, abs=1e-9)
    # as plane directions: the curvature of the loss along each is its eigenvalue
    ds = compute_landscape(model, F.mse_loss, data, grid=plane((-0.5, 0.5), num=3), directions=dirs,
                           device="cpu")
    loss = ds["loss"].values
    np.testing.assert_allclose((loss[0, 1] + loss[2, 1] - 2 * loss[1, 1]) / 0.5**2, 9.0, rtol=1e-9)
    np.testing.assert_allclose((loss[1, 0] + loss[1, 2] - 2 * loss[1, 1]) / 0.5**2, 5.0, rtol=1e-9)


def test_hessian_directions_reject_bad_k():
    model, data = tiny_problem()
    with pytest.raises(ValueError, match="k must be >= 1"):
        hessian_directions(model, F.cross_entropy, data, k=0, device="cpu")
    with pytest.raises(ValueError, match="exceeds the 51 moved parameters"):
        hessian_directions(model, F.cross_entropy, data, k=52, device="cpu")
