"""Pictures from data samples first: samples, estimates with honest standard errors, the
exact values replacing them, and the cubic preview of a partly computed grid."""

import io

import numpy as np
import pytest
from tiny_models import fit
import torch
import torch.nn.functional as F
from torch import nn

from landscape_widgets.core.data import prepare_data, sample_groups
from landscape_widgets.core.directions import random_directions
from landscape_widgets.core.evaluation import PointEvaluator
from landscape_widgets.core.grids import coarse_to_fine_order, plane
from landscape_widgets.core.landscape import compute_landscape, prepare_evaluator
from landscape_widgets.core.results import empty_landscape, fill_chunk, known_cells, metrics_of
from landscape_widgets.core import sampled
from landscape_widgets.core.memory import CPU_TENSOR_LIMIT, MAX_CHUNK
from landscape_widgets.core.sampled import (FRACTIONS, TRIAL_POINTS, _group_values, estimate, refining_chunks,
                                            sample_values, sampled_evaluator)
from landscape_widgets.plotting.fields import complete_subgrid, fill_nearest, preview_field


@pytest.fixture(scope="module")
def problem():
    """A small classifier on 960 noisy samples: per-sample losses that vary a lot."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(960, 6, generator=g)
    y = ((x[:, 0] + 0.5 * torch.randn(960, generator=g)) > 0).long() + (x[:, 1] > 1).long()
    torch.manual_seed(0)
    return fit(nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)), x, y, 100, 0.03), (x, y)


def test_sample_groups_are_a_seeded_sample_without_repeats():
    x = torch.arange(300.0)[:, None]
    data = prepare_data([(x[i:i + 100], x[i:i + 100, 0].long()) for i in range(0, 300, 100)], torch.device("cpu"))
    sample = sample_groups(data, 0.25, 5, seed=3)
    rows = torch.cat([b[0][:, 0] for b in sample])
    assert sample.sizes == (15,) * 5 and len(set(rows.tolist())) == 75  # 75 distinct samples
    assert torch.equal(torch.cat([b[1] for b in sample]), rows.long())  # inputs and targets stay paired
    again = torch.cat([b[0][:, 0] for b in sample_groups(data, 0.25, 5, seed=3)])
    other = torch.cat([b[0][:, 0] for b in sample_groups(data, 0.25, 5, seed=4)])
    assert torch.equal(rows, again) and not torch.equal(rows, other)
    assert {int(r) // 100 for r in rows} == {0, 1, 2}  # drawn from every batch
    with pytest.raises(ValueError, match="cannot fill"):
        sample_groups(data, 0.01, 5)


def test_dict_batches_are_sampled_too():
    batch = {"input_ids": torch.arange(64)[:, None], "labels": torch.arange(64)}
    sample = sample_groups(prepare_data(batch, torch.device("cpu")), 0.5, 4)
    for group in sample:
        assert torch.equal(group["input_ids"][:, 0], group["labels"])


def test_standard_errors_match_the_actual_errors_over_seeds(problem):
    """(estimate - exact) / standard error over 40 independent samples: mean square near 1."""
    model, data = problem
    ev, _ = prepare_evaluator(model, F.cross_entropy, data, 2)
    coeffs = np.array([[0.0, 0.0], [0.6, -0.4], [-0.9, 0.8]])
    exact = ev.evaluate(coeffs).values
    z = []
    for seed in range(40):
        est = estimate(sampled_evaluator(ev, 1 / 8, groups=8, seed=seed), coeffs, 1 / 8)
        z.append((est["loss"] - exact["loss"]) / est["loss_se"])
    z = np.array(z)
    assert np.isfinite(z).all()
    assert 0.5 < float(np.mean(z**2)) < 2.0, np.mean(z**2, axis=0)
    assert abs(float(z.mean())) < 0.5  # unbiased


def test_one_forward_per_point_gives_the_groups_values(problem):
    model, data = problem
    ev, _ = prepare_evaluator(model, F.cross_entropy, data, 2)
    _assert_groups_match_the_loop(ev)


@pytest.mark.parametrize("loss_fn, per_row", [
    (F.cross_entropy, True),
    (nn.CrossEntropyLoss(label_smoothing=0.1), True),
    (nn.CrossEntropyLoss(ignore_index=1), False),  # labels 1 are left out of the mean
    (nn.CrossEntropyLoss(weight=torch.tensor([1.0, 3.0, 0.5])), False),  # a weighted mean
    (lambda out, y: F.cross_entropy(out, y), False),
])
def test_cross_entropy_groups_come_from_one_call_where_each_rows_loss_is_known(problem, loss_fn, per_row):
    """A plain cross-entropy's group losses are means of its rows' losses, taken from one
    call over all rows; class weights, ignored labels and other losses take one call per
    group: the values are the loop's either way."""
    model, data = problem
    ev, _ = prepare_evaluator(model, loss_fn, data, 2)
    outputs, labels = model(data[0][:50]), data[1][:50]
    assert (ev.objective._row_losses(outputs, labels) is not None) == per_row
    _assert_groups_match_the_loop(ev)


