"""Widget logic without a browser: drive the controls' traits, read the marks' data."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.interpolate import RegularGridInterpolator
from torch import nn

from landscape_widgets import compute_landscape, make_grid
from landscape_widgets.app.serve import CHECKOUT_NOTEBOOK, UNUSED_EXTENSIONS, app_notebook, voila_command
from landscape_widgets.analysis.curvature import convexity_map, hessian_eigenvalues
from landscape_widgets.core.directions import interpolation_direction
from landscape_widgets.core.grids import coarse_to_fine_order, plane
from landscape_widgets.core.params import flatten_params
from landscape_widgets.core.results import empty_landscape, fill_chunk
from landscape_widgets.widgets import LandscapeExplorer, Runner, format_progress
from landscape_widgets.core.sampled import FRACTIONS
from landscape_widgets.widgets.explorer import MAX_NUM, PREVIEW_SECONDS
from landscape_widgets.widgets.zoom import zoom_region
from landscape_widgets.plotting.fields import fill_nearest
from landscape_widgets.widgets.views import (
    ContourView,
    contour_levels,
    contour_lines,
    metric_values,
    value_text,
)


@pytest.fixture(scope="module")
def problem():
    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    return model, F.cross_entropy, (x, y)


class SlowNet(nn.Sequential):
    """Sleeps 1 ms per forward, so that a run lasts long enough to be interrupted;
    counts its forwards in ``SlowNet.forwards``."""

    forwards = 0

    def forward(self, x):
        SlowNet.forwards += 1
        time.sleep(0.001)
        return super().forward(x)


def slow_explorer(problem, **kwargs) -> LandscapeExplorer:
    """A 41x41 run of at least 1.7 s (one point per forward with ``strategy="loop"``)."""
    model, loss_fn, data = problem
    slow = SlowNet(*model)
    ex = LandscapeExplorer(slow, loss_fn, data, grids={"2d": (1.0, 41)}, strategy="loop",
                           debounce=0.05, max_rate=1000, **kwargs)
    while ex.result is None or not ex.result["done"].values.any():
        time.sleep(0.005)
    return ex


def explorer(problem, **kwargs) -> LandscapeExplorer:
    model, loss_fn, data = problem
    kwargs = {"grids": {"1d": (1.0, 9), "2d": (1.0, 9), "3d": (1.0, 5)}, "debounce": 0.05, **kwargs}
    return LandscapeExplorer(model, loss_fn, data, **kwargs)


def reference(problem, seed: int, shape) -> np.ndarray:
    model, loss_fn, data = problem
    grid = make_grid([(-1.0, 1.0)] * len(shape), list(shape))
    return compute_landscape(model, loss_fn, data, grid, seed=seed, device="cpu")["loss"].values


# -- pure helpers ----------------------------------------------------------------------
def test_fill_nearest_copies_the_nearest_known_cell_and_keeps_known_nan():
    values = np.array([[1.0, 0.0, 0.0, 4.0], [0.0, 0.0, 0.0, 0.0], [7.0, 0.0, 0.0, np.nan]])
    known = np.zeros_like(values, dtype=bool)
    known[0, 0] = known[0, 3] = known[2, 0] = known[2, 3] = True
    filled = fill_nearest(values, known)
    assert filled[0, 1] == 1.0 and filled[0, 2] == 4.0 and filled[2, 1] == 7.0
    assert np.isnan(filled[2, 3]) and np.isnan(filled[2, 2])
    assert np.isnan(fill_nearest(values, np.zeros_like(known))).all()


def test_contours_of_a_ramp_are_straight_lines_at_the_levels():
    x, y = np.linspace(-1, 1, 11), np.linspace(-1, 1, 7)
    z = np.repeat(x[:, None], len(y), axis=1)  # z = alpha
    levels = contour_levels(z, n=3)
    np.testing.assert_allclose(levels, [-0.5, 0.0, 0.5])
    cx, cy = contour_lines(x, y, z, levels)
    assert cx.shape[0] == 3
    np.testing.assert_allclose(np.sort(cx[:, 0]), levels, atol=1e-12)
    np.testing.assert_allclose(cx.max(axis=1) - cx.min(axis=1), 0.0, atol=1e-12)
    assert cy.min() == -1.0 and cy.max() == 1.0


def test_partial_contours_of_a_plane_are_exact_from_the_coarse_points():
    grid = plane(num=17)
    ds = empty_landscape(grid)
    coarse = coarse_to_fine_order(grid.shape)[0][:40]
    c = grid.coords(coarse)
    fill_chunk(ds, coarse, {"loss": 2.0 + c[:, 0] + 0.5 * c[:, 1]})  # a tilted plane
    view = ContourView()
    view.update(ds)
    x, y = view.contours.x, view.contours.y
    assert x.shape[0] > 0
    level = 2.0 + x + 0.5 * y  # constant along each contour line
    np.testing.assert_allclose(level - level[:, :1], 0.0, atol=1e-9)
    assert np.isfinite(view.heatmap.color).all()  # nearest fill: no gaps in the coarse picture


def test_non_finite_computed_cells_are_drawn_as_such():
    grid = plane(num=5)
    ds = empty_landscape(grid, ("loss",))
    loss = np.arange(grid.size, dtype=float)
    loss[[3, 7]] = [np.nan, np.inf]
    fill_chunk(ds, np.arange(grid.size - 1), {"loss": loss[:-1]})  # the last cell not computed
    view = ContourView()
    view.update(ds)
    coords = grid.coords(np.array([3, 7]))
    np.testing.assert_allclose(np.c_[view.missing.x, view.missing.y], coords)  # not the uncomputed cell
    assert view.missing.colors[0] != view.widget.background_style["fill"]
    assert view.missing.default_size >= 4


def test_metric_values_hide_points_not_done_and_take_logs():
    grid = plane(num=3)
    ds = empty_landscape(grid)
    fill_chunk(ds, np.array([0, 4]), {"loss": np.array([10.0, 100.0]), "accuracy": np.array([0.5, 1.0])})
    loss, label = metric_values(ds, "log-loss")
    assert label == "log10(loss)"
    assert loss[0, 0] == pytest.approx(1.0) and loss[1, 1] == pytest.approx(2.0)
    assert np.isnan(loss).sum() == 7
    acc, _ = metric_values(ds, "accuracy", "log")
    assert acc[1, 1] == 0.0
    with pytest.raises(ValueError, match="metric"):
        metric_values(ds, "loss2")


def test_format_progress():
    assert format_progress(50, 100, 2.0, "cpu") == "50/100 points · 25 pt/s · 2 s left · device cpu"
    assert "done in 4.00 s" in format_progress(100, 100, 4.0, "cuda")
    # a stored result was not computed now: no rate, no time
    assert format_progress(100, 100, 0.02, "cpu", source="from the run store") == "100/100 points · from the run store"
    assert format_progress(1200, 2601, 1.0, "cpu").startswith("1,200/2,601 points")  # as "2,601 points" elsewhere


# -- the runner ------------------------------------------------------------------------
def counting_work(tag, n, delay, log=None):
    def work(cancel: threading.Event):
        if log is not None:
            log.append(tag)
        for i in range(n):
            if cancel.is_set():
                return
            time.sleep(delay)
            yield (tag, i)
    return work


def test_runner_never_draws_a_stale_generation_after_a_restart():
    runner = Runner(max_rate=1000, debounce=0)
    drawn = []
    runner.start(counting_work("old", 1000, 0.002), drawn.append)
    time.sleep(0.1)
    runner.start(counting_work("new", 20, 0.001), drawn.append)
    assert runner.wait(30)
    tags = [t for t, _ in drawn]
    first_new = tags.index("new")
    assert "old" in tags[:first_new] and "old" not in tags[first_new:]
    assert drawn[-1] == ("new", 19)


def test_runner_throttles_draws_but_always_draws_the_last_snapshot():
    runner = Runner(max_rate=10, debounce=0)
    drawn = []
    start = time.monotonic()
    runner.start(counting_work("a", 200, 0.001), drawn.append)
    assert runner.wait(30)
    elapsed = time.monotonic() - start
    assert len(drawn) <= int(elapsed * 10) + 2 < 200
    assert drawn[-1] == ("a", 199)


def test_runner_debounce_starts_only_the_last_request_and_stop_cancels():
    runner = Runner(debounce=0.2)
    started, drawn = [], []
    for tag in ("a", "b", "c"):
        runner.request(counting_work(tag, 3, 0.0, started), drawn.append)
    assert runner.wait(30)
    assert started == ["c"] and drawn[-1] == ("c", 2)
    runner.request(counting_work("d", 3, 0.0, started), drawn.append)
    runner.stop()
    assert runner.wait(30) and started == ["c"]


def test_exiting_while_a_run_computes_in_torch_ends_cleanly():
    """The interpreter exiting while a worker thread was inside torch aborted the process
    (exit code 134, 'terminate called without an active exception'); now every run is
    cancelled and waited for at exit."""
    import sys
    import textwrap

    script = textwrap.dedent("""
        import sys, time, torch
        from landscape_widgets.widgets.runner import Runner
        def work(cancel):
            x = torch.randn(600, 600)
            while True:
                for _ in range(20):
                    x = torch.tanh(x @ x)
                yield x
        Runner().start(work, lambda snapshot: None)
        time.sleep(0.5)
        sys.exit(0)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def test_runner_reports_errors_from_the_worker():
    errors = []
    runner = Runner(debounce=0, on_error=errors.append)

    def broken(cancel):
        yield 1
        raise RuntimeError("boom")

    runner.start(broken, lambda s: None)
    runner.wait(30)
    assert isinstance(runner.error, RuntimeError) and errors == [runner.error]


