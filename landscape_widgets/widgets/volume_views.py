"""The 3-D views drawn by ipyvolume (WebGL, rotatable): a 2-D landscape as a height
surface, and a 3-D landscape as nested translucent isosurfaces.

Both colour the metric with the 2-D view's colour map over the same range as the 3-D
slices beside them (:class:`~landscape_widgets.widgets.views.SliceView`), and both carry
an HTML title with the status, a colour key and an axis key: ipyvolume draws its own
tick labels as small fixed-size sprites and clips long axis names, so its box is
labelled with single letters (α, β, γ; h for a surface's height) that the key under it
spells out.

ipyvolume is the library here because it renders translucent meshes under Voila and
headless Chromium (software WebGL) with the stack the app already ships; a volume
rendering (``volshow``) was replaced by isosurfaces, which read at a glance and send a
mesh (tens of kB) instead of the whole volume (MBs) at every redraw.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import xarray as xr

from ..core.grids import grid_triangles
from ..plotting.colours import MISSING_COLOUR
from ..plotting.isosurfaces import isosurfaces, nested_levels
from ..plotting.labels import axis_labels
from ..plotting.ticks import round_ticks
from .views import _status, colour_limits, display_field, metric_values

#: Greek letters on the ipyvolume box, per grid axis.
SYMBOLS = {"alpha": "α", "beta": "β", "gamma": "γ"}
#: Positions the level slider offers: this many evenly spaced values inside the range.
N_LEVEL_CHOICES = 19
#: The level slider's first position, as an index into the choices (low: near the minimum).
DEFAULT_LEVEL_INDEX = 3
MAX_SURFACES = 3
#: Opacity of nested surfaces, innermost first, for 1, 2 or 3 surfaces.
OPACITIES = {1: (0.7,), 2: (0.85, 0.4), 3: (0.9, 0.5, 0.3)}
#: Partial redraws of the isosurfaces send at most this many bytes per second (on average
#: since the previous one); the complete result is always drawn.
MAX_BYTES_PER_SECOND = 1_000_000
CMAP = "viridis"


def colours(values: np.ndarray, limits: tuple[float, float]) -> np.ndarray:
    """RGB in [0, 1] of the colour map at ``values`` over ``limits``; a value that is not
    finite (or NaN: nothing to show) is :data:`~landscape_widgets.plotting.colours.MISSING_COLOUR` grey,
    never a colour of the map."""
    from matplotlib import colormaps
    from matplotlib.colors import to_rgb

    lo, hi = limits
    values = np.asarray(values, dtype=float)
    norm = np.clip((values - lo) / (hi - lo), 0.0, 1.0)
    rgb = colormaps[CMAP](np.nan_to_num(norm, nan=0.0))[..., :3].astype(np.float32)
    rgb[~np.isfinite(values)] = to_rgb(MISSING_COLOUR)
    return rgb


def missing_note(field: np.ndarray, where: str) -> str:
    """HTML: how many points of ``field`` are not finite and how they are drawn (nothing
    when all are finite)."""
    n = int(np.count_nonzero(~np.isfinite(field)))
    return (f"<div style='font-size:12px;margin:0 20px'><span style='color:{MISSING_COLOUR}'>■</span> "
            f"{n:,} point{'s' * (n != 1)} without a finite value (NaN, inf, or not positive on a log scale): "
            f"{where}</div>") if n else ""


def colour_key(limits: tuple[float, float], label: str, marks: list[tuple[float, str]] = ()) -> str:
    """HTML: a horizontal colour bar over ``limits`` with round tick values, named ``label``,
    with ``(value, text)`` marks drawn as triangles above it."""
    from matplotlib.colors import to_hex

    lo, hi = limits
    stops = ", ".join(to_hex(c) for c in colours(np.linspace(lo, hi, 11), limits))
    pos = lambda v: 100.0 * (v - lo) / (hi - lo)
    ticks = round_ticks(lo, hi, 8)  # at least four labels on any range, at least 40 px apart
    tick_html = "".join(f"<span style='position:absolute;left:{pos(t):.1f}%;transform:translateX(-50%)'>"
                        f"{t:.4g}</span>" for t in ticks)
    mark_html = "".join(f"<span title='{text}' style='position:absolute;left:{pos(v):.1f}%;bottom:0;"
                        f"transform:translateX(-50%);font-size:13px'>▼</span>" for v, text in marks)
    return (f"<div class='landscape-colour-key' style='width:340px;margin:4px 20px;font-size:12px'>"
            f"<div style='position:relative;height:16px'>{mark_html}</div>"
            f"<div style='height:14px;background:linear-gradient(to right, {stops});border:1px solid #999'></div>"
            f"<div style='position:relative;height:16px'>{tick_html}</div>"
            f"<div style='text-align:center'>{label}</div></div>")


def _tick(value: float) -> str:
    return f"{value:.3g}"


def axis_key(ds: xr.Dataset, names: tuple[str, ...], normalization: str | None, height: str = "") -> str:
    """HTML: what the box's letters mean, e.g. ``α = alpha (direction 1, ...)``, and
    ``h = height = {height}`` when given."""
    labels = axis_labels(ds, names, normalization)
    spans = [f"{SYMBOLS.get(n, n)} = {label}, {_tick(float(ds[n].values[0]))} to {_tick(float(ds[n].values[-1]))}"
             for n, label in zip(names, labels)] + [f"h = height = {height}"] * bool(height)
    return "<div style='font-size:12px;margin:0 20px'>" + "<br>".join(spans) + "</div>"


def _ipv_figure(size: int):
    import ipyvolume as ipv

    # ``ipv.figure`` (not ``ipv.Figure``) sets up the camera and lights the marks need;
    # the figure is placed in the layout directly (``ipv.show``'s panel breaks under ipyvue 3).
    figure = ipv.figure(width=size, height=size)
    ipv.view(azimuth=35, elevation=20, distance=2.6)  # the whole box in the canvas
    return figure


def _nothing():
    """Arrays of a mesh that draws nothing (one degenerate triangle)."""
    return np.zeros(3, np.float32), np.array([[0, 1, 2]], np.uint32)


class SurfaceView:
    """A 2-D landscape (or the ``gamma = 0`` plane of a 3-D one) as a height surface:
    height and colour are the metric (the height over the plane's range, the colour over
    the whole result's, as the slices)."""

    def __init__(self, normalization: str | None = "filter", size: int = 420) -> None:
        import ipyvolume as ipv
        import ipywidgets as w

        self.normalization = normalization
        self.figure = _ipv_figure(size)
        a = np.linspace(-1, 1, 2)
        X, Y = np.meshgrid(a, a, indexing="ij")
        self.mesh = ipv.plot_surface(X, np.zeros_like(X), Y, color="#eeeeee")
        # (an empty label breaks the figure: ipyvolume draws each label as a sprite)
        self.figure.xlabel, self.figure.ylabel, self.figure.zlabel = "α", "h", "β"
        self.title = w.HTML("<b>surface</b>")
        self.key = w.HTML()
        self.widget = w.VBox([self.title, self.figure, self.key], layout={"width": f"{size + 40}px"})
        self.widget.add_class("landscape-surface")

    def update(self, ds: xr.Dataset, metric: str = "loss", scale: str = "linear") -> None:
        """Draw a 2-D result, or the ``gamma = 0`` plane of a 3-D one (coloured over the
        whole volume's range, as the slices)."""
        limits = colour_limits(metric_values(ds, metric, scale)[0])
        plane = "height surface"
        if "gamma" in ds["loss"].dims:
            index = int(np.argmin(np.abs(ds["gamma"].values)))
            plane = f"the γ = {_tick(float(ds['gamma'].values[index]))} plane as a height surface"
            ds = ds.isel(gamma=index)
        alpha, beta = ds["alpha"].values, ds["beta"].values
        z, label = display_field(ds, metric, scale)
        self.title.value = f"<b>{plane}: height and colour = {label}</b><br>{_status(ds)}"
        if limits is None:
            return  # nothing computed yet
        height = np.nan_to_num(z, nan=limits[1])
        X, Y = np.meshgrid(alpha, beta, indexing="ij")
        with self.figure.hold_sync(), self.mesh.hold_sync():
            if np.size(self.mesh.x) != X.size:
                self.mesh.triangles = grid_triangles(*X.shape)
            self.mesh.x, self.mesh.z = X.ravel(), Y.ravel()
            self.mesh.y = height.ravel()
            self.mesh.color = colours(z, limits).reshape(-1, 3)
            self.figure.xlim = [float(alpha[0]), float(alpha[-1])]
            self.figure.zlim = [float(beta[0]), float(beta[-1])]
            self.figure.ylim = list(colour_limits(height))  # the plane's own range fills the box
        self.key.value = (colour_key(limits, f"{label} (height and colour)")
                          + missing_note(z, "grey, at the top of the range")
                          + axis_key(ds, ("alpha", "beta"), self.normalization, height=label))


class IsosurfaceView:
    """A 3-D landscape as 1-3 nested translucent isosurfaces of the metric.

    The level slider sets the outer surface (its labels are values of the metric); the
    others are evenly spaced between the smallest value and it, so the surfaces enclose
    the region around the minimum where the metric is below each level. Colours follow
    the slices' colour map and range; the key under the box marks each surface's level.
    """

    def __init__(self, normalization: str | None = "filter", size: int = 420) -> None:
        import ipyvolume as ipv
        import ipywidgets as w
        import pythreejs

        self.normalization = normalization
        self.figure = _ipv_figure(size)
        xyz, triangles = _nothing()
        self.meshes = [ipv.Mesh(x=xyz, y=xyz, z=xyz, triangles=triangles, color="#ffffff",
                                material=pythreejs.ShaderMaterial(transparent=True, side="DoubleSide",
                                                                  depthWrite=False))
                       for _ in range(MAX_SURFACES)]
        self.figure.meshes = self.figure.meshes + self.meshes
        self.figure.xlabel, self.figure.ylabel, self.figure.zlabel = "α", "β", "γ"
        self.level = w.SelectionSlider(options=[("-", DEFAULT_LEVEL_INDEX)], description="outer level",
                                       continuous_update=False, style={"description_width": "initial"})
        self.count = w.ToggleButtons(options=list(range(1, MAX_SURFACES + 1)), value=MAX_SURFACES,
                                     description="surfaces", style={"button_width": "32px"})
        self.level.add_class("landscape-iso-level")
        self.title = w.HTML("<b>isosurfaces</b>")
        self.key = w.HTML()
        self.widget = w.VBox([self.title, w.HBox([self.level, self.count]), self.figure, self.key],
                             layout={"width": f"{size + 60}px"})
        self.widget.add_class("landscape-isosurfaces")
        #: The levels drawn (metric values, innermost first).
        self.levels: np.ndarray = np.zeros(0)
        self._lock = threading.RLock()
        self._shown: tuple[xr.Dataset, str, str] | None = None
        self._updating = False
        self._sent = (0.0, 0)  # time and bytes of the latest partial redraw
        self.level.observe(lambda _: self._redraw(force=True), "value")
        self.count.observe(lambda _: self._redraw(force=True), "value")

    def update(self, ds: xr.Dataset, metric: str = "loss", scale: str = "linear") -> None:
        """Draw a 3-D result (``alpha`` x ``beta`` x ``gamma``)."""
        with self._lock:
            self._shown = (ds, metric, scale)
            self._redraw(force=False)

    def _redraw(self, force: bool) -> None:
        with self._lock:
            if self._shown is None or self._updating:
                return
            ds, metric, scale = self._shown
            values, label = metric_values(ds, metric, scale)
            limits = colour_limits(values)
            self.title.value = f"<b>isosurfaces of {label}</b><br>{_status(ds)}"
            if limits is None:
                return
            complete = bool(ds["done"].values.all())
            last_time, last_bytes = self._sent
            if not (force or complete) and time.monotonic() - last_time < last_bytes / MAX_BYTES_PER_SECOND:
                return  # within the byte budget of the previous redraw: skip this partial one
            choices = np.linspace(*limits, N_LEVEL_CHOICES + 2)[1:-1]  # the range's ends have no surface
            self._set_choices(choices)
            outer = float(choices[self.level.value])
            self.levels = nested_levels(limits[0], outer, int(self.count.value))
            shown, _ = display_field(ds, metric, scale)
            axes = [ds[n].values for n in ("alpha", "beta", "gamma")]
            field = np.where(np.isfinite(shown), shown, limits[1])
            inside = [lv for lv in self.levels if field.min() < lv < field.max()]
            surfaces = dict(zip(inside, isosurfaces(axes, field, inside)))
            sent = 0
            with self.figure.hold_sync():
                for mesh, i in zip(self.meshes, range(MAX_SURFACES)):
                    sent += self._draw_mesh(mesh, surfaces.get(self.levels[i]) if i < len(self.levels) else None,
                                            self.levels[i] if i < len(self.levels) else 0.0, i, limits)
                self.figure.xlim, self.figure.ylim, self.figure.zlim = ([float(a[0]), float(a[-1])] for a in axes)
            self._sent = (time.monotonic(), sent)
            marks = [(lv, f"surface at {lv:.3g}") for lv in self.levels]
            text = ", ".join(f"{lv:.3g}" for lv in self.levels)
            self.key.value = (colour_key(limits, f"{label}; surfaces (▼) at {text}, inner to outer", marks)
                              + missing_note(shown, "counted as above every level, outside the surfaces")
                              + axis_key(ds, ("alpha", "beta", "gamma"), self.normalization))

    def _set_choices(self, choices: np.ndarray) -> None:
        options = [(f"{c:.3g}", i) for i, c in enumerate(choices)]
        if [o[0] for o in self.level.options] == [o[0] for o in options]:
            return
        index = self.level.value if 0 <= self.level.value < len(options) else DEFAULT_LEVEL_INDEX
        self._updating = True  # relabelling is not a move of the slider
        try:
            self.level.options = options
            self.level.value = index
        finally:
            self._updating = False

    def _draw_mesh(self, mesh, surface, level: float, i: int, limits) -> int:
        """Set one mesh (or empty it); the number of bytes it sends."""
        if surface is None:
            xyz, triangles = _nothing()
            verts, rgba = np.stack([xyz] * 3, 1), np.ones((3, 4))
        else:
            verts, triangles = surface[0].astype(np.float32), surface[1].astype(np.uint32)
            alpha = OPACITIES[len(self.levels)][i]
            rgba = np.tile(np.append(colours(np.array([level]), limits)[0], alpha), (len(verts), 1))
        with mesh.hold_sync():
            mesh.x, mesh.y, mesh.z = (np.ascontiguousarray(verts[:, k]) for k in range(3))
            mesh.triangles = triangles
            mesh.color = rgba = rgba.astype(np.float32)
        return verts.nbytes + triangles.nbytes + rgba.nbytes
