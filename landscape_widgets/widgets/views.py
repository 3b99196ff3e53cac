"""Views of a (partially computed) landscape: 1-D lines, 2-D contour map, 3-D slices
(bqplot; the ipyvolume views are in :mod:`~landscape_widgets.widgets.volume_views`).

Every view has a ``widget`` (put it in your layout) and ``update(ds, metric, scale)``,
which redraws from a result dataset (see :mod:`landscape_widgets.core.results`) in which
only the points marked ``done`` are computed. Views never compute anything; call
``update`` from any thread (the :class:`~landscape_widgets.widgets.runner.Runner` calls
it from its worker thread).

``metric`` is ``"loss"``, ``"accuracy"`` or ``"log-loss"`` (log10 of the loss) and
``scale`` is the colour / height scale, ``"linear"`` or ``"log"`` (log10 of the value).
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from ..core.results import SE_SUFFIX, known_cells
from ..plotting.colours import MISSING_COLOUR
from ..plotting.fields import fill_nearest, interpolate_linear, level_interpolation, preview_field
from ..plotting.figures import log10_positive
from ..plotting.labels import axis_label, axis_labels
from ..plotting.ticks import round_levels, round_ticks
from .progress import points_done

if TYPE_CHECKING:
    import bqplot as bq

METRICS: tuple[str, ...] = ("loss", "accuracy", "log-loss")
SCALES: tuple[str, ...] = ("linear", "log")
#: Number of contour levels drawn on the 2-D map.
N_CONTOURS = 12
#: d3 format of colour-bar ticks: plain decimals to 3 significant digits, one style for
#: every magnitude ("900", "1,200", "0.025"; never "1.20e+3" beside "900").
TICK_FORMAT = ",.3~r"
LOSS_COLOUR, ACCURACY_COLOUR = "#1f77b4", "#ff7f0e"
#: The plot area where nothing is computed yet, and computed cells whose value is not finite.
EMPTY_COLOUR = "#eeeeee"
_TINY = 1e-12
#: Opacity of the veil over cells shown from data-sample estimates: VEIL_LEAST at a
#: relative standard error near 0, VEIL_MOST from VEIL_FULL on.
VEIL_LEAST, VEIL_MOST, VEIL_FULL = 0.25, 0.7, 0.2


def metric_values(ds: xr.Dataset, metric: str = "loss", scale: str = "linear") -> tuple[np.ndarray, str]:
    """The values to draw and their label; points not computed (nor estimated) yet are NaN.

    Parameters
    ----------
    ds : xr.Dataset
        A landscape result (``loss``, maybe ``accuracy``, ``done``).
    metric : {"loss", "accuracy", "log-loss"}
        ``log-loss`` is log10 of the loss.
    scale : {"linear", "log"}
        ``log`` takes log10 of the metric (values <= 0 become missing).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if metric == "accuracy" and "accuracy" not in ds:
        raise ValueError("this landscape has no accuracy (not a classification task); use metric='loss'")
    name = "accuracy" if metric == "accuracy" else "loss"
    values = np.where(known_cells(ds), ds[name].values, np.nan).astype(float)
    label = name
    if metric == "log-loss":
        values, label = log10_positive(values), "log10(loss)"
    if scale == "log":
        values, label = log10_positive(values), f"log10({label})"
    return values, label


