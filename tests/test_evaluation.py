"""Evaluation backend: exact values, loop == batched, invariances, streaming, errors."""

import threading
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape_widgets.builtin import zoo
from landscape_widgets.core.directions import random_directions
from landscape_widgets.core.evaluation import PointEvaluator
from landscape_widgets.core.grids import coarse_to_fine_order, line, plane
from landscape_widgets.core.landscape import compute_landscape
from landscape_widgets.core.params import flatten_params
from landscape_widgets.core.streaming import iter_chunks, point_order


@pytest.fixture(autouse=True)
def _fresh_speeds():
    """auto remembers the speeds measured in the process: each test starts without them."""
    from landscape_widgets.core import streaming

    streaming._SPEEDS.clear()
    streaming._WORK.clear()
    yield
    streaming._SPEEDS.clear()
    streaming._WORK.clear()


def _data(shape, n=40, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g)


def _bn_cnn(skip: bool):
    """A CNN with BatchNorm whose running statistics are far from (0, 1)."""
    torch.manual_seed(0)
    model = zoo.cnn(channels=4, depth=2, skip=skip, batchnorm=True)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.2, 3.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model


class Residual(nn.Module):
    """An MLP with an identity skip connection around a hidden block."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(6, 8)
        self.block = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8))
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.inp(x))
        return self.out(torch.relu(h + self.block(h)))


# -- exact values -------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["loop", "batched"])
def test_linear_model_squared_loss_is_the_exact_quadratic(strategy):
    """L(a, b) = mean((r0 + a r1 + b r2)^2), r_i the residual and the directions' outputs."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 4, generator=g, dtype=torch.float64)
    y = torch.randn(30, 1, generator=g, dtype=torch.float64)
    model = nn.Linear(4, 1).double()
    d1, d2 = (torch.randn(5, generator=g, dtype=torch.float64) for _ in range(2))
    theta = flatten_params(model)

    def outputs(vec):  # Linear's layout: weight (4 values) then bias
        return x @ vec[:4].unsqueeze(1) + vec[4]

    r0, r1, r2 = outputs(theta) - y, outputs(d1), outputs(d2)
    grid = plane((-2, 1.5), (-1, 3), num=(5, 4))
    coeffs = grid.coords(np.arange(grid.size))
    a, b = coeffs[:, 0], coeffs[:, 1]
    expected = np.array(
        [float(((r0 + ai * r1 + bi * r2) ** 2).mean()) for ai, bi in zip(a, b)]
    )
    ev = PointEvaluator(model, F.mse_loss, (x, y), [d1, d2], device="cpu")
    values = ev.evaluate(coeffs, strategy)
    np.testing.assert_allclose(values.loss, expected, rtol=1e-9, atol=1e-12)
    assert values.accuracy is None  # a regression task
    ds = compute_landscape(model, F.mse_loss, (x, y), grid, [d1, d2], device="cpu", strategy=strategy)
    np.testing.assert_allclose(ds["loss"].values.reshape(-1), expected, rtol=1e-9, atol=1e-12)


def test_linear_model_float32_along_a_line():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(50, 3, generator=g), torch.randn(50, 1, generator=g)
    model = nn.Linear(3, 1)
    d = torch.randn(4, generator=g)
    theta = flatten_params(model).double()
    xd, yd, dd = x.double(), y.double(), d.double()
    r0 = xd @ theta[:3].unsqueeze(1) + theta[3] - yd
    r1 = xd @ dd[:3].unsqueeze(1) + dd[3]
    # the quadratic's coefficients, from the closed form
    c0, c1, c2 = float((r0**2).mean()), float(2 * (r0 * r1).mean()), float((r1**2).mean())
    ds = compute_landscape(model, F.mse_loss, (x, y), line((-1, 1), num=9), [d], device="cpu")
    a = ds["alpha"].values
    np.testing.assert_allclose(ds["loss"].values, c0 + c1 * a + c2 * a**2, rtol=1e-5)


# -- loop and batched agree ---------------------------------------------------------------