# -- the explorer ----------------------------------------------------------------------
def test_explorer_2d_draws_the_same_values_as_compute_landscape(problem):
    ex = explorer(problem, seed=3)
    assert ex.wait(120)
    heatmap, contours = ex.views[0].heatmap, ex.views[0].contours
    expected = reference(problem, 3, (9, 9))
    np.testing.assert_allclose(heatmap.color, expected.T, rtol=1e-5)
    np.testing.assert_allclose(heatmap.x, np.linspace(-1, 1, 9))
    assert contours.x.shape[0] > 0
    assert "81/81 points" in ex.progress.text.value and "device cpu" in ex.progress.text.value
    assert "filter-normalized" in ex.views[0].x_axis.label
    ex.metric.value = "accuracy"  # redraw only: no new run
    np.testing.assert_allclose(heatmap.color, ex.result["accuracy"].values.T)
    assert not ex.runner.running


def test_slider_change_cancels_the_run_and_only_the_new_result_is_drawn(problem):
    drawn_seeds = []
    ex = slow_explorer(problem)
    original = ex._draw
    ex._draw = lambda snap: (drawn_seeds.append(snap.ds.attrs["seed"]), original(snap))
    assert not ex.result["done"].values.all()  # seed 0 is still running
    ex.seed.value = 7
    assert ex.wait(300)
    assert drawn_seeds[-1] == 7 and 0 not in drawn_seeds[drawn_seeds.index(7):]
    assert ex.result.attrs["seed"] == 7 and ex.result["done"].values.all()
    assert list(ex.cache) == [ex.settings]  # the cancelled run was not cached
    np.testing.assert_allclose(ex.views[0].heatmap.color, reference(problem, 7, (41, 41)).T, rtol=1e-5)


def test_returning_to_cached_settings_redraws_without_computing(problem):
    ex = explorer(problem)
    ex.wait(120)
    first = np.array(ex.views[0].heatmap.color)
    ex.seed.value = 1
    ex.wait(120)
    assert not np.allclose(ex.views[0].heatmap.color, first)
    draws = ex.runner.n_draws
    ex.seed.value = 0
    assert not ex.runner.running and ex.runner.n_draws == draws
    np.testing.assert_array_equal(ex.views[0].heatmap.color, first)
    # a result shown again was not computed now: no rate (it would be points / redraw time)
    assert ex.progress.text.value == "81/81 points · from cache (computed before)"


