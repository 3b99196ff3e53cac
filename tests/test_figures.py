"""Static figures: every label inside the canvas, round tick values, the explorer's axis labels."""

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from landscape_widgets.core.grids import line, plane, volume
from landscape_widgets.core.results import empty_landscape, fill_chunk
from landscape_widgets.plotting.figures import landscape_figure

def bowl(grid, scale=1000.0):
    """A quadratic bowl whose values span several hundred (odd-looking extremes)."""
    ds = empty_landscape(grid, ("loss",), {"normalization": "filter", "directions": "random"})
    coords = grid.coords(np.arange(grid.size))
    fill_chunk(ds, np.arange(grid.size), {"loss": 0.0173 + scale * (coords**2).sum(1) + 3.3})
    return ds


def clipped(fig) -> bool:
    """Whether anything drawn (labels, ticks, colour bar) reaches outside the canvas: the
    figure's tight bounding box must lie inside its own box."""
    FigureCanvasAgg(fig).draw()
    tight, box = fig.get_tightbbox(fig.canvas.get_renderer()), fig.bbox_inches
    eps = 1e-3
    return tight.x0 < box.x0 - eps or tight.y0 < box.y0 - eps or tight.x1 > box.x1 + eps or tight.y1 > box.y1 + eps


def round_ticks(ticks) -> bool:
    """Evenly spaced, every tick a multiple of the step, the step one significant digit
    (or 2.5) times a power of ten: 0, 300, 600 or -1, -0.5, 0, not 0.020, 0.388, 0.756."""
    ticks = np.asarray(ticks, dtype=float)
    if len(ticks) < 2:
        return True
    steps = np.diff(ticks)
    step = steps[0]
    mantissa = step / 10 ** np.floor(np.log10(step))
    return bool(np.allclose(steps, step) and np.allclose(ticks / step, np.round(ticks / step), atol=1e-6)
                and (np.isclose(mantissa, np.round(mantissa)) or np.isclose(mantissa, 2.5)))


@pytest.mark.parametrize("grid", [line(num=21), plane(num=11), volume(num=5)], ids=["1d", "2d", "3d"])
def test_no_label_is_clipped_and_ticks_are_round(grid):
    fig = landscape_figure(bowl(grid))
    assert not clipped(fig)
    for ax in fig.axes:
        for ticks, (lo, hi) in ((ax.get_xticks(), ax.get_xlim()), (ax.get_yticks(), ax.get_ylim())):
            shown = [float(t) for t in ticks if min(lo, hi) - 1e-9 <= t <= max(lo, hi) + 1e-9]
            assert round_ticks(shown), shown
    labels = [ax.get_xlabel() for ax in fig.axes]
    assert "alpha (direction 1, filter-normalized units)" in labels


def test_the_colour_bar_ticks_are_round_numbers():
    fig = landscape_figure(bowl(plane(num=11)))
    FigureCanvasAgg(fig).draw()
    colourbar = fig.axes[-1]
    ticks = [float(t.get_text().replace("−", "-")) for t in colourbar.get_yticklabels() if t.get_text()]
    assert len(ticks) >= 3
    assert round_ticks(ticks), ticks


def test_non_finite_points_are_shown_grey_and_isolated_cells_drawn():
    """Computed points whose loss is not finite are grey cells named in a legend (not
    blank like points not computed); finite cells with no finite neighbour still show;
    a 1-D plot spans the whole grid with the non-finite points marked."""
    from matplotlib.collections import QuadMesh

    ds = bowl(plane(num=9))
    loss = ds["loss"].values
    keep = np.zeros_like(loss, dtype=bool)
    keep[[0, 4, 8], [8, 4, 0]] = True  # three isolated finite points
    loss[~keep] = np.nan
    fig = landscape_figure(ds)
    ax = fig.axes[0]
    cells, grey = (m for m in ax.collections if isinstance(m, QuadMesh))
    shown = np.ma.getdata(cells.get_array()).reshape(9, 9).T
    np.testing.assert_allclose(shown[keep], loss[keep])
    assert np.ma.count(grey.get_array()) == 78
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["not finite (78 points)"]
    assert ax.get_xlim() == (-1.0, 1.0) and ax.get_ylim() == (-1.0, 1.0)
    assert not clipped(fig)
    curve = bowl(line((-3, 3), num=21))
    curve["loss"].values[1:9] = np.nan
    fig = landscape_figure(curve)
    assert fig.axes[0].get_xlim() == (-3.0, 3.0)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["not finite (8)"]
    assert not clipped(fig)


def test_a_map_of_one_point_per_axis_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 2 points per axis; this result's grid is 1x1"):
        landscape_figure(bowl(plane(num=1)))
    with pytest.raises(ValueError, match="at least 2 points per axis; this result's grid is 1:"):
        landscape_figure(bowl(line(num=1)))


def shown_ticks(axis) -> list[float]:
    """The values of an axis's labelled ticks, as drawn."""
    return [float(t.get_text().replace("−", "-")) for t in axis.get_ticklabels() if t.get_text()]


def overlapping_tick_labels(fig) -> list[str]:
    """Tick labels of one axis whose drawn boxes run into each other."""
    FigureCanvasAgg(fig).draw()
    renderer = fig.canvas.get_renderer()
    bad = []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in axis.get_ticklabels() if t.get_text()]
            bad += [f"{a} / {b}" for (a, box_a), (b, box_b) in zip(boxes, boxes[1:]) if box_a.overlaps(box_b)]
    return bad


def map_figure(name: str):
    """A map-drawing figure of the package, on a bowl whose values are not round."""
    from types import SimpleNamespace

    from landscape_widgets.plotting.analysis_figures import convexity_figure, entropy_figure
    from landscape_widgets.plotting.figures import comparison_figure, trajectory_figure

    narrow, wide = bowl(plane((-0.07, 0.07), num=9), scale=3.7), bowl(plane(num=9), scale=0.45)
    convex = wide.assign(convexity=wide["loss"] * 0 + 0.3)
    entropy = wide.assign(local_entropy=-wide["loss"] * 1.37)
    entropy.attrs["sigma"] = 0.0316
    path = SimpleNamespace(path=np.array([[0.6, 0.7], [0.3, 0.2], [0.0, 0.0]]),
                           axis_labels=lambda: ["PC1 (80.0 % of variance)", "PC2 (9.0 % of variance)"])
    return {
        "comparison": lambda: comparison_figure({"narrow": narrow, "wide": wide}),
        "comparison, log": lambda: comparison_figure({"narrow": narrow, "wide": wide}, log=True),
        "trajectory": lambda: trajectory_figure(wide, path),
        "trajectory, log": lambda: trajectory_figure(wide, path, log=True),
        "convexity": lambda: convexity_figure({"a": convex, "b": convex}),
        "entropy": lambda: entropy_figure(entropy),
    }[name]()


@pytest.mark.parametrize("name", ["comparison", "comparison, log", "trajectory", "trajectory, log",
                                  "convexity", "entropy"])
def test_every_map_figure_has_round_ticks_and_colour_bars_that_do_not_collide(name):
    """Axes and colour bars of every map figure: round values, labels apart, nothing
    clipped (a range of 0.14 made "-0.06-0.04-0.02" before; levels=20 colour bars read
    0.45, 0.90, 1.35)."""
    fig = map_figure(name)
    assert not overlapping_tick_labels(fig)
    assert not clipped(fig)
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            ticks = shown_ticks(axis)
            if ticks == [0.0, 0.25, 0.5, 0.75, 1.0]:  # the convexity scale, its threshold marked
                continue
            assert round_ticks(ticks), (ax.get_label(), ticks)