def contour_lines(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, levels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Contour lines of ``z[len(x), len(y)]`` as equal-length rows for bqplot ``Lines``.

    Each row is one line; shorter lines are padded by repeating their last point, which
    draws nothing extra. Returns two ``[n_lines, n]`` arrays (empty when there is none).
    """
    import contourpy

    if z.shape != (len(x), len(y)) or min(z.shape) < 2 or not np.isfinite(z).any():
        return np.zeros((0, 2)), np.zeros((0, 2))
    gen = contourpy.contour_generator(x, y, np.ma.masked_invalid(z.T), line_type="Separate")
    lines = [seg for level in levels for seg in gen.lines(level) if len(seg) > 1]
    if not lines:
        return np.zeros((0, 2)), np.zeros((0, 2))
    n = max(len(seg) for seg in lines)
    padded = np.stack([np.concatenate([seg, np.repeat(seg[-1:], n - len(seg), axis=0)]) for seg in lines])
    return padded[:, :, 0], padded[:, :, 1]


def contour_levels(z: np.ndarray, n: int = N_CONTOURS) -> np.ndarray:
    """``n`` evenly spaced levels strictly inside the finite range of ``z``."""
    finite = z[np.isfinite(z)]
    if finite.size == 0 or finite.min() == finite.max():
        return np.zeros(0)
    return np.linspace(finite.min(), finite.max(), n + 2)[1:-1]


def colour_limits(values: np.ndarray) -> tuple[float, float] | None:
    """The finite range of ``values`` (a constant one widened by 0.5 each way), or None."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    lo, hi = float(finite.min()), float(finite.max())
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def display_field(ds: xr.Dataset, metric: str, scale: str) -> tuple[np.ndarray, str]:
    """Values with the cells not computed yet filled in (:func:`preview_field`)."""
    values, label = metric_values(ds, metric, scale)
    coords = [ds[n].values for n in ds["loss"].dims]
    return preview_field(values, known_cells(ds), coords), label


def _pixels(size: str) -> int:
    """``"640px"`` -> 640 (other CSS sizes: 640)."""
    return int(size[:-2]) if size.endswith("px") and size[:-2].isdigit() else 640


#: How near (px) to the lower-left corner an x tick may sit before its label gives way to
#: the y axis's labels there.
CORNER_PX = 16


def corner_free_ticks(lo: float, hi: float, pixels: int = 460, right_axis: bool = False) -> np.ndarray:
    """Round tick values over the drawn ``[lo, hi]``, about one per 55 pixels of the axis so
    that their labels do not run together, without those within :data:`CORNER_PX` of ``lo``
    (the x axis leaves the lower-left corner to the y axis's labels, so the two do not
    collide), nor of ``hi`` beside a ``right_axis``."""
    ticks = round_ticks(lo, hi, max(2, pixels // 55))
    margin = CORNER_PX / max(1, pixels) * (hi - lo)
    return ticks[(ticks > lo + margin) & ((ticks < hi - margin) if right_axis else True)]


def exact_tick_format(ticks: np.ndarray) -> str:
    """The d3 format that writes every one of ``ticks`` exactly, with as few decimals as
    that takes (0.25 steps as "0.25", "0.50", never "0.3" beside "0.5")."""
    ticks = np.asarray(ticks, dtype=float)
    scale = max(1.0, float(np.abs(ticks).max(initial=0.0)))
    for decimals in range(7):
        if np.allclose(ticks, np.round(ticks, decimals), rtol=0.0, atol=1e-9 * scale):
            return f",.{decimals}f"
    return TICK_FORMAT


def write_ticks(axis: bq.Axis, ticks: np.ndarray) -> None:
    """Give ``axis`` the tick values ``ticks``, written exactly (:func:`exact_tick_format`).

    The format goes to the page first: bqplot draws new tick values in a transition that
    writes their labels when it starts, after the messages that follow, with the format of
    the moment it was made; a format sent after the values would be overwritten by the
    previous one (0.05 written as "0.1")."""
    axis.tick_format = exact_tick_format(ticks)
    axis.tick_values = ticks


def tick_label_pixels(ticks: np.ndarray, tick_format: str) -> int:
    """About how wide the widest label of ``ticks`` is drawn in the d3 ``tick_format``
    of :func:`exact_tick_format` (bqplot's 11 px tick font)."""
    fmt = tick_format[1:]  # d3's ",.2f" is Python's too; the fallback is 7 characters
    widest = max((len(format(float(v), fmt)) for v in ticks), default=1) if fmt.endswith("f") else 7
    return 7 * widest


def set_x_ticks(axis: bq.Axis, lo: float, hi: float, pixels: int, right_axis: bool = False) -> None:
    """Give ``axis`` the :func:`corner_free_ticks` of ``[lo, hi]``, written exactly."""
    write_ticks(axis, corner_free_ticks(lo, hi, pixels, right_axis))


def set_y_ticks(axis: bq.Axis, values: np.ndarray, pixels: int) -> int | None:
    """Give a vertical ``axis`` round ticks, about one per 40 pixels, written exactly
    (bqplot's own crowd a short axis), and make its scale's domain run from the last of
    them at or below the finite ``values`` it shows to the first at or above them (so
    that, say, a loss from 0.02 to 2.9 reads from 0 to 3); no ticks while no value is
    finite. The axis label sits just beyond the widest tick label: returns its offset
    from the axis in pixels (None while there are no ticks)."""
    finite = np.asarray(values, dtype=float)
    if not np.isfinite(finite).any():
        axis.tick_values = None
        return None
    ticks = round_levels(finite, max(2, pixels // 40))
    axis.scale.min, axis.scale.max = float(ticks[0]), float(ticks[-1])
    write_ticks(axis, ticks)
    offset = tick_label_pixels(ticks, axis.tick_format) + 16
    axis.label_offset = f"{offset}px"
    return offset


def _status(ds: xr.Dataset) -> str:
    done = int(ds["done"].values.sum())
    size = ds["done"].size
    shape = ds["done"].shape
    grid = f"{'x'.join(str(n) for n in shape)} grid, " if len(shape) > 1 else ""
    estimated = int(known_cells(ds).sum()) - done
    if estimated:
        return f"{grid}{points_done(done, size)} + {estimated:,} estimated (faded)"
    state = "" if done == size else " (stopped)" if ds.attrs.get("stopped") else " (filling in)"
    return f"{grid}{points_done(done, size)}{state}"


def value_text(values: np.ndarray, done: np.ndarray, known: np.ndarray) -> list[str]:
    """How the map's tooltip writes each value: 4 significant digits, "≈" before an
    estimate from a data sample (``known`` but not ``done``), "not finite (nan)" for a
    computed non-finite value and "not computed yet" for the rest."""
    return [(f"{v:.4g}" if np.isfinite(v) else f"not finite ({v})") if d else
            (f"≈{v:.4g} (estimate)" if k and np.isfinite(v) else "not computed yet")
            for v, d, k in zip(values.tolist(), done.tolist(), known.tolist())]


def uncertainty(ds: xr.Dataset) -> np.ndarray:
    """Relative standard error of the loss shown in each cell: 0 where exact, that of the
    nearest estimate where the picture comes from data-sample estimates (NaN: nothing)."""
    done = ds["done"].values
    known = known_cells(ds)
    if "loss" + SE_SUFFIX not in ds or done.all():
        return np.where(known, 0.0, np.nan)
    loss, se = ds["loss"].values, ds["loss" + SE_SUFFIX].values
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(done, 0.0, np.abs(se) / np.maximum(np.abs(loss), _TINY))
    return fill_nearest(np.where(known, rel, np.nan), known)


class LineView:
    """1-D landscape: loss (left axis) and accuracy (right axis) against alpha, bqplot."""

    def __init__(self, normalization: str | None = "filter", height: str = "380px", width: str = "100%") -> None:
        import bqplot as bq

        self.x_scale = bq.LinearScale()
        self.loss_scale = bq.LinearScale()
        self.acc_scale = bq.LinearScale(min=0.0, max=1.0)
        self.loss_line = bq.Lines(
            x=np.zeros(0), y=np.zeros(0), scales={"x": self.x_scale, "y": self.loss_scale},
            colors=[LOSS_COLOUR], marker="circle", marker_size=16,
        )
        self.acc_line = bq.Lines(
            x=np.zeros(0), y=np.zeros(0), scales={"x": self.x_scale, "y": self.acc_scale},
            colors=[ACCURACY_COLOUR], marker="square", marker_size=16,
        )
        # computed points whose loss is not finite (a gap in the curve): grey crosses on the x axis
        self.missing = bq.Scatter(x=np.zeros(0), y=np.zeros(0), scales={"x": self.x_scale, "y": self.loss_scale},
                                  marker="cross", colors=[MISSING_COLOUR], default_size=64, tooltip=None)
        self.normalization = normalization
        self.x_axis = bq.Axis(scale=self.x_scale, label=axis_label("alpha", normalization))
        # each curve is named by its own axis, drawn in its colour: no legend box over the data
        # (bqplot colours tick labels by ``color`` only when the axis is drawn; ``tick_style``
        # is applied again to the labels of new ticks)
        self.loss_axis = bq.Axis(scale=self.loss_scale, orientation="vertical", label="loss (circles)",
                                 label_offset="45px", color=LOSS_COLOUR, label_color=LOSS_COLOUR,
                                 tick_style={"fill": LOSS_COLOUR})
        self.acc_axis = bq.Axis(scale=self.acc_scale, orientation="vertical", side="right",
                                label="accuracy (squares, fraction correct)", label_offset="45px",
                                color=ACCURACY_COLOUR, label_color=ACCURACY_COLOUR,
                                tick_style={"fill": ACCURACY_COLOUR},
                                grid_lines="none")  # one set of grid lines: the loss axis's
        self.widget = bq.Figure(
            marks=[self.loss_line, self.acc_line, self.missing],
            axes=[self.x_axis, self.loss_axis, self.acc_axis],
            title="1-D landscape",
            fig_margin={"top": 50, "bottom": 50, "left": 70, "right": 70},
            layout={"width": width, "height": height}, display_toolbar=False,  # (it covered the title)
        )
        self._plot_px = _pixels(width) - 140  # less the margins: how many x ticks fit
        self._plot_height = _pixels(height) - 100
        set_y_ticks(self.acc_axis, np.array([0.0, 1.0]), self._plot_height)

    def update(self, ds: xr.Dataset, metric: str = "loss", scale: str = "linear", title: str = "1-D landscape") -> None:
        """Draw the computed points of a 1-D result (its one axis: ``alpha`` for a line, or
        either axis of a 2-D result's cross-section)."""
        (dim,) = ds["loss"].dims
        alpha = ds[dim].values
        done = ds["done"].values
        loss_metric = "loss" if metric == "accuracy" else metric
        loss, label = metric_values(ds, loss_metric, scale)
        with self.widget.hold_sync():
            self.x_scale.min, self.x_scale.max = float(alpha[0]), float(alpha[-1])
            set_x_ticks(self.x_axis, float(alpha[0]), float(alpha[-1]), self._plot_px, right_axis=True)
            (self.x_axis.label,) = axis_labels(ds, (dim,), self.normalization)
            self.loss_axis.label = f"{label} (circles)"
            offset = set_y_ticks(self.loss_axis, loss[done], self._plot_height)
            # room for the loss axis's label beyond its tick labels, however many decimals they take
            left = max(70, (offset or 0) + 22)
            if self.widget.fig_margin["left"] != left:
                self.widget.fig_margin = {**self.widget.fig_margin, "left": left}
            with self.loss_line.hold_sync():
                self.loss_line.x, self.loss_line.y = alpha[done], loss[done]
            if "accuracy" in ds:
                with self.acc_line.hold_sync():
                    self.acc_line.x, self.acc_line.y = alpha[done], ds["accuracy"].values[done]
            bad = done & ~np.isfinite(loss)
            bottom = 0.0 if self.loss_scale.min is None else float(self.loss_scale.min)
            with self.missing.hold_sync():
                self.missing.x, self.missing.y = alpha[bad], np.full(int(bad.sum()), bottom)
            note = f" · {int(bad.sum()):,} not finite (grey crosses)" if bad.any() else ""
            self.widget.title = f"{title}: {_status(ds)}{note}"


class ContourView:
    """2-D landscape: heat map + contour lines + colour bar + centre marker, bqplot."""

    def __init__(self, normalization: str | None = "filter", width: str = "640px",
                 height: str = "540px", scheme: str = "viridis", contour_colour: str = "white",
                 color_scale=None, color_bar: bool = True, targets: bool = False) -> None:
        import bqplot as bq
        import ipywidgets as w

        self.x_scale, self.y_scale = bq.LinearScale(), bq.LinearScale()
        # an explicit domain from the start: the empty map is grey and the colour bar has ticks
        self.color_scale = color_scale or bq.ColorScale(scheme=scheme, min=0.0, max=1.0)
        scales = {"x": self.x_scale, "y": self.y_scale}
        # hidden until the first points: the plot area's grey shows through
        self.underlay, self.heatmap = seamless_heatmap(scales={**scales, "color": self.color_scale},
                                                       null_color=EMPTY_COLOUR)
        self.contours = bq.Lines(x=np.zeros((0, 2)), y=np.zeros((0, 2)), scales=scales,
                                 colors=[contour_colour], stroke_width=1.2, opacities=[0.9])
        # computed cells whose value is not finite (NaN, inf): squares over the heat map,
        # which would paint them black
        self.missing = bq.Scatter(x=np.zeros(0), y=np.zeros(0), scales=scales, marker="square",
                                  colors=[MISSING_COLOUR], default_size=64, tooltip=None)
        # cells whose picture comes from data-sample estimates: a white veil, the more
        # opaque the larger their relative standard error, clear where exact; one image,
        # a pixel per cell (a heat map of semi-transparent cells would overlap them by
        # half a pixel, drawing the cell edges as a lattice of whiter lines)
        self.veil = bq.Image(image=w.Image(format="png"), scales=scales, pixelated=True, visible=False)
        self._plot_px = (_pixels(width) - 70 - (110 if color_bar else 20), _pixels(height) - 100)  # less margins
        self.centre = bq.Scatter(x=[0.0], y=[0.0], scales=scales, marker="cross",
                                 colors=["red"], default_size=120, stroke="white",
                                 tooltip=None)
        self.normalization = normalization
        self.x_axis = bq.Axis(scale=self.x_scale, label=axis_label("alpha", normalization))
        set_x_ticks(self.x_axis, -1.0, 1.0, self._plot_px[0])
        self.y_axis = bq.Axis(scale=self.y_scale, orientation="vertical",
                              label=axis_label("beta", normalization), label_offset="45px")
        self._set_y_ticks(-1.0, 1.0)
        self.color_axis = bq.ColorAxis(scale=self.color_scale, side="right", label="loss",
                                       tick_format=TICK_FORMAT)
        # ``targets``: invisible markers on grid points that take the cursor: hovering shows
        # the coordinates and the value as text (:func:`value_text`: "not computed yet"
        # rather than NaN), and ``targets.on_element_click`` / ``on_hover`` get them
        self.targets = bq.Scatter(
            x=np.zeros(0), y=np.zeros(0), names=[], names_unique=False, display_names=False, default_size=40,
            opacities=[0.0], marker="square", scales=scales,
            tooltip=bq.Tooltip(fields=["x", "y", "name"], labels=["alpha", "beta", "loss"],
                               formats=[".3~g", ".3~g", ""]),
        ) if targets else None
        self.widget = bq.Figure(
            marks=[self.underlay, self.heatmap, self.veil, self.missing, self.contours, self.centre]
            + [self.targets] * targets,
            axes=[self.x_axis, self.y_axis] + ([self.color_axis] if color_bar else []),
            title="2-D landscape", padding_x=0, padding_y=0, background_style={"fill": EMPTY_COLOUR},
            fig_margin={"top": 50, "bottom": 50, "left": 70, "right": 110 if color_bar else 20},
            layout={"width": width, "height": height}, display_toolbar=False,  # (it covered the title)
        )

    def _set_y_ticks(self, lo: float, hi: float) -> None:
        """A few round ticks over the vertical axis's ``[lo, hi]``, about one per 80 px."""
        write_ticks(self.y_axis, round_ticks(lo, hi, max(2, self._plot_px[1] // 80)))

    def update(self, ds: xr.Dataset, metric: str = "loss", scale: str = "linear",
               limits: tuple[float, float] | None = None, title: str = "2-D landscape", status: bool = True) -> None:
        """Draw a 2-D result (its two axes, e.g. ``alpha`` x ``beta``); cells not computed
        yet show :func:`~landscape_widgets.plotting.fields.preview_field` (a cubic
        interpolation of the finest complete coarse level; the contours follow it, or a
        linear interpolation of the known cells before), cells shown from data-sample estimates are veiled by their
        relative error (:func:`uncertainty`), computed non-finite values are dark grey
        squares. ``limits``: the colour range (default the shown values'); ``status``: the
        title ends with the number of points computed."""
        names = ds["loss"].dims
        alpha, beta = ds[names[0]].values, ds[names[1]].values
        values, label = metric_values(ds, metric, scale)
        done, known = ds["done"].values, known_cells(ds)
        field = level_interpolation(values, known, (alpha, beta))
        z = fill_nearest(values, known) if field is None else field
        smooth = interpolate_linear(alpha, beta, values, known) if field is None else field
        unc = uncertainty(ds)
        veiled = unc > 0
        cx, cy = contour_lines(alpha, beta, smooth, contour_levels(smooth))
        with self.widget.hold_sync():
            self.x_scale.min, self.x_scale.max = float(alpha[0]), float(alpha[-1])
            self.y_scale.min, self.y_scale.max = float(beta[0]), float(beta[-1])
            # the given range or the shown values', a constant one widened alike
            limits = colour_limits(np.asarray(z if limits is None else limits, dtype=float))
            if limits is not None:
                self.color_scale.min, self.color_scale.max = limits
            # the heat map draws its outer cells whole: the axes span their outer edges
            set_x_ticks(self.x_axis, *cell_extent(alpha), self._plot_px[0])
            self._set_y_ticks(*cell_extent(beta))
            set_cells((self.underlay, self.heatmap), alpha, beta, z.T, bool(known.any()))
            bad_a, bad_b = np.nonzero(done & ~np.isfinite(values))
            cell = min(self._plot_px[0] / len(alpha), self._plot_px[1] / len(beta))
            with self.veil.hold_sync():
                if veiled.any():
                    self.veil.x, self.veil.y = cell_extent(alpha), cell_extent(beta)
                    self.veil.image.value = png_bytes(veil_pixels(np.where(veiled, unc, 0.0)))
                _show(self.veil, bool(veiled.any()))
            with self.missing.hold_sync():
                self.missing.x, self.missing.y = alpha[bad_a], beta[bad_b]
                self.missing.default_size = max(4, int(cell * cell))
            with self.contours.hold_sync():
                self.contours.x, self.contours.y = cx, cy
            if self.targets is not None:
                ia, ib = np.meshgrid(around_centre(len(alpha)), around_centre(len(beta)), indexing="ij")
                # squares as wide as their spacing tile the map: a click anywhere hits one
                side = min(self._plot_px[0] / ia.shape[0], self._plot_px[1] / ib.shape[1])
                with self.targets.hold_sync():
                    self.targets.default_size = max(40, int(side * side))
                    self.targets.x, self.targets.y = alpha[ia].ravel(), beta[ib].ravel()
                    self.targets.names = value_text(values[ia, ib].ravel(), done[ia, ib].ravel(),
                                                    known[ia, ib].ravel())
                    self.targets.tooltip.labels = [*names, label]
            self.color_axis.label = label
            self.x_axis.label, self.y_axis.label = axis_labels(ds, names, self.normalization)
            self.widget.title = f"{title}: {_status(ds)}" if status else title


#: Most cursor targets per axis of a map: each is an SVG element of its own, and the
#: browser draws thousands slowly.
MAX_TARGETS = 16


def around_centre(n: int) -> np.ndarray:
    """Indices of the middle of ``n`` grid values and of every ``step``-th one out from it,
    at most :data:`MAX_TARGETS` (the grids have an odd number of points, 0 in the middle)."""
    mid = n // 2
    step = max(1, -(-(n - 1) // (MAX_TARGETS - 1)))
    return mid + step * np.arange(-(mid // step), (n - 1 - mid) // step + 1)


def veil_pixels(unc: np.ndarray) -> np.ndarray:
    """The veil over a map of relative standard errors ``unc`` (alpha x beta, 0 where
    exact): RGBA pixels, one per cell, beta rising upwards; white, clear where exact,
    from :data:`VEIL_LEAST` opaque at an error near 0 to :data:`VEIL_MOST` from
    :data:`VEIL_FULL` on."""
    opacity = VEIL_LEAST + (VEIL_MOST - VEIL_LEAST) * np.clip(unc / VEIL_FULL, 0.0, 1.0)
    pixels = np.full((*unc.T.shape, 4), 255, dtype=np.uint8)
    pixels[..., 3] = np.where(unc.T > 0, np.round(255 * opacity.T), 0)
    return pixels[::-1]


def png_bytes(pixels: np.ndarray) -> bytes:
    """An RGBA array (rows top to bottom) as PNG bytes."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(out, format="png")
    return out.getvalue()


def cell_extent(values: np.ndarray) -> list[float]:
    """From the first cell's outer edge to the last one's, for cells centred on evenly
    spaced ``values`` (as a heat map draws them)."""
    half = 0.5 * (values[-1] - values[0]) / max(1, len(values) - 1)
    return [float(values[0] - half), float(values[-1] + half)]


def seamless_heatmap(**kwargs) -> tuple[bq.HeatMap, bq.HeatMap]:
    """Two bqplot heat maps of the same cells (``kwargs``: their scales, ``null_color``...),
    to draw one over the other, both hidden until :func:`set_cells` draws them.

    bqplot paints the cells on a canvas at fractional pixel positions: where two cells
    meet, the anti-aliased edges leave pixels up to 6% transparent, and the plot area's
    background shows through as a faint lattice of light lines. Over a copy of itself
    such a pixel is opaque but for 0.4%. Returns ``(under, over)``.
    """
    import bqplot as bq

    return tuple(bq.HeatMap(x=np.array([-1.0, 1.0]), y=np.array([-1.0, 1.0]), color=np.full((2, 2), np.nan),
                            visible=False, **kwargs) for _ in range(2))


def set_cells(marks: tuple[bq.HeatMap, ...], x: np.ndarray, y: np.ndarray, color: np.ndarray,
              visible: bool = True) -> None:
    """Draw the same cells (``color`` of shape ``(len(y), len(x))``) on every heat map of
    ``marks`` (those of :func:`seamless_heatmap`), under one first."""
    for mark in marks:
        with mark.hold_sync():
            mark.x, mark.y, mark.color = x, y, color
            _show(mark, visible)


def _show(mark, visible: bool) -> None:
    """Set a mark's ``visible`` and send it with this redraw even when unchanged. A page
    that connects while a run is drawing can miss an update (the front end drops messages
    for widgets it has not created yet); the next redraw sends the data again, but a
    missed change of ``visible`` alone would hide a finished map for good."""
    mark.visible = visible
    mark.send_state("visible")


def shared_color_bar(color_scale, height: int, label: str = "loss"):
    """One colour bar, in a figure of its own, beside maps of ``height`` px (figures with
    50 px top and bottom margins, as :class:`ContourView`'s) sharing ``color_scale``,
    level with their plot areas. bqplot draws a figure's colour bar 100 px in from each
    end of its plot area, too short beside a small map: the figure is 200 px taller than
    the maps and starts 100 px above them. Returns ``(figure, color_axis)``."""
    import bqplot as bq

    axis = bq.ColorAxis(scale=color_scale, side="right", label=label, tick_format=TICK_FORMAT)
    hidden = bq.HeatMap(x=np.array([0.0, 1.0]), y=np.array([0.0, 1.0]), color=np.zeros((2, 2)), visible=False,
                        scales={"x": bq.LinearScale(), "y": bq.LinearScale(), "color": color_scale})
    figure = bq.Figure(marks=[hidden], axes=[axis], fig_margin={"top": 50, "bottom": 50, "left": 0, "right": 90},
                       layout={"width": "130px", "height": f"{height + 200}px", "margin": "-100px 0 -100px 0"})
    return figure, axis


class SliceView:
    """A 3-D result as three orthogonal slices through it: heat maps on one colour scale
    (one colour bar, the 2-D view's colour map), each slice's position set by a slider.
    The slices start through the centre."""

    PLANES = (("alpha", "beta", "gamma"), ("alpha", "gamma", "beta"), ("beta", "gamma", "alpha"))

    def __init__(self, normalization: str | None = "filter", size: int = 340) -> None:
        import threading

        import bqplot as bq
        import ipywidgets as w

        self.color_scale = bq.ColorScale(scheme="viridis", min=0.0, max=1.0)
        self.views = [ContourView(normalization, width=f"{size}px", height=f"{size}px",
                                  color_scale=self.color_scale, color_bar=False) for _ in range(3)]
        self.color_bar, self.color_axis = shared_color_bar(self.color_scale, size)
        self.sliders = {fixed: w.SelectionSlider(options=[("0", 0)], description=f"{fixed} =",
                                                 continuous_update=False) for _, _, fixed in self.PLANES}
        for slider in self.sliders.values():
            slider.observe(lambda _: self._redraw(), "value")
            slider.add_class("landscape-slice-slider")
        self.heading = w.HTML("<b>slices through the volume</b>")
        self.widget = w.VBox([self.heading, w.HBox(list(self.sliders.values())),
                              w.HBox([v.widget for v in self.views] + [self.color_bar])])
        self.widget.add_class("landscape-slices")
        self._lock = threading.RLock()
        self._shown: tuple[xr.Dataset, str, str] | None = None
        self._updating = False

    def update(self, ds: xr.Dataset, metric: str = "loss", scale: str = "linear") -> None:
        """Draw the slices of a 3-D result at the sliders' positions."""
        with self._lock:
            self._shown = (ds, metric, scale)
            for name, slider in self.sliders.items():
                coords = ds[name].values
                options = [(f"{c:.3g}", i) for i, c in enumerate(coords)]
                if [o[0] for o in slider.options] != [o[0] for o in options]:
                    self._updating = True  # one redraw below, not one per trait change
                    try:
                        slider.options = options
                        slider.value = int(np.argmin(np.abs(coords)))  # through the centre
                    finally:
                        self._updating = False
            self._redraw()

    def _redraw(self) -> None:
        with self._lock:
            if self._shown is None or self._updating:
                return
            ds, metric, scale = self._shown
            values, label = metric_values(ds, metric, scale)
            self.color_axis.label = label
            self.heading.value = f"<b>slices through the volume</b> (one colour scale): {_status(ds)}"
            limits = colour_limits(values)
            for (_, _, fixed), view in zip(self.PLANES, self.views):
                index = int(self.sliders[fixed].value)
                at = float(ds[fixed].values[index])
                # the trained network (the centre) lies in the slice through 0 only
                view.centre.visible = index == int(np.argmin(np.abs(ds[fixed].values)))
                view.update(ds.isel({fixed: index}), metric, scale, limits, title=f"slice {fixed} = {at:.3g}",
                            status=False)