def test_explorer_1d_and_3d_views(problem):
    ex = explorer(problem, view="1d", seed=2)
    ex.wait(120)
    line = ex.views[0].loss_line
    np.testing.assert_allclose(line.y, reference(problem, 2, (9,)), rtol=1e-5)
    assert len(ex.views[0].acc_line.y) == 9
    assert ex.scale.description == "loss scale"  # no colours in 1-D: the toggle scales the loss axis
    ex.view.value = "3d"
    assert ex.num.value == 5 and ex.scale.description == "colour scale"
    ex.wait(120)
    slices, surface, iso = ex.views
    expected = reference(problem, 2, (5, 5, 5))
    np.testing.assert_allclose(surface.mesh.y, expected[:, :, 2].ravel(), rtol=1e-5)
    assert ex.plots.children == (slices.widget, surface.widget, iso.widget)
    # the isosurfaces' vertices lie on grid edges where the values, linear along the edge, cross their levels
    axes = [ex.result[n].values for n in ("alpha", "beta", "gamma")]
    inside = RegularGridInterpolator(axes, expected)
    for mesh, level in zip(iso.meshes, iso.levels):
        assert expected.min() < level < expected.max()
        verts = np.stack([mesh.x, mesh.y, mesh.z], 1)
        assert len(verts) > 3
        np.testing.assert_allclose(inside(np.clip(verts, -1, 1)), level, rtol=1e-4)
    # three orthogonal slices through the centre on one colour scale spanning the volume
    ab, ag, bg = (v.heatmap.color for v in slices.views)
    np.testing.assert_allclose(ab, expected[:, :, 2].T, rtol=1e-5)
    np.testing.assert_allclose(ag, expected[:, 2, :].T, rtol=1e-5)
    np.testing.assert_allclose(bg, expected[2, :, :].T, rtol=1e-5)
    assert all(v.color_scale is slices.color_scale for v in slices.views)
    assert (slices.color_scale.min, slices.color_scale.max) == pytest.approx((expected.min(), expected.max()))
    assert [v.widget.title for v in slices.views] == ["slice gamma = 0", "slice beta = 0", "slice alpha = 0"]
    assert "5x5x5 grid, 125/125 points" in slices.heading.value
    assert "gamma (direction 3" in slices.views[1].y_axis.label
    # moving a slider moves its slice
    slices.sliders["gamma"].value = 0
    np.testing.assert_allclose(slices.views[0].heatmap.color, expected[:, :, 0].T, rtol=1e-5)
    assert slices.views[0].widget.title == "slice gamma = -1"
    # the trained network (the centre cross) is drawn only in slices through it
    assert [v.centre.visible for v in slices.views] == [False, True, True]
    slices.sliders["gamma"].value = 2
    assert slices.views[0].centre.visible
    assert slices.color_axis.label == "loss" and slices.color_bar.marks[0].scales["color"] is slices.color_scale


def test_explorer_reaches_every_bias_bn_rule_and_parameter_group(problem):
    model, loss_fn, data = problem
    ex = explorer(problem, view="1d")
    ex.wait(120)
    assert tuple(ex.bias_bn.options) == ("ignore", "theta", "random")
    assert [sel for _label, sel in ex.params.options] == ["all", "0.*", "2.*"]
    objective = ex.objectives["all"]
    for rule in ("theta", "random"):
        ex.bias_bn.value = rule
        ex.wait(120)
        expected = compute_landscape(model, loss_fn, data, make_grid([(-1.0, 1.0)], 9), bias_bn=rule)
        np.testing.assert_allclose(ex.views[0].loss_line.y, expected["loss"].values, rtol=1e-5)
        assert ex.result.attrs["bias_bn"] == rule
    ex.params.value = "2.*"
    ex.wait(120)
    expected = compute_landscape(model, loss_fn, data, make_grid([(-1.0, 1.0)], 9), bias_bn="random", params="2.*")
    np.testing.assert_allclose(ex.views[0].loss_line.y, expected["loss"].values, rtol=1e-5)
    assert ex.result.attrs["n_params"] == 8 * 3 + 3
    assert ex.objectives["all"] is objective  # prepared once, reused across control changes


def test_explorer_direction_kinds_draw_their_planes(problem):
    model, loss_fn, data = problem
    torch.manual_seed(5)
    other = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    path = [flatten_params(model) + 0.1 * k * torch.randn(flatten_params(model).numel()) for k in (3, 2, 1)]
    path.append(flatten_params(model))
    ex = explorer(problem, view="1d", trajectory=path, model2=other)
    ex.wait(120)
    assert list(ex.directions.options) == ["random", "hessian", "axes", "trajectory", "two models"]
    assert ex.convexity_button.layout.display == "none"  # 1-D view
    grid = make_grid([(-1.0, 1.0)], 9)
    # two models: alpha = 1 is the second model, the line is the interpolation
    ex.directions.value = "two models"
    ex.wait(120)
    expected = compute_landscape(model, loss_fn, data, grid, [interpolation_direction(model, other)])
    np.testing.assert_allclose(ex.views[0].loss_line.y, expected["loss"].values, rtol=1e-5)
    assert "second model" in ex.views[0].x_axis.label
    # axes: the line along the largest parameter, whose value alpha changes
    ex.directions.value = "axes"
    ex.wait(120)
    largest = int(flatten_params(model).abs().argmax())
    axis = torch.zeros(flatten_params(model).numel())
    axis[largest] = 1.0
    expected = compute_landscape(model, loss_fn, data, grid, [axis])
    np.testing.assert_allclose(ex.views[0].loss_line.y, expected["loss"].values, rtol=1e-5)
    assert "coordinate axis 1" in ex.views[0].x_axis.label and ex.result.attrs["axes"] == f"[{largest}]"  # JSON in attrs
    # Hessian: the unit top eigenvector; the curve's curvature at 0 is the top eigenvalue
    ex.directions.value = "hessian"
    ex.wait(120)
    top = hessian_eigenvalues(model, loss_fn, data, k=1, which="top")["top"][0]
    y = np.asarray(ex.views[0].loss_line.y)
    h = 0.25
    second = (y[5] - 2 * y[4] + y[3]) / h**2
    assert second == pytest.approx(top, rel=0.05)
    assert "Hessian eigenvector 1" in ex.views[0].x_axis.label
    assert ex.result.attrs["directions"] == "hessian"
    # trajectory: the first checkpoint lies within the drawn range (coordinate <= 1)
    ex.view.value = "2d"
    ex.directions.value = "trajectory"
    ex.wait(120)
    assert ex.result.attrs["directions"] == "trajectory" and "PC1" in ex.views[0].x_axis.label
    # the convexity map is of the plane on screen
    panel = ex.show_convexity(num=3)
    assert panel.wait(120)
    directions, _ = ex.plane(ex.settings)
    expected = convexity_map(model, loss_fn, data, plane(num=3), directions, steps=20)
    np.testing.assert_allclose(panel.result["convexity"].values, expected["convexity"].values, rtol=1e-6)
    with pytest.raises(ValueError, match="trajectory needs trajectory="):
        explorer(problem, directions="trajectory", autostart=False)


