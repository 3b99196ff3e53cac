"""Model comparison and sharpness, including the paper's small- vs large-batch claim.

Numbers measured while choosing the tolerances (digits MLP presets, 11x11 filter-normalized
plane over [-1, 1]^2, mean loss increase over the grid; direction seeds 0-5):

=============  ===========================  ===========================  ======================
training seed  small batch (32): mean, sd   large batch (1024): mean, sd  ratio small/large per
                                                                          direction seed
=============  ===========================  ===========================  ======================
0              0.514, 0.139                 1.233, 0.237                  0.29 - 0.52
1              0.467, 0.133                 0.995, 0.314                  0.36 - 0.62
2              0.514, 0.140                 1.176, 0.266                  0.36 - 0.48
=============  ===========================  ===========================  ======================

The mean ratio per training seed was 0.42-0.47; the test asserts < 0.75 for the mean and
< 1 for every single direction seed, and that the loss-threshold radius is larger for the
small-batch model on average (measured 0.56-0.63 vs 0.40-0.47).
"""

import threading

import numpy as np
import pytest
import torch.nn.functional as F

from landscape_widgets.analysis.comparison import (
    centre_loss,
    compare_landscapes,
    mean_loss_increase,
    radius_to_loss,
    raw_range_scale,
)
from landscape_widgets.plotting.figures import shared_color_range
from landscape_widgets.core.grids import plane
from landscape_widgets.core.landscape import compute_landscape
from landscape_widgets.builtin.presets import PAIRS, preset
from landscape_widgets.core.results import empty_landscape, fill_chunk


def quadratic_landscape(num=11, shift=0.0):
    grid = plane(num=num)
    ds = empty_landscape(grid, ("loss",))
    coords = grid.coords(np.arange(grid.size))
    fill_chunk(ds, np.arange(grid.size), {"loss": (coords**2).sum(axis=1) + shift})
    return ds


def test_sharpness_of_a_quadratic_bowl_is_exact():
    ds = quadratic_landscape()
    # mean of x^2 over linspace(-1, 1, 11) is 0.4, twice for two axes
    assert mean_loss_increase(ds) == pytest.approx(0.8)
    assert centre_loss(ds) == 0.0
    # loss = r^2 >= 0.25 first at the grid point (0.4, 0.4), r = sqrt(0.32)
    assert radius_to_loss(ds, factor=2.0, offset=0.25) == pytest.approx(np.sqrt(0.32))
    assert radius_to_loss(ds, offset=5.0) == float("inf")
    # a constant shift does not change the increase
    assert mean_loss_increase(quadratic_landscape(shift=3.0)) == pytest.approx(0.8)


def test_shared_color_range_spans_all_landscapes():
    lo, hi = shared_color_range({"a": quadratic_landscape(), "b": quadratic_landscape(shift=1.0)})
    assert (lo, hi) == (0.0, 3.0)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="at least one model"):
        compare_landscapes({}, F.cross_entropy, None)
    with pytest.raises(ValueError, match="factor"):
        radius_to_loss(quadratic_landscape(), factor=0)
    with pytest.raises(ValueError, match="unknown preset"):
        preset("nope")
    with pytest.raises(ValueError, match="no finished"):
        mean_loss_increase(empty_landscape(plane(num=3)))


@pytest.fixture(scope="module")
def batch_pairs():
    small, large = PAIRS["batch_size"]
    out = {}
    for seed in (0, 1):
        (rs, data), (rl, _) = preset(small, seed), preset(large, seed)
        out[seed] = ({"small": rs.model, "large": rl.model}, data)
    return out


def test_comparison_uses_the_same_seed_rule_as_compute_landscape(batch_pairs):
    models, data = batch_pairs[0]
    out = compare_landscapes(models, F.cross_entropy, data.train, plane(num=3), seed=7,
                             normalization="layer", test_data=data.test)
    direct = compute_landscape(models["large"], F.cross_entropy, data.train, plane(num=3), seed=7,
                               normalization="layer")
    np.testing.assert_allclose(out["large"]["loss"].values, direct["loss"].values, rtol=1e-6)
    assert out["small"].attrs["normalization"] == "layer"
    for ds in out.values():
        assert 0.5 < ds.attrs["test_accuracy"] <= 1.0
        assert ds.attrs["mean_loss_increase"] == pytest.approx(mean_loss_increase(ds))


