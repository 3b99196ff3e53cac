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