def test_groups_of_unequal_sizes_with_a_user_metric_get_their_own_values(problem):
    model, data = problem
    margin = lambda out, y: (out.gather(1, y[:, None]) - out.mean(1, keepdim=True)).mean()  # noqa: E731
    ev, _ = prepare_evaluator(model, F.cross_entropy, data, 2, metrics={"margin": margin})
    assert ev.metric_names == ("loss", "accuracy", "margin")
    _assert_groups_match_the_loop(ev, groups=7)  # 240 samples: groups of 34 and 35


def _assert_groups_match_the_loop(ev, groups: int = 6) -> None:
    """One forward per point gives every group's values, as a loop over the groups does."""
    sample = sampled_evaluator(ev, 0.25, groups=groups)
    coeffs = np.array([[0.3, 0.1], [-0.5, 0.7]])
    fast, sizes = _group_values(sample, coeffs)
    slow, slow_sizes = sample.evaluate_batches(coeffs, "loop")
    assert sizes == slow_sizes and (groups == 6 or len(set(sizes)) == 2)
    np.testing.assert_allclose(fast.numpy(), slow.double().numpy(), rtol=1e-6)


class ClassesFirst(nn.Module):
    """Logits as ``[classes, samples]``: rows of the outputs are not samples."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).T


def test_outputs_whose_rows_are_not_samples_are_evaluated_group_by_group(problem):
    model, data = problem
    loss = lambda out, y: F.cross_entropy(out.T, y)  # noqa: E731
    ev, _ = prepare_evaluator(ClassesFirst(model), loss, data, 2, accuracy=False)
    _assert_groups_match_the_loop(ev)


def test_estimates_come_first_and_every_point_ends_exact(problem):
    model, data = problem
    grid = plane(num=15)
    chunks = []
    ds = compute_landscape(model, F.cross_entropy, data, grid, backend=refining_chunks,
                           on_chunk=lambda ds, c: chunks.append((c, int(ds["done"].sum()), ds["loss_se"].copy())))
    order, ends = coarse_to_fine_order(grid.shape)
    level0, level1 = set(order[: ends[0]].tolist()), set(order[ends[0]: ends[1]].tolist())
    estimates = [c for c, _, _ in chunks if not c.final]
    assert estimates and all(c.strategy == "sample" for c in estimates)
    exact: set = set()
    for c, _, _ in chunks:  # level 0 estimated, level 0 exact, the rest of level 1 estimated, ...
        idx = set(c.indices.tolist())
        if c.final:
            exact |= idx
        elif idx <= level0:
            assert not exact
        else:
            assert idx <= level1 and level0 <= exact and not idx & exact
            at_level1 = set(exact)
    estimated = set(np.concatenate([c.indices for c in estimates]).tolist())
    assert level0 <= estimated and level1 <= estimated | at_level1 and estimated <= level0 | level1
    assert chunks[0][1] == 0 and np.isfinite(chunks[0][2].values.reshape(-1)[order[: ends[0]]]).all()
    finals = np.concatenate([c.indices for c, _, _ in chunks if c.final])
    assert np.array_equal(np.sort(finals), np.arange(grid.size))  # each point exactly once
    plain = compute_landscape(model, F.cross_entropy, data, grid, strategy="loop")
    np.testing.assert_allclose(ds["loss"].values, plain["loss"].values, rtol=1e-6)
    assert bool(ds["done"].all()) and float(np.abs(ds["loss_se"]).max()) == 0.0
    assert metrics_of(ds) == ("loss", "accuracy")  # the errors are not metrics
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        list(refining_chunks(PointEvaluator(model, F.cross_entropy, data, [torch.ones(163)]), plane(num=3),
                             fractions=(1.5,)))


def test_an_estimate_never_replaces_an_exact_value():
    ds = empty_landscape(plane(num=3))
    fill_chunk(ds, np.array([0, 1]), {"loss": np.array([1.0, 2.0])})
    fill_chunk(ds, np.array([1, 2]), {"loss": np.array([9.0, 3.0]), "loss_se": np.array([0.5, 0.5])}, final=False)
    flat = ds["loss"].values.reshape(-1)
    assert flat[1] == 2.0 and flat[2] == 3.0 and ds["loss_se"].values.reshape(-1)[1] != 0.5
    assert known_cells(ds).reshape(-1)[:3].all() and not ds["done"].values.reshape(-1)[2]


def test_streamed_data_is_computed_exactly_without_estimates(problem):
    model, (x, y) = problem
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=240)
    chunks = []
    compute_landscape(model, F.cross_entropy, loader, plane(num=9), backend=refining_chunks, data_budget=1,
                      on_chunk=lambda ds, c: chunks.append(c))
    assert all(c.final for c in chunks)


def test_cubic_preview_of_the_first_level_is_exact_for_a_quadratic():
    grid = plane(num=41)
    a, b = (ax.values for ax in grid.axes)
    truth = 1.0 + 2 * a[:, None] ** 2 + a[:, None] * b[None, :] + 0.5 * b[None, :] ** 2 - b[None, :]
    order, ends = coarse_to_fine_order(grid.shape)
    known = np.zeros(grid.size, dtype=bool)
    known[order[: ends[0] - 1]] = True  # the first level but one point: nearest fill
    known = known.reshape(grid.shape)
    assert not any(len(axis) for axis in complete_subgrid(known))
    partial = preview_field(np.where(known, truth, np.nan), known, (a, b))
    assert np.isfinite(partial).all() and np.abs(partial - truth).max() > 0.1
    known.reshape(-1)[order[ends[0] - 1]] = True  # the first level complete: 7 x 7 points
    assert [len(axis) for axis in complete_subgrid(known)] == [7, 7]
    np.testing.assert_allclose(preview_field(np.where(known, truth, np.nan), known, (a, b)), truth, atol=1e-5)


def test_a_non_finite_value_in_the_level_falls_back_to_the_nearest_cell():
    grid = plane(num=13)
    a, b = (ax.values for ax in grid.axes)
    order, ends = coarse_to_fine_order(grid.shape)
    values = np.add.outer(a, b)
    values.reshape(-1)[order[3]] = np.nan  # a computed NaN loss
    known = np.zeros(grid.size, dtype=bool)
    known[order[: ends[0]]] = True
    known = known.reshape(grid.shape)
    shown = preview_field(np.where(known, values, np.nan), known, (a, b))
    assert np.isnan(shown.reshape(-1)[order[3]])  # shown as missing, not smeared by the spline
    np.testing.assert_array_equal(shown, fill_nearest(np.where(known, values, np.nan), known))


def test_the_map_veils_estimated_cells_by_their_error_until_they_are_exact(problem):
    from landscape_widgets.widgets.runner import landscape_stream
    from PIL import Image

    from landscape_widgets.widgets.views import VEIL_FULL, VEIL_LEAST, VEIL_MOST, ContourView

    model, data = problem
    ev, _ = prepare_evaluator(model, F.cross_entropy, data, 2)
    grid = plane(num=13)
    view = ContourView()
    seen = []
    for snap in landscape_stream(ev, grid, chunk_size=16):
        view.update(snap.ds)
        veil = np.asarray(Image.open(io.BytesIO(view.veil.image.value))) if view.veil.visible else None
        seen.append((snap.n_done, veil, snap.ds.copy(deep=True), view.widget.title))
    estimated = [s for s in seen if s[1] is not None]
    assert estimated and estimated[0][0] == 0  # estimates drawn before any exact point
    assert "+ 49 estimated (faded)" in estimated[0][3]
    veil, ds = estimated[0][1:3]
    # a white pixel per cell (beta rising upwards), the more opaque the larger the relative
    # standard error of the estimate shown there (the nearest one's), opaque from VEIL_FULL on
    se, loss = (ds[k].values for k in ("loss_se", "loss"))
    assert np.isfinite(se).sum() == 49
    rel = fill_nearest(np.where(np.isfinite(se), se / loss, np.nan), np.isfinite(se))
    expected = VEIL_LEAST + (VEIL_MOST - VEIL_LEAST) * np.minimum(rel / VEIL_FULL, 1.0)
    assert veil.shape == (*grid.shape[::-1], 4) and (veil[..., :3] == 255).all()
    np.testing.assert_allclose(veil[::-1, :, 3].T / 255, expected, atol=0.5 / 255)
    assert np.ptp(expected) > 0.01  # the errors differ from cell to cell
    assert seen[-1][0] == grid.size and seen[-1][1] is None and "estimated" not in seen[-1][3]


def _level1_estimates(chunks, grid):
    """Indices, loss estimates and standard errors of the estimated level-1 points."""
    order, ends = coarse_to_fine_order(grid.shape)
    mine = [c for c in chunks if not c.final and np.isin(c.indices, order[ends[0]: ends[1]]).all()]
    return tuple(np.concatenate([c.indices for c in mine] if i == 0 else [c.values[k] for c in mine])
                 for i, k in enumerate((None, "loss", "loss_se")))


def test_level_one_estimates_are_exact_where_the_samples_error_is_quadratic():
    """A linear model with a squared loss: every sample's loss, so the sample's error, is
    quadratic over the plane, which the cubic interpolation of the exact level 0 carries
    exactly, so the corrected estimates are the exact values (raw ones are far off)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(640, 5, generator=g)
    y = x @ torch.randn(5, 1, generator=g) + torch.randn(640, 1, generator=g) ** 3  # heavy-tailed noise
    torch.manual_seed(0)
    model = nn.Linear(5, 1)
    grid = plane(num=25)
    directions = random_directions(model, 2, seed=0)
    chunks = []
    ds = compute_landscape(model, F.mse_loss, (x, y), grid, directions, backend=refining_chunks,
                           on_chunk=lambda ds, c: chunks.append(c))
    idx, est, se = _level1_estimates(chunks, grid)
    exact = ds["loss"].values.reshape(-1)[idx]
    assert len(idx) > 80
    np.testing.assert_allclose(est, exact, rtol=2e-5)  # float32 forwards
    assert np.all(se <= 2e-5 * exact)  # every group's corrected values are exact too
    raw = estimate(sampled_evaluator(PointEvaluator(model, F.mse_loss, (x, y), directions), FRACTIONS[1], 8, 0),
                   grid.coords(idx), FRACTIONS[1])
    assert np.median(np.abs(raw["loss"] - exact) / exact) > 0.05


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_level_one_estimates_are_corrected_by_the_samples_error_on_level_zero(problem, seed):
    """A ReLU classifier: the corrected level-1 estimates are many times closer to the exact
    values than the sample's raw values, and their standard errors are honest."""
    model, data = problem
    grid = plane(num=25)
    directions = random_directions(model, 2, seed=seed)
    chunks = []
    ds = compute_landscape(model, F.cross_entropy, data, grid, directions, backend=refining_chunks,
                           on_chunk=lambda ds, c: chunks.append(c))
    idx, est, se = _level1_estimates(chunks, grid)
    exact = ds["loss"].values.reshape(-1)[idx]
    raw = estimate(sampled_evaluator(PointEvaluator(model, F.cross_entropy, data, directions), FRACTIONS[1], 8, 0),
                   grid.coords(idx), FRACTIONS[1])  # level 1's sample
    error, raw_error = np.abs(est - exact), np.abs(raw["loss"] - exact)
    assert np.median(error) < np.median(raw_error) / 5
    z = error / se
    assert 0.2 < np.median(z) < 2 and np.percentile(z, 90) < 4