def test_stop_keeps_the_partial_picture(problem):
    ex = slow_explorer(problem)
    assert not ex.stop_button.disabled  # offered while the run is in flight
    ex.stop()
    ex.wait(60)
    done = int(ex.result["done"].values.sum())
    assert 0 < done < 41 * 41
    assert "stopped" in ex.progress.text.value and not ex.cache
    assert ex.stop_button.disabled


def test_stop_freezes_the_picture_and_says_when_it_shows_previous_settings(problem):
    ex = slow_explorer(problem)
    ex.stop()
    frozen = int(ex.result["done"].values.sum())
    time.sleep(0.3)  # the chunk in flight finishes, but not into the picture on screen
    assert int(ex.result["done"].values.sum()) == frozen
    assert f"stopped at {frozen:,}/" in ex.progress.text.value
    ex.seed.value = 7  # a new run is pending (debounce) ...
    ex.stop()  # ... and stopped before it starts: the picture is still seed 0's
    assert "previous settings (seed 0)" in ex.progress.text.value
    assert ex.result.attrs["seed"] == 0


def test_stop_says_so_at_once_while_a_slow_redraw_holds_the_lock(problem):
    """A redraw in flight (slow at a large 3-D grid) holds the runner's lock; Stop's
    message shows before it ends, and the redraw does not overwrite it."""
    ex = slow_explorer(problem)
    in_draw = threading.Event()
    redraw = ex._redraw

    def slow_redraw():
        if threading.current_thread().name == "landscape-runner":
            in_draw.set()
            time.sleep(1.0)
        redraw()

    ex._redraw = slow_redraw
    assert in_draw.wait(30)
    stopper = threading.Thread(target=ex.stop)
    clicked = time.monotonic()
    stopper.start()
    while "stopped at" not in ex.progress.text.value and time.monotonic() < clicked + 5:
        time.sleep(0.005)
    shown_after = time.monotonic() - clicked
    assert stopper.is_alive()  # the message came while the redraw still held the lock
    stopper.join(30)
    ex.wait(60)
    assert shown_after < 0.5, shown_after
    frozen = int(ex.result["done"].values.sum())
    assert ex.progress.text.value == f"stopped at {frozen:,}/{41 * 41:,} points"


def test_start_after_stop_goes_on_from_the_points_computed(problem):
    """Stop keeps the partial result; the titles say it stopped; Start (offered then)
    computes only the missing points, and the result equals a complete run's."""
    ex = slow_explorer(problem)
    ex.stop()
    ex.wait(60)
    done = int(ex.result["done"].values.sum())
    assert 0 < done < 41 * 41
    assert ex.views[0].widget.title.endswith(f"{done:,}/{41 * 41:,} points (stopped)")
    assert ex.start_button.layout.display is None and "go on" in ex.start_button.tooltip
    assert ex.stop_button.layout.display == "none"  # Start takes Stop's place: the other buttons stay put
    SlowNet.forwards = 0
    ex.start_button.click()
    assert ex.start_button.layout.display == "none" and ex.stop_button.layout.display is None
    assert ex.wait(120) and bool(ex.result["done"].all())
    # one forward a point, and the run's set-up makes at most two of its own
    assert SlowNet.forwards <= 41 * 41 - done + 2
    assert "stopped" not in ex.result.attrs and "(stopped)" not in ex.views[0].widget.title
    np.testing.assert_allclose(ex.result["loss"].values, reference(problem, 0, (41, 41)), rtol=1e-5, atol=1e-7)
    assert ex.settings in ex.cache and not ex.stopped


def test_coming_back_to_stopped_settings_goes_on_from_them(problem):
    ex = slow_explorer(problem)
    ex.stop()
    ex.wait(60)
    # kept: the points done when the run ended (the chunk in flight at Stop included)
    done = int(ex.stopped[ex.settings]["done"].values.sum())
    assert done >= int(ex.result["done"].values.sum())
    SlowNet.forwards = 0
    ex.seed.value = 3  # another plane: computed from scratch ...
    assert ex.wait(120)
    scratch, SlowNet.forwards = SlowNet.forwards, 0
    ex.seed.value = 0  # ... and back: only the missing points of seed 0
    assert ex.wait(120) and bool(ex.result["done"].all())
    assert SlowNet.forwards == scratch - done
    np.testing.assert_allclose(ex.result["loss"].values, reference(problem, 0, (41, 41)), rtol=1e-5, atol=1e-7)


def test_a_run_cut_short_by_a_control_change_is_gone_on_from_later(problem):
    """No Stop: a control change supersedes the run, whose points are kept; coming back
    computes only the rest. Stop before the new run starts marks the old picture stopped."""
    ex = slow_explorer(problem)
    seed0 = ex.settings
    ex.seed.value = 3
    ex.stop()  # before seed 3's run started (debounce): the picture is still seed 0's
    assert "previous settings (seed 0)" in ex.progress.text.value
    assert ex.views[0].widget.title.endswith("(stopped)") and ex.start_button.layout.display is None
    assert "controls" in ex.start_button.tooltip
    ex.wait(60)
    kept = int(ex.stopped[seed0]["done"].values.sum())
    assert 0 < kept < 41 * 41
    SlowNet.forwards = 0
    ex.start_button.click()  # seed 3, from scratch
    assert ex.wait(120) and bool(ex.result["done"].all())
    scratch, SlowNet.forwards = SlowNet.forwards, 0
    ex.seed.value = 0
    assert ex.wait(120) and bool(ex.result["done"].all())
    assert SlowNet.forwards == scratch - kept, (SlowNet.forwards, scratch, kept)
    np.testing.assert_allclose(ex.result["loss"].values, reference(problem, 0, (41, 41)), rtol=1e-5, atol=1e-7)


def test_stop_button_is_offered_only_while_a_run_is_pending_or_in_flight(problem):
    ex = explorer(problem)
    ex.wait(120)
    assert ex.stop_button.disabled  # finished
    ex.seed.value = 1
    assert not ex.stop_button.disabled  # pending (debounce), then running
    ex.wait(120)
    assert ex.stop_button.disabled
    ex.seed.value = 0  # from the cache: nothing runs
    assert ex.stop_button.disabled


