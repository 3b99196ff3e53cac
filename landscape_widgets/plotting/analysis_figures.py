"""Matplotlib figures of the analyses: permutation alignment, the trained triangle, short
directions along a path, PAL's parabola, local entropy and the trust statistics.

Each takes the datasets the analysis functions return and gives a labelled figure (axis
labels with units, colour bars); the notebooks and the panels of
:mod:`landscape_widgets.widgets.analysis_panels` draw with them. The figures are plain
:class:`matplotlib.figure.Figure` objects, not registered with pyplot, so a panel can
draw them in a worker thread while the notebook's own plotting goes on; show one with
``display(fig)`` or save it with ``fig.savefig``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from .figures import mark_centre
from .ticks import round_colour_bar, round_levels, set_round_ticks

LOSS_LABEL = "training loss (cross-entropy)"


def _subplots(nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (6, 4)):
    """A constrained-layout figure outside pyplot and its axes (``squeeze=False``)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _log_map(ax, ds: xr.Dataset, values: xr.DataArray, label: str, levels: int = 20):
    """Filled contours of ``values`` over the plane, at round levels, with a colour bar."""
    fig = ax.figure
    bounds = round_levels(values.values, levels)
    cs = ax.contourf(ds["alpha"], ds["beta"], values.T, levels=bounds)
    round_colour_bar(fig, cs, ax, label, bounds)
    set_round_ticks(ax)
    return cs


def _plane_labels(ax, ds: xr.Dataset) -> None:
    norm = ds.attrs.get("normalization", "filter")
    units = f"{norm}-normalized units" if norm != "none" else "raw units"
    ax.set_xlabel(f"alpha (direction 1, {units})")
    ax.set_ylabel(f"beta (direction 2, {units})")


def _star(ax, x: float, y: float, label: str) -> None:
    ax.plot(x, y, "w*", markersize=11)
    ax.annotate(label, (x, y), color="white", xytext=(0, 8), textcoords="offset points", ha="center")


def permutation_figure(paths: Mapping[str, xr.Dataset], plane: xr.Dataset | None = None):
    """Loss along straight lines (e.g. to a shuffled copy, to B before and after weight
    matching), and optionally the plane through A, the matched B and B
    (:func:`~landscape_widgets.analysis.connectivity.plane_through`)."""
    fig, axes = _subplots(1, 2 if plane is not None else 1, (11 if plane is not None else 6, 4))
    ax = axes[0, 0]
    for name, ds in paths.items():
        ax.plot(ds["alpha"], ds["loss"], marker=".", label=f"{name} (barrier {ds.attrs['barrier']:.2f})")
    ax.set_xlabel("t (position along the straight line)")
    ax.set_ylabel(LOSS_LABEL)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), fontsize=8)  # under the axes, off the curves
    if plane is not None:
        ax = axes[0, 1]
        _log_map(ax, plane, np.log10(plane["loss"]), "log10 training loss")
        for (x, y), label in [((0, 0), "A"), ((1, 0), "B matched"),
                              ((plane.attrs["third_alpha"], plane.attrs["third_beta"]), "B")]:
            _star(ax, x, y, label)
        ax.set_xlabel("along B matched − A (units of its length)")
        ax.set_ylabel("towards B (same units)")
    return fig