class ConvNet(nn.Module):
    """Conv, BatchNorm (running statistics), a residual block and a linear head on 6x6 images."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.block = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x)))
        return self.head((h + torch.relu(self.block(h))).mean((2, 3)))


class Recurrent(nn.Module):
    """An LSTM classifier of token sequences (vmap has no batching rule for ``aten::lstm``)."""

    def __init__(self):
        super().__init__()
        self.emb, self.rnn, self.head = nn.Embedding(20, 8), nn.LSTM(8, 12, batch_first=True), nn.Linear(12, 3)

    def forward(self, x):
        return self.head(self.rnn(self.emb(x))[0][:, -1])


def _images():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(480, 1, 6, 6, generator=g)
    return x, (x[:, 0, :3].mean((1, 2)) > 0).long() + (x[:, 0, 3:].mean((1, 2)) > 0.3).long()


@pytest.mark.parametrize("case", ["mlp", "convnet"])
def test_vmapped_sample_forwards_give_the_loops_group_values(problem, case):
    """The batched way (points through vmapped forwards, in pieces of the memory plan)
    gives the groups' values of the loop, on a ReLU MLP and a Conv/BatchNorm/residual net."""
    if case == "mlp":
        model, data = problem
    else:
        torch.manual_seed(0)
        model, data = ConvNet().eval(), _images()
    ev, _ = prepare_evaluator(model, F.cross_entropy, data, 2)
    sample = sampled_evaluator(ev, 0.25, groups=6)
    coeffs = np.random.default_rng(0).uniform(-1, 1, (40, 2))
    loop = sample_values(sample, coeffs, "loop")
    batched = sample_values(sample, coeffs, "batched")
    assert sample.batched_failed is None
    assert loop.shape == (2, 40, 6)
    np.testing.assert_allclose(batched.numpy(), loop.numpy(), rtol=1e-5, atol=1e-6)