def test_waiting_empties_the_bar_and_a_disabled_stop_is_not_coloured(problem):
    ex = explorer(problem)
    assert ex.wait(120)
    assert ex.progress.bar.value == ex.progress.bar.max  # complete
    assert ex.stop_button.disabled and ex.stop_button.button_style == ""
    ex.seed.value = 1  # pending (debounce): nothing of the new run is done yet
    assert ex.progress.bar.value == 0 and "waiting" in ex.progress.text.value
    assert not ex.stop_button.disabled and ex.stop_button.button_style == "warning"
    assert ex.wait(120)


def test_x_ticks_are_written_exactly():
    """Tick labels are the tick values: 0.25 steps read 0.25, 0.75 (not 0.3, 0.8)."""
    from landscape_widgets.widgets.views import LineView, exact_tick_format, set_x_ticks, set_y_ticks

    assert exact_tick_format(np.array([-0.75, -0.5, 0.25, 1.0])) == ",.2f"
    assert exact_tick_format(np.array([-15.0, -12.5, 0.0, 2.5])) == ",.1f"
    assert exact_tick_format(np.array([-1.0, 0.0, 2.0])) == ",.0f"
    assert exact_tick_format(np.array([0.125, 0.5])) == ",.3f"
    ex = ContourView()
    assert list(ex.x_axis.tick_values) == [-0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0]
    assert ex.x_axis.tick_format == ",.2f"
    line = LineView()
    torch.manual_seed(0)
    ds = compute_landscape(nn.Linear(2, 1), F.mse_loss, (torch.randn(8, 2), torch.randn(8, 1)),
                           make_grid([(-1.5, 1.5)], [7]), seed=0)
    line.update(ds)
    ticks = np.asarray(line.x_axis.tick_values)
    assert -1.5 < ticks.min() and ticks.max() < 1.5  # both corners left to the loss and accuracy axes
    assert not line.widget.display_toolbar and not ContourView().widget.display_toolbar  # no icons over the title
    decimals = int(line.x_axis.tick_format[2:-1])
    np.testing.assert_allclose([float(f"{t:.{decimals}f}") for t in ticks], ticks, rtol=0, atol=1e-12)
    # the loss axis: round ticks, about one per 40 px, not crowded, from the last at or below
    # the values shown to the first at or above them, which bound the axis too
    short = LineView(height="270px")
    short.update(ds)
    loss = ds["loss"].values
    ticks = np.asarray(short.loss_axis.tick_values)
    assert 3 <= len(ticks) <= 170 // 40 + 1
    assert ticks[0] <= loss.min() < ticks[1] and ticks[-2] < loss.max() <= ticks[-1]
    assert (short.loss_scale.min, short.loss_scale.max) == (ticks[0], ticks[-1])
    for values, domain in (([0.02, 2.9], (0.0, 3.0)), ([2.103, 2.29], (2.1, 2.3))):
        set_y_ticks(short.loss_axis, np.array(values), 170)  # a loss near 0 reads from 0, one near 2 not
        np.testing.assert_allclose((short.loss_scale.min, short.loss_scale.max), domain, rtol=1e-12)
    decimals = int(short.loss_axis.tick_format[2:-1])
    np.testing.assert_allclose([float(f"{t:.{decimals}f}") for t in ticks], ticks, rtol=0, atol=1e-12)
    assert list(short.acc_axis.tick_values) == [0.0, 0.25, 0.5, 0.75, 1.0] and short.acc_axis.tick_format == ",.2f"
    # a new format goes to the page before the values it writes: bqplot draws new values in a
    # transition that writes their labels later with the format of the moment it was made
    changes = []
    short.x_axis.observe(lambda c: changes.append(c["name"]), names=["tick_values", "tick_format"])
    set_x_ticks(short.x_axis, -0.1, 0.1, 300)
    assert changes == ["tick_format", "tick_values"] and short.x_axis.tick_format == ",.2f"
    # the map's vertical axis: a few round ticks over the grid, written exactly
    np.testing.assert_allclose(ex.y_axis.tick_values, [-1.0, -0.5, 0.0, 0.5, 1.0])
    assert ex.y_axis.tick_format == ",.1f"
    # the loss axis's label sits beyond its widest tick label, inside the figure
    set_y_ticks(short.loss_axis, np.array([2.30251, 2.30263]), 170)
    assert short.loss_axis.tick_format == ",.5f" and short.loss_axis.label_offset == "65px"
    short.update(ds.assign(loss=2.30251 + 1e-4 * ds["loss"] / float(ds["loss"].max())))
    offset = int(short.loss_axis.label_offset[:-2])
    assert offset >= 65 and short.widget.fig_margin["left"] == offset + 22


def test_the_1d_view_marks_points_whose_loss_is_not_finite():
    """A non-finite loss is a gap in the curve: grey crosses on the x axis mark it, and
    the title counts them."""
    from landscape_widgets.core.grids import line
    from landscape_widgets.core.results import empty_landscape, fill_chunk
    from landscape_widgets.widgets.views import LineView

    grid = line(num=9)
    ds = empty_landscape(grid, ("loss",))
    alpha = grid.coords(np.arange(9))[:, 0]
    loss = 0.5 + alpha**2
    loss[[1, 2, 7]] = [np.nan, np.inf, np.nan]
    fill_chunk(ds, np.arange(9), {"loss": loss})
    view = LineView()
    view.update(ds)
    np.testing.assert_allclose(view.missing.x, alpha[[1, 2, 7]])
    np.testing.assert_allclose(view.missing.y, [view.loss_scale.min] * 3)
    assert view.loss_scale.min <= 0.5 and "3 not finite (grey crosses)" in view.widget.title
    assert view.missing in view.widget.marks and view.missing.colors == ["#8c8c8c"]
    ds["loss"].values[:] = 0.5 + alpha**2
    view.update(ds)
    assert len(view.missing.x) == 0 and "not finite" not in view.widget.title