def simplex_figure(plane: xr.Dataset):
    """The plane through three optima with the trained triangle's loss at its points
    (:func:`~landscape_widgets.analysis.simplex.simplex_plane`), on one colour scale, and
    each straight line's barrier at its middle."""
    fig, axes = _subplots(figsize=(6, 4.5))
    ax = axes[0, 0]
    cs = _log_map(ax, plane, np.log10(plane["loss"]), "log10 training loss")
    vmin, vmax = cs.get_clim()
    ax.scatter(plane["tunnel_alpha"], plane["tunnel_beta"], c=np.log10(plane["tunnel_loss"]), vmin=vmin,
               vmax=vmax, edgecolors="white", s=60, label="trained surface")
    corners = np.stack([plane["vertex_alpha"], plane["vertex_beta"]], 1)
    ax.plot(*np.vstack([corners, corners[:1]]).T, "w--", lw=1, label="straight lines")
    for i, (x, y) in enumerate(corners):
        _star(ax, x, y, f"network {i + 1}")
    middle = corners.mean(0)
    for (i, j), barrier in zip(plane.attrs.get("pairs", []), plane.attrs.get("linear_barriers", [])):
        edge = (corners[i] + corners[j]) / 2
        outward = (edge - middle) / max(float(np.linalg.norm(edge - middle)), 1e-12)
        ax.annotate(f"barrier {barrier:.2f}", edge, xytext=tuple(22 * outward), textcoords="offset points",
                    color="white", fontsize=8, ha="center", va="center",
                    bbox={"boxstyle": "round", "fc": "black", "alpha": 0.5, "lw": 0})
    ax.set_xlabel("along network 2 − network 1 (units of its length)")
    ax.set_ylabel("towards network 3 (same units)")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def short_directions_figure(counts: Mapping[str, xr.Dataset]):
    """Short-direction counts along paths
    (:func:`~landscape_widgets.analysis.short_directions.short_directions`), one line
    per labelled path."""
    from matplotlib.ticker import MaxNLocator

    fig, axes = _subplots(figsize=(6, 3.5))
    ax = axes[0, 0]
    threshold = None
    for k, (name, ds) in enumerate(counts.items()):
        ax.plot(ds["t"], ds["count"], marker="osD^v"[k % 5], alpha=0.8, label=name)
        threshold = ds.attrs["threshold"]
    ax.set_xlabel("t (position along the path)")
    ax.set_ylabel(f"Hessian eigenvalues above {threshold:g}")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    return fig


def pal_figure(pal: xr.Dataset, ax=None):
    """The true loss along the negative gradient, PAL's parabola, its step and the true
    minimum (:func:`~landscape_widgets.analysis.line_search.pal_line`)."""
    if ax is None:
        ax = _subplots()[1][0, 0]
    fig = ax.figure
    ax.plot(pal["s"], pal["loss"], label="true loss along the line")
    ax.plot(pal["s"], pal["parabola"], "--", label="PAL's parabola")
    if np.isfinite(pal.attrs["s_star"]):
        ax.axvline(pal.attrs["s_star"], color="C1", lw=1, label="PAL's step")
    ax.axvline(pal.attrs["s_min"], color="C0", lw=1, label="true minimum")
    ax.set_xlabel("s (distance along the negative gradient, parameter units)")
    ax.set_ylabel(LOSS_LABEL)
    ax.legend(fontsize=8)
    return fig


def pal_caption(pal: xr.Dataset) -> str:
    """PAL's proposal against the true minimum, in words."""
    step = (f"PAL proposes a step of {pal.attrs['s_star']:.3g} (loss {pal.attrs['loss_at_s_star']:.3g})"
            if np.isfinite(pal.attrs["s_star"]) else
            f"at μ = {pal.attrs['mu']:g} the parabola opens downward, so PAL proposes no step")
    return f"{step}; the true minimum along the line is at {pal.attrs['s_min']:.3g} (loss {pal.attrs['loss_min']:.3g})."


def entropy_figure(ds: xr.Dataset, axes: Sequence | None = None):
    """The plain loss and the local entropy over a plane
    (:func:`~landscape_widgets.analysis.smoothing.local_entropy_map`), side by side."""
    if axes is None:
        axes = _subplots(1, 2, (11, 4))[1][0]
    for ax, values, label in [(axes[0], np.log10(ds["loss"]), "log10 training loss"),
                              (axes[1], ds["local_entropy"], f"local entropy (σ = {ds.attrs['sigma']:.3g})")]:
        _log_map(ax, ds, values, label, levels=15)
        _plane_labels(ax, ds)
    return axes[0].figure


def trust_figure(seeds: xr.Dataset, bootstrap: xr.Dataset):
    """The seed-averaged map, its spread over seeds and the data's bootstrap error
    (:mod:`~landscape_widgets.analysis.trust`), on one grid."""
    fig, axes = _subplots(1, 3, (15, 4))
    axes = axes[0]
    panels = [(seeds, np.log10(seeds["loss_mean"]), f"log10 mean loss over {seeds.sizes['seed']} seeds"),
              (seeds, seeds["loss_sd"], "sd of the loss over seeds"),
              (bootstrap, bootstrap["loss_se"], f"bootstrap standard error ({bootstrap.attrs['batches']} batches)")]
    for ax, (ds, values, label) in zip(axes, panels):
        _log_map(ax, ds, values, label, levels=15)
        _plane_labels(ax, ds)
    return fig