def test_the_vmapped_forwards_take_as_many_points_as_the_cpu_tensor_limit_allows(problem):
    model, data = problem
    ev, _ = prepare_evaluator(model, F.cross_entropy, data, 2)
    per_point_row = 4 * ev.activation  # float32 elements of the widest activation
    assert per_point_row * 16 * MAX_CHUNK < CPU_TENSOR_LIMIT and ev.points_per_forward(16) == MAX_CHUNK
    for rows in (100, 960, 5000):
        k = ev.points_per_forward(rows)
        assert CPU_TENSOR_LIMIT / 2 < k * rows * per_point_row <= CPU_TENSOR_LIMIT, rows
    assert ev.points_per_forward(10**7) == 1  # never none
    ev.memory_budget = 2 * 4 * ev.objective.layout.size * 3  # room for three copies of the parameters
    assert ev.points_per_forward(16) == 3


@pytest.mark.parametrize("case", ["convnet", "recurrent"])
def test_auto_times_both_ways_once_keeps_every_value_and_takes_the_faster(case, monkeypatch):
    """``auto`` on a kind of sample not timed before: trial points of each way (their
    values kept, none computed twice), the rest the faster way; a later call of the same
    kind runs no trials. Where vmap cannot run the model (an LSTM), the loop."""
    monkeypatch.setattr(sampled, "_SAMPLE_SPEEDS", {})
    torch.manual_seed(0)
    if case == "convnet":
        model, data = ConvNet().eval(), _images()
    else:
        x = torch.randint(0, 20, (480, 7))
        model, data = Recurrent(), (x, (x[:, 0] % 3))
    ev, _ = prepare_evaluator(model, F.cross_entropy, data, 2)
    sample = sampled_evaluator(ev, 0.25, groups=6)
    coeffs = np.random.default_rng(1).uniform(-1, 1, (50, 2))
    calls = []
    group_values = sampled._group_values
    monkeypatch.setattr(sampled, "_group_values",
                        lambda ev, c, strategy="loop": (calls.append((len(c), strategy)), group_values(ev, c, strategy))[1])
    values = sample_values(sample, coeffs, "auto")
    np.testing.assert_allclose(values.numpy(), sample_values(sample, coeffs, "loop").numpy(), rtol=1e-5, atol=1e-6)
    speeds = sampled._SAMPLE_SPEEDS[sample.speed_key()]
    faster = "batched" if speeds["batched"] < speeds["loop"] else "loop"
    trials = calls[:-2]  # the last two: the rest, then the reference loop
    assert [n for n, _ in trials][-2:] == [TRIAL_POINTS, TRIAL_POINTS]
    assert [s for _, s in trials][-2:] == ["batched", "loop"]
    assert sum(n for n, _ in calls[:-1]) == 50 and calls[-2][1] == faster  # every point once
    if case == "recurrent":
        assert sample.batched_failed and "lstm" in sample.batched_failed and speeds["batched"] == np.inf
    calls.clear()
    sample_values(sample, coeffs, "auto")
    assert calls == [(50, faster)]  # timed before: no trials