def test_view_titles_and_colour_bar_ticks_read_plainly(problem):
    from landscape_widgets.widgets.views import TICK_FORMAT, LineView

    ex = explorer(problem, view="1d")
    assert ex.wait(120)
    title = ex.views[0].widget.title
    assert title == "1-D landscape: 9/9 points" and "grid" not in title
    line = LineView()
    assert not line.loss_line.display_legend and not line.acc_line.display_legend  # no legend box over the data
    for axis, mark in ((line.loss_axis, line.loss_line), (line.acc_axis, line.acc_line)):
        # the label and every tick label (those of ticks added later too) in the curve's colour
        assert axis.label_color == axis.color == axis.tick_style["fill"] == mark.colors[0]
    # grid lines at the loss ticks only (the accuracy's would cross them, and the loss axis)
    assert line.loss_axis.grid_lines == "solid" and line.acc_axis.grid_lines == "none"
    assert ContourView().color_axis.tick_format == TICK_FORMAT == ",.3~r"
    # an empty map already has a colour domain (a colour bar with ticks); a drawn one the data's
    empty = ContourView()
    assert (empty.color_scale.min, empty.color_scale.max) == (0.0, 1.0)
    # nothing computed: no heat map (bqplot paints NaN cells black), the grey plot area shows
    assert not empty.heatmap.visible and empty.widget.background_style["fill"] == "#eeeeee"
    ex.view.value = "2d"
    assert ex.wait(120)
    view = ex.views[0]
    loss = ex.result["loss"].values
    assert (view.color_scale.min, view.color_scale.max) == pytest.approx((loss.min(), loss.max()))
    assert view.heatmap.visible
    # the map over a copy of itself (seamless_heatmap): same cells, drawn first
    marks = view.widget.marks
    assert marks.index(view.underlay) == marks.index(view.heatmap) - 1 and view.underlay.visible
    for trait in ("x", "y", "color"):
        np.testing.assert_array_equal(getattr(view.underlay, trait), getattr(view.heatmap, trait))
    # a constant map, or a given range of no width, gets a colour range of width 1 around it
    flat = ex.result.copy(deep=True)
    flat["loss"][:] = 2.0
    for limits in (None, (2.0, 2.0)):
        other = ContourView()
        other.update(flat, limits=limits)
        assert (other.color_scale.min, other.color_scale.max) == (1.5, 2.5)
    # every redraw carries the map's visibility: a page that missed the update which first
    # showed it (connecting while a run draws) still shows the map at the next redraw
    sent = []
    for mark in (view.heatmap, view.veil):
        mark._send = lambda msg, buffers=None, _m=mark: sent.append((_m, msg["state"]))
    view.update(ex.result)
    assert view.heatmap.visible and any(m is view.heatmap and s.get("visible") is True for m, s in sent)
    assert any(m is view.veil and s.get("visible") is False for m, s in sent)
    # the axes span the outer cells' outer edges; the x axis leaves the lower-left corner to
    # the y axis's labels, and shows -1 where the half cell beyond it leaves room
    from landscape_widgets.widgets.views import CORNER_PX, cell_extent, corner_free_ticks

    ticks = np.asarray(view.x_axis.tick_values)
    lo, hi = cell_extent(ex.result["alpha"].values)
    half_cell_px = (-1.0 - lo) / (hi - lo) * view._plot_px[0]
    assert half_cell_px > CORNER_PX, half_cell_px  # 9 points per axis
    np.testing.assert_allclose([ticks.min(), ticks.max()], [-1.0, 1.0])
    np.testing.assert_allclose([min(view.y_axis.tick_values), max(view.y_axis.tick_values)], [-1.0, 1.0])
    fine = np.linspace(-1, 1, 51)  # a half cell of 4 px: the corner's
    assert corner_free_ticks(*cell_extent(fine), view._plot_px[0]).min() == -0.5


def test_a_long_run_waits_for_start_and_the_controls_show_its_cost(problem):
    from landscape_widgets.widgets.explorer import CONFIRM_SECONDS, format_duration

    ex = explorer(problem)
    assert ex.wait(120)
    assert ex.seconds_per_point is not None and ex.seconds_per_point > 0
    assert ex.estimate.value.startswith("81 points · about ")
    ex.seconds_per_point = 1.0  # as if each point took a second
    ex.num.value = 21  # 441 points, about 7 min: not started
    assert ex.estimate.value == "441 points · about 7 min"
    assert 441 * 1.0 > CONFIRM_SECONDS
    assert not ex.runner.running and ex.stop_button.disabled
    assert ex.start_button.layout.display is None
    assert "441 points would take about 7 min: press Start" in ex.progress.text.value
    assert ex.result["done"].size == 81  # the picture on screen is still the 9x9 one
    ex.start_button.click()
    assert ex.runner.running or ex.result["done"].size == 441
    assert ex.wait(120) and int(ex.result["done"].sum()) == 441
    assert ex.start_button.layout.display == "none"
    assert [format_duration(t) for t in (3, 240, 7200)] == ["3 s", "4 min", "2.0 h"]


def test_a_first_run_measures_its_rate_and_stops_to_ask_when_it_would_be_long(problem, monkeypatch):
    from landscape_widgets.widgets import explorer as explorer_module

    ex = explorer(problem, grids={"1d": (1.0, 9), "2d": (1.0, 21), "3d": (1.0, 5)}, autostart=False)
    assert ex.seconds_per_point is None and ex.estimate.value == "441 points"  # no rate yet
    # a rate that puts the first run's 441 points over the limit, as a slow model would
    monkeypatch.setattr(explorer_module, "CONFIRM_SECONDS", 441 * 1e-7)
    ex.refresh()
    assert ex.wait(120)
    done = int(ex.result["done"].sum())
    assert 0 < done < 441  # the coarse levels that measured the rate, on screen
    assert ex.seconds_per_point is not None
    assert ex.start_button.layout.display is None and ex.stop_button.disabled
    assert "441 points would take about" in ex.progress.text.value and "press Start" in ex.progress.text.value
    assert ex.settings not in ex.cache  # a partial result is never cached
    ex.start_button.click()
    assert ex.wait(120) and int(ex.result["done"].sum()) == 441
    assert ex.settings in ex.cache and ex.start_button.layout.display == "none"
    np.testing.assert_allclose(ex.result["loss"].values, reference(problem, 0, (21, 21)), rtol=1e-5, atol=1e-6)