def radial_figure(norms: Mapping[str, xr.Dataset], widths: Mapping[str, float] | None = None):
    """The norm of the weights along training for several runs
    (:func:`~landscape_widgets.analysis.radial.weight_norms`), and optionally each final
    network's radial tunnel width as bars."""
    from matplotlib.ticker import MaxNLocator

    fig, axes = _subplots(1, 2 if widths else 1, (11 if widths else 6, 4))
    ax = axes[0, 0]
    for name, ds in norms.items():
        ax.plot(ds["epoch"], ds["norm"], marker=".", label=name)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("|θ| (norm of the weights, parameter units)")
    ax.legend(fontsize=8)
    if widths:
        ax = axes[0, 1]
        ax.barh(list(widths), list(widths.values()), color=[f"C{i}" for i in range(len(widths))])
        ax.set_xlabel("median radial tunnel width (parameter-space distance)")
        ax.invert_yaxis()
    return fig


def flatness_figure(table: xr.Dataset):
    """Local entropy against sharpness, one labelled point per model
    (:func:`~landscape_widgets.analysis.smoothing.flatness_table`)."""
    fig, axes = _subplots()
    ax = axes[0, 0]
    ax.errorbar(table["sharpness"], table["local_entropy"], yerr=table["local_entropy_stderr"], fmt="o")
    for name, x, y in zip(table["model"].values, table["sharpness"].values, table["local_entropy"].values):
        ax.annotate(str(name), (x, y), xytext=(5, 5), textcoords="offset points", fontsize=8)
    ax.set_xlabel(f"sharpness: mean loss increase at radius {table.attrs['radius']:g} (filter-normalized)")
    ax.set_ylabel(f"local entropy (σ = {table.attrs['sigma']:.3g})")
    ax.margins(0.2)
    return fig


def convexity_figure(maps: Mapping[str, xr.Dataset]):
    """For each convexity map (:func:`~landscape_widgets.analysis.curvature.convexity_map`),
    a row: the loss on its plane, and |λ_min / λ_max| on one fixed scale from 0 to 1 for
    all rows, in the live view's colours (:data:`~landscape_widgets.plotting.colours.CONVEXITY_COLOURS`:
    blue up to :data:`~landscape_widgets.analysis.curvature.CONVEX_THRESHOLD`, red above)."""
    from matplotlib.colors import LinearSegmentedColormap

    from ..analysis.curvature import CONVEX_THRESHOLD
    from .colours import CONVEXITY_COLOURS, CONVEXITY_RANGE

    fig, axes = _subplots(len(maps), 2, figsize=(11, 4.4 * len(maps)))
    cmap = LinearSegmentedColormap.from_list("convexity", CONVEXITY_COLOURS).with_extremes(over=CONVEXITY_COLOURS[-1])
    for (name, ds), (left, right) in zip(maps.items(), axes):
        bounds = round_levels(ds["loss"].values, 20)
        cs = left.contourf(ds["alpha"], ds["beta"], ds["loss"].T, levels=bounds, cmap="viridis")
        round_colour_bar(fig, cs, left, f"{LOSS_LABEL}, this row's scale", bounds)
        left.set_title(f"{name}: loss on the plane\n(colour scale of this row only)")
        mesh = right.pcolormesh(ds["alpha"], ds["beta"], ds["convexity"].T, shading="nearest", cmap=cmap,
                                vmin=CONVEXITY_RANGE[0], vmax=CONVEXITY_RANGE[1])
        bar = fig.colorbar(mesh, ax=right, label="|λ_min / λ_max| (0 = convex)")
        bar.set_ticks([0.0, CONVEX_THRESHOLD, 0.5, 0.75, 1.0])
        right.set_title(f"{name}: convexity map\n(one fixed scale for all rows)")
        for ax in (left, right):
            _plane_labels(ax, ds)
            mark_centre(ax)
            # the grid's range on both panels (the outer cells' outer halves lie outside)
            ax.set_xlim(float(ds["alpha"][0]), float(ds["alpha"][-1]))
            ax.set_ylim(float(ds["beta"][0]), float(ds["beta"][-1]))
            ax.set_box_aspect(1)
            set_round_ticks(ax)
    return fig