def test_a_refining_run_asks_its_strategy_of_the_samples_too(problem, monkeypatch):
    model, data = problem
    asked = []
    original = sampled.sample_values
    monkeypatch.setattr(sampled, "sample_values",
                        lambda s, c, strategy="auto": (asked.append(strategy), original(s, c, strategy))[1])
    for strategy in ("loop", "batched"):
        asked.clear()
        ds = compute_landscape(model, F.cross_entropy, data, plane(num=15), strategy=strategy,
                               backend=refining_chunks)
        assert asked and set(asked) == {strategy} and ds["done"].all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_sample_values_each_way_match_the_cpu_loop():
    """On a GPU both ways (and auto's choice) give the CPU loop's group values."""
    torch.manual_seed(0)
    model, data = ConvNet().eval(), _images()
    coeffs = np.random.default_rng(2).uniform(-1, 1, (40, 2))
    directions = random_directions(model, 2, seed=0)
    cpu = sampled_evaluator(PointEvaluator(model, F.cross_entropy, data, directions), 0.25, groups=6)
    reference = sample_values(cpu, coeffs, "loop").numpy()
    gpu = sampled_evaluator(PointEvaluator(model, F.cross_entropy, data, directions, device="cuda"), 0.25, groups=6)
    for strategy in ("loop", "batched", "auto"):
        values = sample_values(gpu, coeffs, strategy)
        assert values.device.type == "cuda" and gpu.batched_failed is None
        np.testing.assert_allclose(values.cpu().numpy(), reference, rtol=1e-4, atol=1e-5)
