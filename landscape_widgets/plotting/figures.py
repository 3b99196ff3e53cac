"""Static matplotlib figures of a landscape result, for papers (PNG, SVG, PDF)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from ..core.metric_names import METRICS
from .colours import MISSING_COLOUR
from .labels import axis_labels
from .ticks import covering_ticks, round_colour_bar, round_levels, set_round_ticks

if TYPE_CHECKING:  # the figures import neither torch, xarray nor matplotlib until they draw
    import xarray as xr

    from ..analysis.trajectory import TrajectoryPlane
    from ..runs.quick_read import QuickResult


def shared_color_range(landscapes: Mapping[str, xr.Dataset], quantile: float = 1.0,
                       log: bool = False) -> tuple[float, float]:
    """One ``(vmin, vmax)`` loss range for all landscapes (finite values only; with
    ``log``, of log10 of the positive ones).

    ``quantile < 1`` clips the top, so one exploding model does not wash out the others.
    """
    values = np.concatenate([ds["loss"].values[ds["done"].values].ravel() for ds in landscapes.values()])
    if log:
        values = log10_positive(values)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 1.0
    return float(values.min()), float(np.quantile(values, quantile))


def log10_positive(values: np.ndarray) -> np.ndarray:
    """log10 of the positive ``values``, NaN elsewhere: what a log scale shows."""
    values = np.asarray(values, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(values > 0, np.log10(values), np.nan)


def _values(ds: xr.Dataset | QuickResult, metric: str, log: bool) -> tuple[np.ndarray, str]:
    """The metric's values (log10 of the positive ones with ``log``) and its label."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if metric not in ds:
        raise ValueError(f"this result has no {metric!r} (regression results have loss only)")
    var = ds[metric]
    label = f"{var.attrs.get('long_name', metric)} ({var.attrs.get('units', '')})".replace(" ()", "")
    values = np.asarray(var.values)
    if log:
        values = log10_positive(values)
        if not np.count_nonzero(~np.isnan(values)):
            raise ValueError(f"--log needs positive {metric} values; this result has none")
        label = f"log10 {label}"
    return values, label


def mark_centre(ax, **kwargs) -> None:
    """The centre point theta, marked as the live views mark it (a red plus, white edge)."""
    ax.plot([0], [0], marker="P", color="red", markeredgecolor="white", markersize=11, linestyle="none", **kwargs)