@pytest.mark.parametrize(
    "make_model, shape, classes",
    [
        (lambda: zoo.mlp(in_features=12, width=16, depth=2, n_classes=5), (12,), 5),
        (lambda: _bn_cnn(skip=False), (1, 8, 8), 10),
        (lambda: _bn_cnn(skip=True), (1, 8, 8), 10),
        (Residual, (6,), 3),
    ],
    ids=["mlp", "cnn-batchnorm", "resnet-batchnorm", "residual-mlp"],
)
def test_batched_equals_loop(make_model, shape, classes):
    torch.manual_seed(0)
    model = make_model()
    data = _data(shape, n=37, classes=classes)
    dirs = random_directions(model, 2, seed=1)
    ev = PointEvaluator(model, F.cross_entropy, data, dirs, device="cpu")
    coeffs = plane(num=5).coords(np.arange(25))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no vmap fallback here
        batched = ev.evaluate(coeffs, "batched")
        split_rows = ev.evaluate(coeffs, "batched", rows=7)  # several data slices per point
    loop = ev.evaluate(coeffs, "loop")
    for values in (batched, split_rows):
        np.testing.assert_allclose(values.loss, loop.loss, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(values.accuracy, loop.accuracy, atol=1e-6)
    assert ev.batched_failed is None
    # the centre is the model itself, BatchNorm with its running statistics (eval mode)
    model.eval()
    with torch.no_grad():
        centre = float(F.cross_entropy(model(data[0]), data[1]))
    assert loop.loss[12] == pytest.approx(centre, rel=1e-5)


def test_caller_model_untouched_and_train_mode_kept():
    model = _bn_cnn(skip=False).train()
    before = flatten_params(model)
    stats = model.stem[1].running_mean.clone()
    compute_landscape(model, F.cross_entropy, _data((1, 8, 8)), plane(num=3), device="cpu")
    assert torch.equal(flatten_params(model), before)
    assert torch.equal(model.stem[1].running_mean, stats)
    assert model.training


def test_dataloader_batches_and_caps():
    model = zoo.mlp(in_features=12, width=16, depth=1, n_classes=5)
    x, y = _data((12,), n=50, classes=5)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    dirs = random_directions(model, 1, seed=0)
    full = PointEvaluator(model, F.cross_entropy, (x, y), dirs).evaluate([[0.3]])
    batched = PointEvaluator(model, F.cross_entropy, loader, dirs).evaluate([[0.3]], "batched")
    np.testing.assert_allclose(batched.loss, full.loss, rtol=1e-5)
    capped = PointEvaluator(model, F.cross_entropy, loader, dirs, max_samples=20)
    assert capped.objective.data.n_samples == 20
    expected = PointEvaluator(model, F.cross_entropy, (x[:20], y[:20]), dirs).evaluate([[0.3]])
    np.testing.assert_allclose(capped.evaluate([[0.3]]).loss, expected.loss, rtol=1e-5)
    assert PointEvaluator(model, F.cross_entropy, loader, dirs, max_batches=2).objective.data.n_samples == 16


# -- filter normalization invariance (Li et al. 2018, section 4) ---------------------------


def _rescaled(model, factor):
    """Multiply the first ReLU layer's weights and bias by ``factor`` and the next
    layer's weights by ``1/factor``: the network computes the same function."""
    out = zoo.mlp(in_features=12, width=16, depth=2, n_classes=5)
    out.load_state_dict(model.state_dict())
    with torch.no_grad():
        out[0].weight.mul_(factor)
        out[0].bias.mul_(factor)
        out[2].weight.div_(factor)
    return out


@pytest.mark.parametrize("bias_bn", ["ignore", "theta"])
def test_filter_normalized_landscape_is_scale_invariant(bias_bn):
    torch.manual_seed(0)
    model = zoo.mlp(in_features=12, width=16, depth=2, n_classes=5)
    scaled = _rescaled(model, 10.0)
    data = _data((12,), n=64, classes=5)
    with torch.no_grad():
        torch.testing.assert_close(model(data[0]), scaled(data[0]), rtol=1e-5, atol=1e-5)
    grid = plane(num=5)

    def land(m, normalization):
        ds = compute_landscape(
            m, F.cross_entropy, data, grid, seed=3, normalization=normalization,
            bias_bn=bias_bn, device="cpu", strategy="loop",
        )
        return ds["loss"].values

    np.testing.assert_allclose(land(scaled, "filter"), land(model, "filter"), rtol=1e-4, atol=1e-6)
    # without normalization the same random directions see a different landscape
    assert np.max(np.abs(land(scaled, "none") - land(model, "none"))) > 1e-2


# -- non-finite values ---------------------------------------------------------------------


class Exponential(nn.Module):
    """``exp(w * x)``: overflows to inf in float32 for large w."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.exp(self.w * x)


@pytest.mark.parametrize("strategy", ["loop", "batched", "auto"])
def test_nonfinite_losses_are_nan_and_counted(strategy):
    x, y = torch.ones(4, 1), torch.zeros(4, 1)
    grid = line((-1, 1), num=5)  # w = 100 a: exp(100) is inf in float32, exp(50) is not
    ds = compute_landscape(
        Exponential(), F.l1_loss, (x, y), grid, [torch.tensor([100.0])], device="cpu",
        strategy=strategy, chunk_size=2,
    )
    loss = ds["loss"].values
    assert np.isnan(loss[-1]) and np.all(np.isfinite(loss[:-1]))
    np.testing.assert_allclose(loss[:-1], np.exp(100 * grid.axes[0].values[:-1]), rtol=1e-5, atol=1e-30)
    assert ds.attrs["n_nonfinite"] == 1 and ds.attrs["complete"] == 1
    assert bool(ds["done"].values.all())


# -- vmap fallback -------------------------------------------------------------------------


class DataDependent(nn.Module):
    """Python control flow on a tensor value: torch.vmap cannot trace it."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(6, 3)

    def forward(self, x):
        h = self.lin(x)
        if h.abs().max().item() > 1e6:
            h = h / 2
        return h


def test_vmap_fallback_warns_and_gives_loop_values():
    torch.manual_seed(0)
    model, data = DataDependent(), _data((6,), n=20, classes=3)
    dirs = random_directions(model, 2, seed=0, bias_bn="random")
    coeffs = plane(num=3).coords(np.arange(9))
    ev = PointEvaluator(model, F.cross_entropy, data, dirs, device="cpu")
    with pytest.warns(RuntimeWarning, match="falling back to the per-point loop"):
        fallback = ev.evaluate(coeffs, "batched")
    assert ev.batched_failed
    np.testing.assert_allclose(fallback.loss, ev.evaluate(coeffs, "loop").loss, rtol=0, atol=0)
    with pytest.warns(RuntimeWarning, match="falling back"):
        ds = compute_landscape(model, F.cross_entropy, data, plane(num=3), dirs, strategy="batched")
    np.testing.assert_allclose(ds["loss"].values.reshape(-1), fallback.loss, rtol=1e-6)
    assert ds.attrs["strategy"] == "loop" and "vmap_fallback" in ds.attrs
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a small grid: auto never tries batched, so no warning
        auto = list(iter_chunks(PointEvaluator(model, F.cross_entropy, data, dirs), plane(num=7)))
    assert {c.strategy for c in auto} == {"loop"}
    assert sum(len(c.indices) for c in auto) == 49


def test_auto_falls_back_to_the_loop_when_its_batched_trial_fails(monkeypatch):
    from landscape_widgets.core.streaming import _AutoTrials

    monkeypatch.setattr(_AutoTrials, "LOSS_FRACTION", float("inf"))  # always try batched
    torch.manual_seed(0)
    model, data = DataDependent(), _data((6,), n=20, classes=3)
    dirs = random_directions(model, 2, seed=0, bias_bn="random")
    ev = PointEvaluator(model, F.cross_entropy, data, dirs)
    with pytest.warns(RuntimeWarning, match="falling back"):
        auto = list(iter_chunks(ev, plane(num=7)))
    assert {c.strategy for c in auto} == {"loop"}
    seen = np.concatenate([c.indices for c in auto])
    assert np.array_equal(np.sort(seen), np.arange(49))
    assert ev.batched_setup_seconds() == float("inf")


# -- streaming: order, auto, cancel, resume ------------------------------------------------


def _counting_loss():
    calls = []

    def loss_fn(out, y):
        calls.append(len(y))
        return F.cross_entropy(out, y)

    return loss_fn, calls


def _full_but_where_a_level_ends(chunks, grid, size: int, start: int = 0) -> bool:
    """Whether ``chunks`` (the points from position ``start`` of the coarse-to-fine order
    on) stop at every level's end and are otherwise ``size`` points each."""
    ends = {int(e) for e in coarse_to_fine_order(grid.shape)[1] if e > start}
    stops = start + np.cumsum([len(c.indices) for c in chunks])
    return ends <= set(stops.tolist()) and all(
        len(c.indices) == size for c, stop in zip(chunks, stops) if stop not in ends)


def test_iter_chunks_covers_grid_once_coarse_to_fine():
    model = zoo.mlp(in_features=12, width=16, depth=1, n_classes=5)
    ev = PointEvaluator(model, F.cross_entropy, _data((12,), classes=5), random_directions(model, 2))
    grid = plane(num=9)
    chunks = list(iter_chunks(ev, grid, strategy="auto", chunk_size=10))
    seen = np.concatenate([c.indices for c in chunks])
    assert np.array_equal(seen, point_order(grid))
    assert np.array_equal(np.sort(seen), np.arange(grid.size))
    # auto on 81 cheap points: one short loop chunk, then full loop chunks, no batched trial
    assert (chunks[0].strategy, len(chunks[0].indices)) == ("loop", 8)
    assert {c.strategy for c in chunks} == {"loop"}
    assert {int(e) for e in coarse_to_fine_order(grid.shape)[1]} == {49, 81}  # 7x7 points, then the rest
    assert _full_but_where_a_level_ends(chunks[1:], grid, 10, start=8)
    reference = ev.evaluate(grid.coords(seen), "loop").loss
    np.testing.assert_allclose(np.concatenate([c.loss for c in chunks]), reference, rtol=1e-5)
    skip = np.arange(10)
    assert not np.isin(point_order(grid, "raster", skip), skip).any()


def test_cancel_from_another_thread_stops_within_one_chunk():
    model = zoo.mlp(in_features=12, width=16, depth=1, n_classes=5)
    cancel = threading.Event()
    loss_fn, calls = _counting_loss()

    def cancelling_loss(out, y):
        if len(calls) == 1:  # first point (after the check at construction): another thread asks to stop
            t = threading.Thread(target=cancel.set)
            t.start()
            t.join()
        return loss_fn(out, y)

    grid = plane(num=11)
    ds = compute_landscape(
        model, cancelling_loss, _data((12,), classes=5), grid, strategy="loop",
        chunk_size=5, cancel=cancel,
    )
    assert cancel.is_set()
    assert ds.attrs["n_done"] == 5 and ds.attrs["complete"] == 0
    assert len(calls) == 1 + 5  # the loss check at construction, then only the chunk in flight
    assert int(np.isfinite(ds["loss"].values).sum()) == 5


def test_cancel_from_on_chunk_hook():
    model = zoo.mlp(in_features=12, width=16, depth=1, n_classes=5)
    cancel = threading.Event()
    seen = []

    def hook(ds, chunk):
        seen.append(len(chunk.indices))
        if len(seen) == 2:
            cancel.set()

    ds = compute_landscape(
        model, F.cross_entropy, _data((12,), classes=5), plane(num=11), strategy="batched",
        chunk_size=7, cancel=cancel, on_chunk=hook,
    )
    assert seen == [7, 7] and ds.attrs["n_done"] == 14


def test_resume_computes_only_missing_points():
    model = zoo.mlp(in_features=12, width=16, depth=1, n_classes=5)
    data, grid = _data((12,), classes=5), plane(num=7)
    cancel = threading.Event()
    partial = compute_landscape(
        model, _counting_loss()[0], data, grid, strategy="loop", chunk_size=6, cancel=cancel,
        on_chunk=lambda ds, c: cancel.set(),
    )
    assert partial.attrs["n_done"] == 6
    loss_fn, calls = _counting_loss()  # the same loss (a function of the same name)
    resumed = compute_landscape(
        model, loss_fn, data, grid, strategy="loop", resume=partial
    )
    assert len(calls) == 1 + grid.size - 6  # the check at construction, then the missing points
    assert resumed.attrs["complete"] == 1
    full = compute_landscape(model, F.cross_entropy, data, grid, strategy="loop")
    np.testing.assert_allclose(resumed["loss"].values, full["loss"].values, rtol=1e-6)
    with pytest.raises(ValueError, match="different grid"):
        compute_landscape(model, loss_fn, data, plane(num=5), resume=partial)


def test_resuming_another_computation_is_a_clear_error(tmp_path):
    """Finished points are kept only for the same computation: the same centre and
    directions (by value), model, loss, moved parameters, data size and dtype."""
    from landscape_widgets.core.results import load_landscape, save_landscape

    torch.manual_seed(0)
    model = zoo.mlp(in_features=12, width=16, depth=1, n_classes=5)
    data, grid = _data((12,), classes=5), plane(num=5)
    cancel = threading.Event()
    partial = compute_landscape(model, F.cross_entropy, data, grid, chunk_size=6, cancel=cancel,
                                on_chunk=lambda ds, c: cancel.set())
    save_landscape(partial, tmp_path / "partial.nc")
    saved = load_landscape(tmp_path / "partial.nc")
    full = compute_landscape(model, F.cross_entropy, data, grid)
    for resume in (partial, saved):  # in memory, or read back from a file
        resumed = compute_landscape(model, F.cross_entropy, data, grid, resume=resume)
        np.testing.assert_allclose(resumed["loss"].values, full["loss"].values, rtol=1e-6)
    other = zoo.mlp(in_features=12, width=16, depth=1, n_classes=5)  # other weights
    wrong = {
        "seed=1": (dict(seed=1), "other points"),
        "normalization": (dict(normalization="none"), "other points"),
        "bias_bn": (dict(bias_bn="random"), "other points"),
        "weights": (dict(model=other), "other points"),
        "params": (dict(params="0.*"), "params='all' there, '0.\\*' here"),
        "loss": (dict(loss_fn=F.nll_loss), "loss_fn='cross_entropy' there, 'nll_loss' here"),
        "data": (dict(max_samples=30), "n_samples=40 there, 30 here"),
        "dtype": (dict(dtype=torch.float64), "dtype='float32' there, 'float64' here"),
    }
    for name, (change, match) in wrong.items():
        kwargs = {"model": model, "loss_fn": F.cross_entropy, **change}
        with pytest.raises(ValueError, match=match):
            compute_landscape(kwargs.pop("model"), kwargs.pop("loss_fn"), data, grid, resume=saved, **kwargs)
    old = saved.copy()
    del old.attrs["points"]
    with pytest.raises(ValueError, match="records no digest of its points"):
        compute_landscape(model, F.cross_entropy, data, grid, resume=old)


def test_result_attributes():
    model = zoo.mlp(in_features=12, width=16, depth=1, n_classes=5)
    ds = compute_landscape(
        model, F.cross_entropy, _data((12,), classes=5), plane(num=3), seed=4, normalization="layer"
    )
    assert ds.attrs["seed"] == 4 and ds.attrs["normalization"] == "layer"
    assert ds.attrs["n_params"] == sum(p.numel() for p in model.parameters())
    assert ds.attrs["complete"] == 1 and ds.attrs["n_nonfinite"] == 0
    assert set(ds.data_vars) == {"loss", "accuracy", "done"}
    assert ds["accuracy"].dims == ("alpha", "beta")
    assert np.all((ds["accuracy"].values >= 0) & (ds["accuracy"].values <= 1))


# -- clear errors --------------------------------------------------------------------------


def test_clear_errors():
    model = zoo.mlp(in_features=12, width=16, depth=1, n_classes=5)
    data = _data((12,), classes=5)
    dirs = random_directions(model, 2)
    with pytest.raises(ValueError, match="at least one direction"):
        PointEvaluator(model, F.cross_entropy, data, [])
    with pytest.raises(ValueError, match="flat vector"):
        PointEvaluator(model, F.cross_entropy, data, [dirs[0][:-1]])
    with pytest.raises(ValueError, match="no samples"):
        PointEvaluator(model, F.cross_entropy, (data[0][:0], data[1][:0]), dirs)
    with pytest.raises(ValueError, match="no samples"):
        PointEvaluator(model, F.cross_entropy, [], dirs)
    with pytest.raises(ValueError, match="no parameters"):
        PointEvaluator(nn.ReLU(), F.cross_entropy, data, dirs)
    with pytest.raises(ValueError, match="samples"):
        PointEvaluator(model, F.cross_entropy, (data[0], data[1][:-1]), dirs)
    ev = PointEvaluator(model, F.cross_entropy, data, dirs)
    with pytest.raises(ValueError, match="grid has 1 axes but there are 2"):
        next(iter_chunks(ev, line(num=5)))
    with pytest.raises(ValueError, match=r"shape \[points, 2\]"):
        ev.evaluate(np.zeros((3, 1)))
    with pytest.raises(ValueError, match="strategy"):
        next(iter_chunks(ev, plane(num=3), strategy="fast"))
    with pytest.raises(ValueError, match="chunk_size"):
        next(iter_chunks(ev, plane(num=3), chunk_size=0))
    with pytest.raises(ValueError, match="order"):
        next(iter_chunks(ev, plane(num=3), order="random"))
    vector_loss = lambda out, y: F.cross_entropy(out, y, reduction="none")
    for strategy in ("loop", "batched"):
        with pytest.raises(ValueError, match="mean loss"):
            PointEvaluator(model, vector_loss, data, dirs).evaluate(np.zeros((2, 2)), strategy)


# -- CUDA ------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("make_model, shape", [(lambda: _bn_cnn(skip=True), (1, 8, 8)), (Residual, (6,))])
def test_cuda_loop_and_batched_equal_cpu(make_model, shape):
    model = make_model()
    data = _data(shape, n=37, classes=3)
    dirs = random_directions(model, 2, seed=0)
    coeffs = plane(num=5).coords(np.arange(25))
    cpu = PointEvaluator(model, F.cross_entropy, data, dirs, device="cpu").evaluate(coeffs)
    gpu = PointEvaluator(model, F.cross_entropy, data, dirs, device="cuda")
    assert gpu.device.type == "cuda"
    for strategy in ("loop", "batched"):
        values = gpu.evaluate(coeffs, strategy)
        np.testing.assert_allclose(values.loss, cpu.loss, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(values.accuracy, cpu.accuracy, atol=1e-6)


def test_cpu_chunk_plan_keeps_intermediates_small():
    from landscape_widgets.core.memory import CPU_TENSOR_LIMIT

    for model, shape in [(zoo.mlp(), (64,)), (zoo.cnn(channels=16, depth=2), (1, 8, 8))]:
        ev = PointEvaluator(model, F.cross_entropy, _data(shape, n=1797), random_directions(model, 2), device="cpu")
        k, rows = ev.chunk_plan()
        assert k >= 4 and 1 <= rows <= 1797
        assert k * rows * ev.activation * 4 <= CPU_TENSOR_LIMIT
        assert ev.chunk_plan(chunk_size=3)[0] == 3


def test_auto_follows_a_change_of_speed():
    from landscape_widgets.core.streaming import _AutoTrials

    trials = _AutoTrials(k=16, n_points=1000, setup=0.0)
    plan = [(("loop", 8), 1.0), (("batched", 2), 9.0), (("batched", 8), 3.0), (("loop", 8), 1.0)]
    for expected, seconds in plan:
        assert trials.next() == expected
        trials.record(expected[0], seconds)
    assert trials.next() == ("loop", 16)  # batched 3x slower: no full-chunk trial
    trials.record("loop", 5.0)  # one slow chunk (a burst of load): no switch
    assert trials.next() == ("loop", 16)
    trials.record("loop", 1.2)
    for _ in range(3):  # the loop got slow (load on the cores?): then a re-check
        assert trials.next() == ("loop", 16)
        trials.record("loop", 5.0)
    assert trials.next() == ("batched", 16)  # the re-check: batched, then the loop, back to back
    trials.record("batched", 6.0)
    assert trials.next() == ("loop", 16)
    trials.record("loop", 4.0)  # both slower alike: the loop stays
    for _ in range(5):
        assert trials.next() == ("loop", 16)
        trials.record("loop", 8.0)
    assert trials.next() == ("loop", 16)  # the next re-check waits twice as long (6 chunks)
    trials.record("loop", 8.0)
    assert trials.next() == ("batched", 16)
    trials.record("batched", 2.0)  # now batched is faster for good
    assert trials.next() == ("loop", 16)
    trials.record("loop", 8.0)
    assert trials.next() == ("batched", 16)
    trials.record("batched", 2.5)
    assert trials.next() == ("batched", 16)
    close = _AutoTrials(k=16, n_points=1000, setup=0.0)
    for use, seconds in [("loop", 1.3), ("batched", 9.0), ("batched", 1.1), ("loop", 1.0)]:
        assert close.next()[0] == use
        close.record(use, seconds)
    assert close.next() == ("batched", 16)  # close behind: one full batched chunk decides
    close.record("batched", 1.15)
    assert close.next() == ("loop", 16)  # ... once: it lost, the loop stays
    close.record("loop", 1.0)
    assert close.next() == ("loop", 16)


def _trial_chunks(trials, n_points, seconds):
    """Run ``trials`` over ``n_points`` with each chunk taking ``seconds[strategy]`` per point."""
    used, done = [], 0
    while done < n_points:
        use, size = trials.next()
        size = min(size, n_points - done)
        trials.record(use, seconds[use])
        used.append((use, size))
        done += size
    assert done == n_points
    return used


@pytest.mark.parametrize("n_points", [1, 5, 8, 81, 300])
def test_auto_never_tries_batched_on_a_small_cpu_grid(n_points):
    from landscape_widgets.core.streaming import _AutoTrials

    used = _trial_chunks(_AutoTrials(k=16, n_points=n_points, setup=0.0), n_points,
                         {"loop": 1e-3, "batched": 1e-4})
    assert {u for u, _ in used} == {"loop"}
    assert used[0] == ("loop", min(8, n_points))


def test_auto_weighs_the_batched_set_up_against_the_work():
    from landscape_widgets.core.streaming import _AutoTrials

    fast_batched = {"loop": 1e-3, "batched": 5e-4}
    # 2601 points of 1 ms: a trial costs about 10 ms, 3% of the work is 78 ms
    warm = _trial_chunks(_AutoTrials(k=16, n_points=2601, setup=0.0), 2601, fast_batched)
    assert warm[:4] == [("loop", 8), ("batched", 2), ("batched", 8), ("loop", 8)]
    assert warm[-2][0] == "batched"  # and it won
    # a fresh process would pay 0.5 s of set-up first: never paid back here
    cold = _trial_chunks(_AutoTrials(k=16, n_points=2601, setup=0.5), 2601, fast_batched)
    assert {u for u, _ in cold} == {"loop"}
    # on a GPU batched usually wins by far: tried whenever the set-up is under half the work
    gpu = _trial_chunks(_AutoTrials(k=64, n_points=81, device_type="cuda", setup=0.0), 81, fast_batched)
    assert ("batched", 8) in gpu
    tiny = _trial_chunks(_AutoTrials(k=64, n_points=81, device_type="cuda", setup=1.0), 81, fast_batched)
    assert {u for u, _ in tiny} == {"loop"}
    # repeated small runs of one kind: once their work is large enough, one tries batched
    small = _trial_chunks(_AutoTrials(k=16, n_points=81, setup=0.0, done_before=1.0), 81, fast_batched)
    assert small[:3] == [("loop", 8), ("batched", 2), ("batched", 8)]


def test_small_auto_run_skips_vmap_and_the_activation_probe(monkeypatch):
    import landscape_widgets.core.evaluation as evaluation

    def no_vmap(*args, **kwargs):
        raise AssertionError("the batched strategy ran")

    monkeypatch.setattr(evaluation, "evaluate_batched", no_vmap)
    model = zoo.mlp(in_features=12, width=16, depth=1, n_classes=5)
    ev = PointEvaluator(model, F.cross_entropy, _data((12,), classes=5), random_directions(model, 2))
    grid = plane(num=9)
    chunks = list(iter_chunks(ev, grid))
    assert ev._activation is None  # only the batched memory plan needs it
    loss = np.full(grid.size, np.nan)
    for c in chunks:
        assert np.isnan(loss[c.indices]).all()  # every point once
        loss[c.indices] = c.loss
    np.testing.assert_allclose(loss, ev.evaluate(grid.coords(np.arange(grid.size)), "loop").loss, rtol=1e-6)


def test_auto_with_trials_covers_the_points_once_and_agrees(monkeypatch):
    from landscape_widgets.core.streaming import _AutoTrials

    monkeypatch.setattr(_AutoTrials, "LOSS_FRACTION", float("inf"))  # always try batched
    model = zoo.mlp(in_features=12, width=16, depth=1, n_classes=5)
    data, dirs = _data((12,), classes=5), random_directions(model, 2)
    grid = plane(num=11)
    skip = np.arange(0, grid.size, 7)
    results = {}
    for strategy in ("auto", "loop", "batched"):  # auto first: nothing measured yet, so it tries
        ev = PointEvaluator(model, F.cross_entropy, data, dirs)
        chunks = list(iter_chunks(ev, grid, strategy, chunk_size=16, skip=skip))
        seen = np.concatenate([c.indices for c in chunks])
        assert np.array_equal(seen, point_order(grid, skip=skip))  # each point once, in order
        loss = np.full(grid.size, np.nan)
        loss[seen] = np.concatenate([c.loss for c in chunks])
        results[strategy] = loss
        if strategy == "auto":
            assert [(c.strategy, len(c.indices)) for c in chunks[:4]] == [
                ("loop", 8), ("batched", 2), ("batched", 8), ("loop", 8)
            ]
    for strategy in ("batched", "auto"):
        np.testing.assert_allclose(results[strategy], results["loop"], rtol=1e-5, equal_nan=True)


def test_auto_remembers_the_speeds_measured_in_the_process(monkeypatch):
    from landscape_widgets.core import streaming

    model = zoo.mlp(in_features=12, width=16, depth=1, n_classes=5)
    data, dirs = _data((12,), classes=5), random_directions(model, 2)
    grid = plane(num=9)
    first = list(iter_chunks(PointEvaluator(model, F.cross_entropy, data, dirs), grid))
    assert (first[0].strategy, len(first[0].indices)) == ("loop", 8)  # only the loop is known
    list(iter_chunks(PointEvaluator(model, F.cross_entropy, data, dirs), grid, "batched"))
    key = PointEvaluator(model, F.cross_entropy, data, dirs).speed_key()
    assert set(streaming._SPEEDS[key]) == {"loop", "batched"}
    for faster in ("batched", "loop"):
        other = {"batched": "loop", "loop": "batched"}[faster]
        streaming._SPEEDS[key] = {faster: 1e-3, other: 1.0}
        ev = PointEvaluator(model, F.cross_entropy, data, dirs)
        chunks = list(iter_chunks(ev, grid, chunk_size=16))
        assert {c.strategy for c in chunks} == {faster}  # no trials: the faster one from the start
        assert _full_but_where_a_level_ends(chunks, grid, 16)
        seen = np.concatenate([c.indices for c in chunks])
        assert np.array_equal(seen, point_order(grid))
    # another kind of evaluation (other data) does not use them
    other = PointEvaluator(model, F.cross_entropy, _data((12,), n=41, classes=5), dirs)
    assert other.speed_key() != key and other.speed_key() not in streaming._SPEEDS
    assert next(iter(iter_chunks(other, grid))).strategy == "loop"


def test_auto_remembers_that_vmap_failed(monkeypatch):
    from landscape_widgets.core import streaming

    monkeypatch.setattr(streaming._AutoTrials, "LOSS_FRACTION", float("inf"))  # always try batched
    torch.manual_seed(0)
    model, data = DataDependent(), _data((6,), n=20, classes=3)
    dirs = random_directions(model, 2, seed=0, bias_bn="random")
    with pytest.warns(RuntimeWarning, match="falling back"):
        list(iter_chunks(PointEvaluator(model, F.cross_entropy, data, dirs), plane(num=7)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # known to fail: not tried again
        again = list(iter_chunks(PointEvaluator(model, F.cross_entropy, data, dirs), plane(num=7)))
    assert {c.strategy for c in again} == {"loop"}


def test_streaming_imports_no_xarray():
    import subprocess
    import sys

    code = ("import sys, landscape_widgets.core.streaming, landscape_widgets.core.evaluation; "
            "print(sorted(m for m in ('xarray', 'pandas', 'dask', 'sympy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_loss_only_gives_the_same_loss_without_accuracy():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    data = (torch.randn(32, 4), torch.randint(0, 3, (32,)))
    full = compute_landscape(model, F.cross_entropy, data, plane(num=5))
    loss_only = compute_landscape(model, F.cross_entropy, data, plane(num=5), accuracy=False)
    assert "accuracy" in full and "accuracy" not in loss_only
    np.testing.assert_allclose(loss_only["loss"].values, full["loss"].values, rtol=1e-6)


@pytest.mark.parametrize(
    "loss_fn",
    [F.cross_entropy,
     nn.CrossEntropyLoss(weight=torch.linspace(0.5, 2.0, 10), label_smoothing=0.1, ignore_index=3)],
    ids=["F.cross_entropy", "CrossEntropyLoss-weighted-smoothed"],
)
@pytest.mark.parametrize("strategy", ["loop", "batched"])
def test_cross_entropy_over_few_classes_equals_the_plain_call(loss_fn, strategy):
    """Cross-entropy over < 16 classes may be computed on logits viewed as [1, C, B]
    (whichever layout is faster on this CPU): the values must be those of
    ``loss_fn(logits, y)`` in both layouts."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 10))
    data = (torch.randn(64, 6) * 3, torch.randint(0, 10, (64,)))
    dirs = random_directions(model, 2, seed=1)
    coeffs = np.random.default_rng(0).uniform(-1, 1, (6, 2))
    fast = PointEvaluator(model, loss_fn, data, dirs, device="cpu")
    plain = PointEvaluator(model, lambda out, y: loss_fn(out, y), data, dirs, device="cpu")
    assert fast.objective._classes_first is not None and plain.objective._classes_first is None
    expected = plain.evaluate(coeffs, "loop")
    for layout in (True, False):
        fast.objective._classes_first = {64: layout}
        values = fast.evaluate(coeffs, strategy)
        np.testing.assert_allclose(values.loss, expected.loss, rtol=1e-6)
        np.testing.assert_array_equal(values.accuracy, expected.accuracy)
    fresh = PointEvaluator(model, loss_fn, data, dirs, device="cpu")
    fresh.evaluate(coeffs, "loop")
    assert set(fresh.objective._classes_first) == {2, 64}  # the probe and the data: each timed once