@pytest.mark.parametrize("training_seed", [0, 1])
def test_small_batch_minimum_is_flatter_with_filter_normalization(batch_pairs, training_seed):
    models, data = batch_pairs[training_seed]
    sharp = {"small": [], "large": []}
    radius = {"small": [], "large": []}
    for direction_seed in range(3):
        out = compare_landscapes(models, F.cross_entropy, data.train, plane(num=11),
                                 seed=direction_seed, normalization="filter")
        for name, ds in out.items():
            sharp[name].append(ds.attrs["mean_loss_increase"])
            radius[name].append(ds.attrs["radius_to_loss"])
    small, large = np.array(sharp["small"]), np.array(sharp["large"])
    assert np.all(small < large), (small, large)
    assert small.mean() < 0.75 * large.mean(), (small, large)
    assert np.mean(radius["small"]) > np.mean(radius["large"]), radius


def test_widget_shares_one_colour_range_and_toggles_normalization(batch_pairs):
    from landscape_widgets.widgets.comparison import comparison_panel

    models, data = batch_pairs[0]
    panel = comparison_panel(models, F.cross_entropy, data.train, plane(num=3), test_data=data.test)
    assert panel.wait(120) and panel.runner.error is None
    lo, hi = shared_color_range(panel.results)
    for view in panel.views.values():
        assert (view.color_scale.min, view.color_scale.max) == pytest.approx((lo, hi))
    # one scale, one colour bar beside the row (a bar each was squashed beside a small map)
    assert all(view.color_scale is panel.color_scale and view.color_axis not in view.widget.axes
               for view in panel.views.values())
    assert panel.color_bar in panel.widget.children[1].children and panel.color_axis.label == "loss"
    assert all("test accuracy" in c.value and f"sharpness {mean_loss_increase(panel.results[name]):.3g} (mean loss "
               "increase over the grid)" in c.value for name, c in panel.captions.items())
    # the log colour scale redraws the same results, log10 of the loss on one range
    results = dict(panel.results)
    # the toggle's redraw waits for the runner's lock (a draw of a new snapshot holds it)
    held, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=lambda: (panel.runner.lock.acquire(), held.set(), release.wait(),
                                              panel.runner.lock.release()))
    holder.start()
    held.wait(10)
    toggle = threading.Thread(target=lambda: setattr(panel.scale, "value", "log"))
    toggle.start()
    toggle.join(0.3)
    assert toggle.is_alive() and panel.color_axis.label == "loss"
    release.set()
    toggle.join(10)
    holder.join(10)
    assert panel.results == results and panel.color_axis.label == "log10(loss)"
    for name, view in panel.views.items():
        assert (view.color_scale.min, view.color_scale.max) == pytest.approx((np.log10(lo), np.log10(hi)))
        np.testing.assert_allclose(view.heatmap.color, np.log10(results[name]["loss"].values).T, rtol=1e-6)
    panel.scale.value = "linear"
    assert panel.color_axis.label == "loss" and panel.color_scale.max == pytest.approx(hi)
    filtered = {n: ds["loss"].values.copy() for n, ds in panel.results.items()}
    panel.normalization.value = "none"
    assert panel.wait(120) and panel.runner.error is None
    assert all(ds.attrs["normalization"] == "none" for ds in panel.results.values())
    # raw directions on the grid scaled to the weights (on ±1 every raw map is a wall)
    scale = raw_range_scale(list(models.values()))
    assert 0 < scale < 0.5
    assert all(float(ds["alpha"].max()) == pytest.approx(scale) for ds in panel.results.values())
    assert not np.allclose(panel.results["small"]["loss"].values, filtered["small"])


def test_four_maps_are_laid_out_two_by_two_at_full_size():
    from tiny_models import trained_mlps

    from landscape_widgets.widgets.comparison import comparison_panel

    models, data = trained_mlps(4)
    panel = comparison_panel({f"m{i}": m for i, m in enumerate(models)}, F.cross_entropy, data, plane(num=3),
                             autostart=False)
    rows = panel.widget.children[1].children[0].children
    assert [len(r.children) for r in rows] == [2, 2]
    assert all(v.widget.layout.width == "400px" for v in panel.views.values())
    three = comparison_panel({f"m{i}": m for i, m in enumerate(models[:3])}, F.cross_entropy, data, plane(num=3),
                             autostart=False)
    assert [len(r.children) for r in three.widget.children[1].children[0].children] == [3]