def landscape_figure(ds: xr.Dataset | QuickResult, metric: str = "loss", log: bool = False, slices: int = 3,
                     levels: int = 30):
    """A matplotlib figure of a 1-, 2- or 3-D result.

    1-D: a line over ``alpha``. 2-D: filled contours over ``alpha`` x ``beta`` with a
    colour bar, the centre point marked (cells without finite neighbours to contour
    drawn as cells). 3-D: ``slices`` such planes at evenly spaced ``gamma`` values
    sharing one colour scale. Missing (not yet computed) points are left blank; computed
    points whose value is not finite (NaN, inf) are shown grey, marked in the legend.

    Parameters
    ----------
    ds : xr.Dataset or QuickResult
        A result of :func:`~landscape_widgets.core.landscape.compute_landscape`, or one
        read without xarray by :func:`~landscape_widgets.runs.quick_read.quick_load`
        (only ``ds[name].values``, ``.dims``, ``.attrs`` and ``ds.attrs`` are used).
    metric : {"loss", "accuracy"}
    log : bool
        Plot ``log10`` of the metric (non-positive values left blank).
    slices : int
        Number of ``gamma`` slices of a 3-D result.
    levels : int
        Contour levels.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.colors import ListedColormap, Normalize
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    values, label = _values(ds, metric, log)
    dims = tuple(ds[metric].dims)
    names = axis_labels(ds, dims)
    coords = [np.asarray(ds[d].values) for d in dims]
    bad = np.asarray(ds["done"].values, dtype=bool) & ~np.isfinite(values)
    if min(len(c) for c in coords) < 2:
        raise ValueError(f"a plot needs at least 2 points per axis; this result's grid is "
                         f"{'x'.join(str(len(c)) for c in coords)}: plot a result computed with num >= 2")
    if len(dims) == 1:
        fig = Figure(figsize=(5.5, 3.8), layout="constrained")
        ax = fig.add_subplot()
        ax.plot(coords[0], values, marker=".")
        if bad.any():
            ax.plot(coords[0][bad], np.zeros(int(bad.sum())), "x", color=MISSING_COLOUR,
                    transform=ax.get_xaxis_transform(), clip_on=False, label=f"not finite ({int(bad.sum())})")
            ax.legend(loc="upper center")
        ax.set_xlim(float(coords[0][0]), float(coords[0][-1]))
        ax.set_xlabel(names[0])
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        set_round_ticks(ax)
        return fig
    if len(dims) == 2:
        planes = [(values, bad, "")]
    else:
        n = len(coords[2])
        picks = np.unique(np.linspace(0, n - 1, max(1, min(slices, n))).round().astype(int))
        planes = [(values[:, :, int(i)], bad[:, :, int(i)], f"{dims[2]} = {float(coords[2][i]):.3g}") for i in picks]
    finite = values[np.isfinite(values)]
    if not len(finite):
        raise ValueError(f"the result has no finite {metric} values to plot yet")
    bounds = round_levels(finite, levels)
    fig = Figure(figsize=(5.2 * len(planes) + 1.2, 4.6), layout="constrained")
    axes = fig.subplots(1, len(planes), squeeze=False)[0]
    for ax, (plane, plane_bad, title) in zip(axes, planes):
        # cells under the contours: those without finite neighbours, which contourf leaves out, still show
        ax.pcolormesh(coords[0], coords[1], plane.T, shading="nearest", cmap="viridis",
                      norm=Normalize(bounds[0], bounds[-1]))
        filled = ax.contourf(coords[0], coords[1], plane.T, levels=bounds, cmap="viridis", extend="neither")
        if plane_bad.any():
            ax.pcolormesh(coords[0], coords[1], np.where(plane_bad, 1.0, np.nan).T, shading="nearest",
                          cmap=ListedColormap([MISSING_COLOUR]))
            ax.legend(handles=[Patch(color=MISSING_COLOUR, label=f"not finite ({int(plane_bad.sum())} points)")],
                      loc="upper right", fontsize="small")
        if all(c.min() <= 0 <= c.max() for c in coords[:2]):
            mark_centre(ax)
        ax.set_xlim(float(coords[0][0]), float(coords[0][-1]))  # the outer cells' outer halves lie outside
        ax.set_ylim(float(coords[1][0]), float(coords[1][-1]))
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        ax.set_box_aspect(1)
        set_round_ticks(ax)
        if title:
            ax.set_title(title)
    round_colour_bar(fig, filled, list(axes), label, bounds)
    return fig


def comparison_figure(landscapes: Mapping[str, xr.Dataset], levels: int = 20, log: bool = False):
    """Side-by-side filled contours of 2-D results on one shared colour range.

    Each panel's title carries the ``test_accuracy`` and ``mean_loss_increase``
    attributes when present (as set by :func:`compare_landscapes`). ``log``: colour by
    log10 of the loss, so the inside of a basin shows when its rim is far higher.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    if log:
        landscapes = {name: ds.assign(loss=np.log10(ds["loss"])) for name, ds in landscapes.items()}
    lo, hi = shared_color_range(landscapes)
    bounds = covering_ticks(lo, hi, levels)
    fig = Figure(figsize=(4 * len(landscapes) + 1, 4), layout="constrained")
    axes = fig.subplots(1, len(landscapes), squeeze=False)[0]
    for ax, (name, ds) in zip(axes, landscapes.items()):
        a, b = ds["loss"].dims
        filled = ax.contourf(ds[a].values, ds[b].values, ds["loss"].values.T, levels=bounds, cmap="viridis")
        mark_centre(ax)
        x_label, y_label = axis_labels(ds, (a, b))
        ax.set(xlabel=x_label, ylabel=y_label)
        set_round_ticks(ax)
        notes = [f"test acc {100 * ds.attrs['test_accuracy']:.1f} %"] if "test_accuracy" in ds.attrs else []
        if "mean_loss_increase" in ds.attrs:
            notes.append(f"sharpness {ds.attrs['mean_loss_increase']:.3g}")
        ax.set_title("\n".join([name, ", ".join(notes)]) if notes else name)
    label = "loss (mean cross-entropy, shared scale)"
    round_colour_bar(fig, filled, list(axes), f"log10 {label}" if log else label, bounds)
    return fig


def trajectory_figure(ds: xr.Dataset, plane: TrajectoryPlane, levels: int = 25, log: bool = False):
    """Filled loss contours on the PCA plane with the projected path on top.

    ``log``: colour by log10 of the loss, so the basin the path ends in shows when the
    start is far higher.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    values = log10_positive(ds["loss"].values) if log else np.asarray(ds["loss"].values, dtype=float)
    fig = Figure(figsize=(6, 5), layout="constrained")
    ax = fig.add_subplot()
    bounds = round_levels(values, levels)
    filled = ax.contourf(ds["alpha"].values, ds["beta"].values, values.T, levels=bounds, cmap="viridis")
    ax.plot(plane.path[:, 0], plane.path[:, 1], "o-", color="red", markersize=3, label="optimizer path")
    ax.plot(*plane.path[0], "s", color="orange", markeredgecolor="black", label="initialization")
    mark_centre(ax, label="final point")
    x_label, y_label = plane.axis_labels()
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    set_round_ticks(ax)
    ax.legend(loc="best", fontsize="small")
    label = "loss (mean cross-entropy)"
    round_colour_bar(fig, filled, ax, f"log10 {label}" if log else label, bounds)
    return fig