def test_save_offers_the_figure_and_the_surface_as_downloads(problem, tmp_path):
    import base64

    import meshio

    ex = explorer(problem)
    assert ex.wait(120)
    files = ex.save("png")
    assert list(files) == ["landscape-2d-seed0.png"] and files["landscape-2d-seed0.png"][:4] == b"\x89PNG"
    assert "download='landscape-2d-seed0.png'" in ex.download.value
    link = ex.download.value.split("base64,")[1].split("'")[0]
    assert base64.b64decode(link) == files["landscape-2d-seed0.png"]
    files = ex.save("vtk")
    assert sorted(files) == ["landscape-2d-seed0.vtk", "landscape-2d-seed0.vtk.json"]
    assert ex.download.value.count("download=") == 2
    (tmp_path / "s.vtk").write_bytes(files["landscape-2d-seed0.vtk"])
    mesh = meshio.read(tmp_path / "s.vtk")
    np.testing.assert_allclose(mesh.point_data["loss"], ex.result["loss"].values.ravel(), rtol=1e-6)
    ex.seed.value = 2  # the links of seed 0 go with the picture they saved; the next is named seed 2
    assert ex.download.value == ""
    assert ex.wait(120) and list(ex.save("png")) == ["landscape-2d-seed2.png"]
    with pytest.raises(ValueError, match="fmt must be one of"):
        ex.save("bmp")
    ex.view.value = "1d"  # a line has no surface to export: said under the controls, no error raised
    assert ex.wait(120)
    ex.save_format.value = "stl"
    ex.save_button.click()
    assert "cannot save" in ex.download.value and "no surface or volume" in ex.download.value


def test_explorer_rejects_bad_settings(problem):
    with pytest.raises(ValueError, match="view"):
        explorer(problem, view="4d")
    with pytest.raises(ValueError, match="grids"):
        explorer(problem, grids={"2-D": (1.0, 5)})
    with pytest.raises(ValueError, match=r"points per axis must be 3 to .*'3d': 41.*got \{'3d': 101\}"):
        explorer(problem, grids={"3d": (1.0, 101)})


def test_a_page_echoing_the_range_slider_value_neither_restarts_nor_misses_the_cache(problem):
    ex = explorer(problem)
    ex.wait(120)
    draws, result = ex.runner.n_draws, ex.result
    ex.half_range.value = 1.0000000000000002  # what the browser's slider sends back for 1.0
    assert ex.half_range.value != 1.0 and ex.settings.half_range == 1.0
    assert not ex.runner.running and ex.runner.n_draws == draws and ex.result is result


def test_points_per_axis_offer_at_most_each_views_largest_grid(problem):
    ex = explorer(problem, view="2d", autostart=False)
    assert ex.num.max == MAX_NUM["2d"] == 101
    ex.num.value = 101
    ex.view.value = "3d"
    assert (ex.num.max, ex.num.value) == (MAX_NUM["3d"], 5) and MAX_NUM["3d"] ** 3 < 100_000
    ex.view.value = "2d"
    assert (ex.num.max, ex.num.value) == (101, 101)  # each view keeps its own grid
    ex.stop()


# -- the app ---------------------------------------------------------------------------
def test_app_notebook_on_disk_is_app_notebook():
    text = CHECKOUT_NOTEBOOK.read_text()
    assert text == nbformat.writes(app_notebook()) + "\n", (
        "notebooks/explorer_app.ipynb is out of date: run "
        "python -c 'from landscape_widgets.app.serve import write_notebook; write_notebook()'"
    )
    assert json.loads(text)["metadata"]["kernelspec"]["name"] == "python3"


def test_voila_command_hides_sources_and_checks_the_port():
    cmd = voila_command(Path("app.ipynb"), 8899, open_browser=False)
    assert cmd[1:] == ["-m", "voila", "app.ipynb", "--strip_sources=True", "--Voila.ip=localhost",
                       "--VoilaExecutor.iopub_timeout=60",
                       *(f"--VoilaConfiguration.extension_denylist={name}" for name in UNUSED_EXTENSIONS),
                       "--port=8899",
                       "--no-browser", "--MappingKernelManager.cull_idle_timeout=300",
                       "--MappingKernelManager.cull_interval=60", "--preheat_kernel=True", "--pool_size=1",
                       "--VoilaConfiguration.multi_kernel_manager_class="
                       "landscape_widgets.app.kernels.ClassroomKernelManager",
                       "--ClassroomKernelManager.max_kernels=0", "--ClassroomKernelManager.connect_grace=120.0",
                       "--ClassroomKernelManager.close_grace=10.0"]
    assert voila_command(Path("app.ipynb"), still=True)[-5] == "--template=landscape"
    with pytest.raises(ValueError, match="port"):
        voila_command(Path("app.ipynb"), 70000)


@pytest.mark.skipif(shutil.which("jupyter") is None, reason="jupyter is not installed")
def test_widget_labextensions_are_installed_for_jupyterlab_and_notebook7():
    listing = subprocess.run(["jupyter", "labextension", "list"], capture_output=True, text=True,
                             timeout=120)
    text = listing.stdout + listing.stderr
    for name in ("@jupyter-widgets/jupyterlab-manager", "bqplot", "ipyvolume", "jupyter-threejs"):
        assert name in text, f"{name} labextension missing"


def test_explorer_convexity_map_of_the_current_plane(problem):
    ex = explorer(problem)
    assert ex.wait(60)
    assert ex.convexity_button.layout.display is None  # offered in the 2-D view
    panel = ex.show_convexity(num=3)
    assert ex.convexity_box.children == (panel.widget,)
    assert panel.wait(120)
    ratio = panel.result["convexity"].values
    assert ratio.shape == (3, 3) and np.isfinite(ratio).all()
    assert ((ratio >= 0) & (ratio <= 1 + 1e-6)).all()
    model, loss_fn, data = problem
    expected = convexity_map(model, loss_fn, data, plane(num=3), seed=ex.seed.value, steps=20)
    np.testing.assert_allclose(ratio, expected["convexity"].values, rtol=1e-6)  # the plane on screen
    # a colour-bar label short enough for the margin, contours that show on pale cells
    assert panel.view.contour.color_axis.label == "|λmin / λmax|"
    assert panel.view.contour.contours.colors == ["#333333"] and "0 = convex" in panel.view.widget.title
    # the axes in the units of the plane's directions, as the map above it
    assert panel.view.contour.x_axis.label == ex.views[0].x_axis.label
    assert "filter-normalized" in panel.view.contour.x_axis.label
    ex.seed.value += 1  # another plane: the map no longer applies and is removed
    assert ex.convexity is None and ex.convexity_box.children == ()
    ex.view.value = "1d"
    assert ex.convexity_button.layout.display == "none"
    assert ex.wait(60)


def test_clicking_the_map_shows_the_cross_sections_through_that_point(problem):
    ex = explorer(problem, view="2d")
    assert ex.wait(120)
    contour, sections = ex.views_of("2d")
    assert sections.widget in ex.plots.children and sections.widget.layout.display == "none"  # until a click
    assert not sections.marker.visible
    # the cursor targets: grid points, each with its value for the hover tooltip
    ds = ex.result
    targets = contour.targets
    i, j = 3, 5
    k = int(np.flatnonzero(np.isclose(targets.x, ds["alpha"][i]) & np.isclose(targets.y, ds["beta"][j]))[0])
    assert targets.names[k] == f"{float(ds['loss'][i, j]):.4g}"
    assert list(targets.tooltip.labels) == ["alpha", "beta", "loss"] and list(targets.tooltip.fields)[2] == "name"
    assert value_text(np.array([0.61234, np.nan, 2.0, np.nan, np.inf]), np.array([1, 1, 0, 0, 1], bool),
                      np.array([1, 1, 1, 0, 1], bool)) == ["0.6123", "not finite (nan)", "≈2 (estimate)",
                                                         "not computed yet", "not finite (inf)"]
    # squares as wide as their spacing: together they cover the plot, so any click hits one
    n_a, n_b = len(np.unique(targets.x)), len(np.unique(targets.y))
    assert targets.marker == "square"
    assert np.sqrt(targets.default_size) >= min(contour._plot_px[0] / n_a, contour._plot_px[1] / n_b) - 1
    # a click (as bqplot sends it) on that point
    targets._handle_custom_msg({"event": "element_click", "data": {"x": float(ds["alpha"][i]),
                                                                    "y": float(ds["beta"][j]), "index": k}}, [])
    assert sections.widget.layout.display is None
    assert sections.marker.visible and sections.marker in contour.widget.marks  # ringed on the map
    assert (sections.marker.x[0], sections.marker.y[0]) == pytest.approx((ds["alpha"][i], ds["beta"][j]))
    along_alpha, along_beta = sections.lines
    np.testing.assert_allclose(along_alpha.loss_line.y, ds["loss"].values[:, j])
    np.testing.assert_allclose(along_alpha.loss_line.x, ds["alpha"].values)
    np.testing.assert_allclose(along_beta.loss_line.y, ds["loss"].values[i, :])
    assert "beta (direction 2" in along_beta.x_axis.label and f"alpha = {float(ds['alpha'][i]):.3g}" in \
        along_beta.widget.title
    # a new result (another seed) redraws them through the same point
    ex.seed.value += 1
    assert ex.wait(120)
    np.testing.assert_allclose(along_alpha.loss_line.y, ex.result["loss"].values[:, j])


def test_zoom_region_rounds_the_dragged_rectangle_inside_the_map():
    assert zoom_region([0.456, 0.123], [-0.5, 0.2], (-1, 1, -1, 1)) == (0.12, 0.46, -0.5, 0.2)
    assert zoom_region([-3.0, 0.5], [0.9, 2.0], (-1, 1, -1, 1)) == (-1.0, 0.5, 0.9, 1.0)  # clipped to the map
    assert zoom_region([0.1, 0.11], [0.0, 0.5], (-1, 1, -1, 1)) is None  # a sliver (or a click)


def test_a_rectangle_dragged_on_the_map_is_computed_at_the_same_resolution(problem):
    model, loss_fn, data = problem
    ex = explorer(problem)
    ex.wait(120)
    full = ex.result
    assert ex.zoom.full_button.disabled and ex.views[0].widget.interaction is None
    ex.zoom.zoom_button.value = True  # the next drag zooms
    assert ex.views[0].widget.interaction is ex.zoom.selector
    ex.zoom.selector.selected_x, ex.zoom.selector.selected_y = np.array([0.61, 0.2]), np.array([-0.43, 0.02])
    ex.zoom.selector.brushing = True
    ex.zoom.selector.brushing = False  # the drag ends
    ex.wait(120)
    assert ex.settings.region == (0.2, 0.61, -0.43, 0.02) and not ex.zoom.zoom_button.value
    assert ex.views[0].widget.interaction is None and not ex.zoom.full_button.disabled
    np.testing.assert_allclose(ex.result["alpha"].values, np.linspace(0.2, 0.61, 9))
    np.testing.assert_allclose(ex.result["beta"].values, np.linspace(-0.43, 0.02, 9))
    grid = make_grid([(0.2, 0.61), (-0.43, 0.02)], 9)
    expected = compute_landscape(model, loss_fn, data, grid, seed=0)["loss"].values
    np.testing.assert_allclose(ex.views[0].heatmap.color, expected.T, rtol=1e-5)
    assert json.loads(ex.result.attrs["region"]) == [0.2, 0.61, -0.43, 0.02]
    # back to the full range: from the cache; the zoom is cached like any setting
    draws = ex.runner.n_draws
    ex.zoom.full_button.click()
    assert ex.result is full and ex.runner.n_draws == draws and ex.zoom.full_button.disabled
    ex.zoom_to((0.2, 0.61, -0.43, 0.02))
    assert not ex.runner.running and json.loads(ex.result.attrs["region"]) == [0.2, 0.61, -0.43, 0.02]
    # the range slider sets a new whole range
    ex.half_range.value = 0.5
    ex.wait(120)
    assert ex.settings.region is None and ex.result["alpha"].values[-1] == pytest.approx(0.5)


def test_data_sample_previews_only_where_the_exact_first_level_is_slow(problem, monkeypatch):
    from landscape_widgets.widgets import explorer as explorer_module

    asked = []
    stream = explorer_module.landscape_stream
    monkeypatch.setattr(explorer_module, "landscape_stream",
                        lambda *args, fractions, **kwargs: (asked.append(tuple(fractions)),
                                                            stream(*args, fractions=fractions, **kwargs))[1])
    ex = explorer(problem, grids={"2d": (1.0, 51)}, autostart=False)
    grid = ex.settings.grid
    assert ex.seconds_per_point is None and ex._previews_pay(grid)  # nothing measured yet
    ex.refresh()
    ex.wait(120)
    first = int(coarse_to_fine_order(grid.shape)[1][0])
    assert first * ex.seconds_per_point < PREVIEW_SECONDS and not ex._previews_pay(grid)
    ex.seed.value = 3
    ex.wait(120)
    assert asked == [FRACTIONS, ()]  # the second run is exact from its first picture on
    ex.seconds_per_point = 2 * PREVIEW_SECONDS / first  # a model where the first level is slow
    assert ex._previews_pay(grid)
