"""``LandscapeExplorer``: controls + live views of a model's loss landscape.

Every control that changes *what is computed* (kind of directions, seed,
normalization, bias/BN rule, moved parameters, view, range, points per axis) cancels
the run in flight and, after a short debounce, starts the
new one in a worker thread; finished results are cached by their settings, so going
back to earlier settings redraws at once. Controls that change only *how it is drawn*
(metric, colour scale) redraw without computing. The model copy and the data are
prepared once per choice of moved parameters (an
:class:`~landscape_widgets.core.objective.Objective`), not at every control change.
"""

from __future__ import annotations

import base64
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from dataclasses import asdict, dataclass, fields

import ipywidgets as w
import torch
import xarray as xr
from torch import nn

from ..analysis.plane_directions import plane_directions

from ..core.directions import BIAS_BN_RULES, NORMALIZATIONS
from ..core.grids import Grid, coarse_to_fine_order, make_grid, plane
from ..core.sampled import FRACTIONS
from ..core.evaluation import PointEvaluator
from ..core.objective import LossFn, Objective
from ..core.results import clean_attrs
from ..core.params import select_params
from .convexity import ConvexityPanel, convexity_panel
from .pacing import Pace
from .progress import ProgressView, points_done
from .runner import Runner, Snapshot, landscape_stream
from .cross_sections import CrossSections
from .views import METRICS, SCALES, ContourView, LineView, SliceView
from .zoom import Region, RectangleZoom
from .volume_views import IsosurfaceView, SurfaceView

VIEWS: tuple[str, ...] = ("1d", "2d", "3d")
_VIEW_LABELS = {"1-D": "1d", "2-D": "2d", "3-D": "3d"}
#: Default (half-range, points per axis) per view: the grid is ``[-r, r]`` per axis.
DEFAULT_GRIDS: dict[str, tuple[float, int]] = {"1d": (1.0, 51), "2d": (1.0, 51), "3d": (1.0, 15)}
#: Most points per axis the controls offer per view (41³ = 68,921 points in 3-D).
MAX_NUM: dict[str, int] = {"1d": 201, "2d": 101, "3d": 41}
#: What the Save button writes: figures, and surfaces/volumes for other tools.
SAVE_FORMATS: tuple[str, ...] = ("png", "svg", "pdf", "vtk", "stl", "obj", "glb")
_MIME = {"json": "application/json", "png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf",
         "vtk": "application/octet-stream", "stl": "model/stl", "obj": "model/obj", "glb": "model/gltf-binary"}


def _files(ds: xr.Dataset, fmt: str, metric: str, scale: str) -> dict[str, bytes]:
    """``{"landscape.<fmt>": bytes}``: a figure of ``ds``, or an export with its JSON
    manifest beside it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"landscape.{fmt}"
        if fmt in ("png", "svg", "pdf"):
            from ..plotting.figures import landscape_figure

            name = "accuracy" if metric == "accuracy" else "loss"
            landscape_figure(ds, name, log=scale == "log" or metric == "log-loss").savefig(path, dpi=150)
        else:
            from ..runs.export import export_landscape

            export_landscape(ds, path)
        return {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir())}


#: Data-sample previews of the coarse levels are made when the first level's exact points
#: would take longer than this (seconds): a first picture within a second already shows.
PREVIEW_SECONDS = 1.0
#: A run estimated to take longer than this (seconds) waits for the Start button.
CONFIRM_SECONDS = 120.0
#: Exact points past the first chunk a run needs before it measures its rate.
MIN_RATE_POINTS = 8
#: Most incomplete results kept for runs to go on from (the newest).
MAX_STOPPED = 16


def format_duration(seconds: float) -> str:
    """``'3 s'``, ``'4 min'``, ``'1.5 h'``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class Settings:
    """What is computed: two runs with equal settings give the same result."""

    view: str = "2d"
    directions: str = "random"
    seed: int = 0
    normalization: str = "filter"
    bias_bn: str = "ignore"
    params: str = "all"
    half_range: float = 1.0
    num: int = 51
    #: A zoomed 2-D map: ``(alpha_min, alpha_max, beta_min, beta_max)`` instead of ``±half_range``.
    region: Region | None = None

    @property
    def ndim(self) -> int:
        return VIEWS.index(self.view) + 1

    @property
    def grid(self) -> Grid:
        if self.region is not None:
            a0, a1, b0, b1 = self.region
            return make_grid([(a0, a1), (b0, b1)], int(self.num))
        r = float(self.half_range)
        return make_grid([(-r, r)] * self.ndim, int(self.num))

    def attrs(self) -> dict:
        """The settings as a result stores them (``region`` only when zoomed, as JSON)."""
        return clean_attrs({**asdict(self), "region": None if self.region is None else list(self.region)})


def _half_range(value: float) -> float:
    """The range slider's value as a setting: a page's slider sends back its value as it
    steps it (``0.05 + 19 * 0.05 = 1.0000000000000002``), which is the same setting."""
    return round(float(value), 9)


def param_groups(model: nn.Module) -> list[tuple[str, str]]:
    """The explorer's choices of moved parameters: ``(label, selection)`` pairs for all
    parameters, the trainable ones (when some are frozen) and each top-level layer."""
    named = list(model.named_parameters())
    count = lambda sel: sum(p.numel() for n, p in named if n in set(select_params(model, _spec(sel))))
    groups = [("all", "all")]
    if any(not p.requires_grad for _, p in named) and any(p.requires_grad for _, p in named):
        groups.append(("trainable", "trainable"))
    for child, module in model.named_children():
        if any(True for _ in module.parameters()):
            groups.append((f"layer {child}", f"{child}.*"))
    return [(f"{label} ({count(sel):,})", sel) for label, sel in groups]


def _spec(selection: str):
    """A :class:`Settings` ``params`` value as a ``params=`` selection."""
    return None if selection == "all" else selection


def _chunk_size(grid: Grid) -> int:
    """About 50 updates per run (each chunk is one redraw at most), 8 to 256 points."""
    return max(8, min(256, grid.size // 50))


class LandscapeExplorer(w.VBox):
    """Interactive loss-landscape explorer for a model, a loss and data.

    Parameters
    ----------
    model : nn.Module
        The trained network (it is copied, never modified).
    loss_fn : callable, optional
        ``loss_fn(outputs, targets)`` returning the batch mean, e.g. ``F.cross_entropy``;
        default the model's own ``outputs.loss``.
    data
        Data the loss is averaged over: ``(X, y)``, a dict, or a DataLoader.
    view : {"1d", "2d", "3d"}
        Initial view.
    directions : {"random", "hessian", "axes", "trajectory", "two models"}
        Initial kind of axes (the "directions" menu; see
        :mod:`landscape_widgets.analysis.plane_directions`): random, the top Hessian
        eigenvectors, coordinate axes (the largest and the smallest parameters: for the
        wedge model the plane that shows its wedges), and, when ``trajectory`` / ``model2`` are given, the PCA of the
        training path or the line to the second model.
    seed, normalization, bias_bn
        Random directions (Li et al. 2018: filter normalization, bias/BN ignored).
    trajectory : sequence of torch.Tensor, optional
        Flat checkpoints of training over all parameters, the final one last.
    model2 : nn.Module, optional
        A second model of the same architecture.
    params : str
        Moved parameters: ``"all"``, ``"trainable"`` or a name glob (the "parameters"
        menu offers these and each top-level layer).
    grids : dict, optional
        ``{view: (half_range, num)}`` overriding :data:`DEFAULT_GRIDS`.
    metric : {"loss", "accuracy", "log-loss"}
    scale : {"linear", "log"}
        Colour (and height) scale.
    device : str, optional
        ``"cpu"``, ``"cuda"``; default the model's device.
    max_samples : int, optional
        Cap on the samples the loss is averaged over (faster, noisier).
    strategy : {"auto", "loop", "batched"}
        How points are evaluated (see :func:`landscape_widgets.core.streaming.iter_chunks`).
    **objective_kwargs
        ``forward``, ``pass_batch``, ``metrics``, ``dtype``... for the
        :class:`~landscape_widgets.core.objective.Objective`.
    debounce : float
        Seconds to wait after a control change before computing.
    max_rate : float
        Most redraws per second.
    autostart : bool
        Start computing the initial view right away.
    store : bool or path
        Keep complete landscapes in the run store and show a stored one at once, across
        processes (see :func:`~landscape_widgets.widgets.runner.landscape_stream`);
        the in-memory cache of this explorer works either way.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn | None = None,
        data=None,
        *,
        view: str = "2d",
        directions: str = "random",
        seed: int = 0,
        normalization: str = "filter",
        bias_bn: str = "ignore",
        params: str = "all",
        grids: dict[str, tuple[float, int]] | None = None,
        metric: str = "loss",
        scale: str = "linear",
        device: str | None = None,
        max_samples: int | None = None,
        strategy: str = "auto",
        debounce: float = 0.3,
        max_rate: float = 10.0,
        autostart: bool = True,
        trajectory: Sequence[torch.Tensor] | None = None,
        model2: nn.Module | None = None,
        store: bool | str = False,
        **objective_kwargs,
    ) -> None:
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
        unknown = set(grids or {}) - set(VIEWS)
        if unknown:
            raise ValueError(f"grids has unknown views {sorted(unknown)}; use {VIEWS}")
        too_fine = {v: num for v, (_, num) in (grids or {}).items() if not 3 <= num <= MAX_NUM[v]}
        if too_fine:
            raise ValueError(f"grids: points per axis must be 3 to {MAX_NUM} per view, got {too_fine}")
        kinds = ["random", "hessian", "axes"] + (["trajectory"] if trajectory is not None else []) + (
            ["two models"] if model2 is not None else [])
        if directions not in kinds:
            raise ValueError(f"directions must be one of {kinds} here, got {directions!r}"
                             " (trajectory needs trajectory=, two models needs model2=)")
        self.model, self.loss_fn, self.data = model, loss_fn, data
        self.trajectory, self.model2 = trajectory, model2
        self.store = store
        #: Plane directions already made, by (kind, seed, normalization, bias/BN, params, ndim).
        self.direction_cache: dict[tuple, tuple[list[torch.Tensor], dict]] = {}
        self.strategy = strategy
        self.objective_kwargs = {**objective_kwargs, "device": device, "max_samples": max_samples}
        #: Prepared objectives (model copy + data), one per choice of moved parameters.
        self.objectives: dict[str, Objective] = {}
        self.grids = {**DEFAULT_GRIDS, **(grids or {})}
        #: Finished results, keyed by :class:`Settings`.
        self.cache: dict[Settings, xr.Dataset] = {}
        #: Incomplete results, keyed by :class:`Settings`, of runs stopped, superseded by a
        #: control change, or asking for Start: the next run of the same settings goes on
        #: from one (Start, or coming back to them).
        self.stopped: dict[Settings, xr.Dataset] = {}
        self._stopped_lock = threading.Lock()  # the worker keeps results there too
        #: The result on screen (possibly partial).
        self.result: xr.Dataset | None = None
        self.runner = Runner(max_rate=max_rate, debounce=debounce, on_error=self._show_error,
                             pace=Pace(max_rate, page=True))
        self.progress = ProgressView()
        self._views: dict[str, list] = {}
        self._syncing = False
        #: The zoomed region of the 2-D map (None: the whole ``±range``).
        self.region: Region | None = None
        #: The settings of the latest refresh (or autostart).
        self._requested: Settings | None = None

        half, num = self.grids[view]
        style = {"description_width": "initial"}
        self.directions = w.Dropdown(options=kinds, value=directions, description="directions", style=style,
                                     tooltip="random (Li et al.), top Hessian eigenvectors, training-path PCA, "
                                             "towards a second model")
        self.seed = w.IntSlider(value=seed, min=0, max=99, description="direction seed", style=style)
        self.normalization = w.ToggleButtons(options=list(NORMALIZATIONS), value=normalization,
                                             description="normalization", style=style)
        self.bias_bn = w.Dropdown(options=list(BIAS_BN_RULES), value=bias_bn, description="bias/BN",
                                  tooltip="1-D parameters: ignore (not moved), theta (d = θ), random")
        groups = param_groups(model)
        if params not in [sel for _, sel in groups]:
            groups.append((params, params))
        self.params = w.Dropdown(options=groups, value=params, description="parameters", style=style)
        self.view = w.ToggleButtons(options=list(_VIEW_LABELS.items()), value=view, description="view")
        self.half_range = w.FloatSlider(value=half, min=0.05, max=5.0, step=0.05,
                                        description="range ±", style=style)
        self.num = w.IntSlider(value=num, min=3, max=MAX_NUM[view], description="points per axis", style=style)
        self.metric = w.Dropdown(options=list(METRICS), value=metric, description="metric")
        self.scale = w.ToggleButtons(options=list(SCALES), value=scale, description="colour scale",
                                     style=style)
        self.stop_button = w.Button(description="Stop", icon="stop", button_style="warning")
        self.start_button = w.Button(description="Start", icon="play", button_style="primary",
                                     tooltip="compute this grid (it is estimated to take long)",
                                     layout={"display": "none"})
        #: Seconds per point measured on the latest run (None before any).
        self.seconds_per_point: float | None = None
        self.estimate = w.HTML()
        self.convexity_button = w.Button(
            description="Convexity map", icon="th",
            tooltip="|λmin/λmax| of the Hessian on a coarse grid of this plane (costly)",
        )
        self.save_format = w.Dropdown(options=list(SAVE_FORMATS), value="png", description="save as",
                                      layout={"width": "160px"})
        self.save_button = w.Button(description="Save", icon="download",
                                    tooltip="a publication figure (png/svg/pdf) or the surface/volume for "
                                            "ParaView (vtk) or mesh viewers (stl/obj/glb), with its manifest")
        #: A download link for the latest saved file (data URI: works in Voila too).
        self.download = w.HTML()
        self.plots = w.Box(layout={"width": "100%", "flex_flow": "row wrap"})
        self._beside: dict[str, list[w.Widget]] = {}
        #: Convexity map of the current plane, shown under the plots when asked for.
        self.convexity: ConvexityPanel | None = None
        self.convexity_box = w.Box(layout={"width": "100%"})

        for control in (self.directions, self.seed, self.normalization, self.bias_bn, self.params,
                        self.half_range, self.num):
            control.observe(self._on_settings, "value")
        self.view.observe(self._on_view, "value")
        self.metric.observe(self._on_display, "value")
        self.scale.observe(self._on_display, "value")
        self.stop_button.on_click(lambda _: self.stop())
        self.start_button.on_click(lambda _: self.refresh(confirmed=True))
        self.convexity_button.on_click(lambda _: self.show_convexity())
        self.save_button.on_click(lambda _: self._save_clicked())
        #: Zoom buttons of the 2-D map (a rectangle dragged on it is computed).
        self.zoom = RectangleZoom(self.views_of("2d")[0], self.zoom_to)
        # CSS hooks for browser tests
        for name in ("directions", "seed", "view", "half_range", "num", "stop_button", "start_button", "estimate"):
            getattr(self, name).add_class(f"landscape-{name.replace('_', '-')}")

        controls = w.VBox([
            w.HBox([self.view, self.directions, self.seed]),
            w.HBox([self.normalization, self.bias_bn, self.params]),
            w.HBox([self.half_range, self.num, self.estimate]),
            w.HBox([self.metric, self.scale, self.start_button, self.stop_button, self.convexity_button,
                    self.zoom.widget], layout={"flex_flow": "row wrap"}),  # a control too many wraps whole
            w.HBox([self.save_format, self.save_button, self.download]),
        ])
        super().__init__([controls, self.progress.widget, self.plots, self.convexity_box, self.runner.pace.widget])
        self.add_class("landscape-explorer")
        self._show_views()
        self._set_running(False)
        self._show_estimate()
        if autostart:
            self._requested = self.settings
            self._set_running(True)
            self.runner.start(self._work(self.settings), self._draw, self._finished(self.settings))

    # -- state ---------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        """The settings the controls show now."""
        return Settings(self.view.value, self.directions.value, int(self.seed.value), self.normalization.value,
                        self.bias_bn.value, self.params.value, _half_range(self.half_range.value),
                        int(self.num.value), self.region if self.view.value == "2d" else None)

    def plane(self, settings: Settings) -> tuple[list[torch.Tensor], dict]:
        """The directions of ``settings`` and how they were made (made once per choice:
        Hessian eigenvectors cost a Lanczos run)."""
        s = settings
        key = (s.directions, s.seed, s.normalization, s.bias_bn, s.params, s.ndim)
        if key not in self.direction_cache:
            self.direction_cache[key] = plane_directions(
                self.objective(s.params), s.directions, s.ndim, seed=s.seed, normalization=s.normalization,
                bias_bn=s.bias_bn, trajectory=self.trajectory, model2=self.model2,
            )
        return self.direction_cache[key]

    def objective(self, params: str) -> Objective:
        """The prepared objective for a choice of moved parameters (built on first use)."""
        if params not in self.objectives:
            self.objectives[params] = Objective(self.model, self.loss_fn, self.data, params=_spec(params),
                                                **self.objective_kwargs)
        return self.objectives[params]

    @property
    def views(self) -> list:
        """The view objects of the current view (e.g. ``[ContourView]``)."""
        return self.views_of(self.view.value)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current run (and any pending one) has finished."""
        return self.runner.wait(timeout)

    def stop(self) -> None:
        """Cancel the computation; the partial picture stays on screen.

        The picture is frozen as it is (the chunk in flight no longer writes into it), and
        when it shows other settings than the controls (Stop pressed before a new run
        started) the message says which. Otherwise the partial result is kept: Start, then
        offered, goes on from it, as does a later run of the same settings.
        """
        # the message first, before the lock (a redraw in flight holds it): it shows at
        # once, and the draw in flight, seeing the cancel, does not overwrite it
        self.runner.cancel()
        self._set_running(False)
        if self.result is not None:
            self._stopped_message(self.result)
        self.runner.stop()
        with self.runner.lock:
            if self.result is None:
                return
            self.result = self.result.copy(deep=True)
            current = self._stopped_message(self.result)  # the chunk in flight may have added points
            if not bool(self.result["done"].all()):  # (the run itself keeps its points)
                self.result.attrs["stopped"] = 1  # the views' titles say so
                self._offer_start("go on from the points computed so far" if current else
                                  "compute the settings of the controls")
            self._redraw()

    def _stopped_message(self, result: xr.Dataset) -> bool:
        """Say that the run stopped; True when ``result`` is of the current settings."""
        done = int(result["done"].values.sum())
        current = self.settings.attrs()
        keys = [f.name for f in fields(Settings)]
        changed = [f"{k} {result.attrs.get(k)}" for k in keys if result.attrs.get(k) != current.get(k)]
        if changed:
            self.progress.message(f"stopped before the new run started: the picture shows {done} points "
                                  f"of the previous settings ({', '.join(changed)})", "warning")
        else:
            self.progress.message(f"stopped at {points_done(done, result['done'].size)}", "warning")
        return not changed

    def show_convexity(self, num: int = 9) -> ConvexityPanel:
        """Compute and show the convexity map |λ_min/λ_max| (Li et al. 2018) of the
        current 2-D plane on a coarse ``num`` x ``num`` grid, under the plots.

        It uses the same directions as the contour map (same seed and normalization);
        a control change removes it, since it then describes another plane.
        """
        self._drop_convexity()
        s = self.settings
        plane_2d = Settings(**{**asdict(s), "view": "2d", "region": None})
        directions, how = self.plane(plane_2d)
        self.convexity = convexity_panel(
            self.objective(s.params), grid=plane((-s.half_range, s.half_range), num=num),
            directions=directions, attrs=how,
        )
        self.convexity_box.children = [self.convexity.widget]
        return self.convexity

    def _drop_convexity(self) -> None:
        if self.convexity is not None:
            self.convexity.runner.stop()
            self.convexity = None
            self.convexity_box.children = []

    def save(self, fmt: str | None = None) -> dict[str, bytes]:
        """The picture on screen as files: a figure (``png``, ``svg``, ``pdf``: the
        static figure, with the same labels, colour scale and centre marker) or the
        surface / volume (``vtk``, ``stl``, ``obj``, ``glb``, complete results only) with
        its JSON manifest; offered as download links under the controls.

        Returns
        -------
        dict of str -> bytes
            File names and contents.
        """
        fmt = fmt or self.save_format.value
        if fmt not in SAVE_FORMATS:
            raise ValueError(f"fmt must be one of {SAVE_FORMATS}, got {fmt!r}")
        with self.runner.lock:
            ds = None if self.result is None else self.result.copy(deep=True)
        try:
            if ds is None:
                raise ValueError("nothing computed yet to save")
            # named by what was computed (the controls may have moved on since)
            stem = f"landscape-{VIEWS[ds['loss'].ndim - 1]}-seed{ds.attrs['seed']}"
            files = {name.replace("landscape", stem, 1): data
                     for name, data in _files(ds, fmt, self.metric.value, self.scale.value).items()}
        except (ValueError, ImportError) as err:
            self.download.value = f"<span style='color:#b00'>cannot save: {err}</span>"
            raise
        self.download.value = " ".join(
            f"<a download='{name}' href='data:{_MIME[name.rsplit('.', 1)[-1]]};base64,"
            f"{base64.b64encode(data).decode()}'>download {name}</a>" for name, data in files.items())
        return files

    def _save_clicked(self) -> None:
        try:
            self.save()
        except (ValueError, ImportError):
            pass  # said under the controls

    def estimated_seconds(self, settings: Settings | None = None) -> float | None:
        """Time the settings' grid would take at the latest measured rate (None before
        any run)."""
        s = settings or self.settings
        return None if self.seconds_per_point is None else s.grid.size * self.seconds_per_point

    def refresh(self, confirmed: bool = False) -> None:
        """Recompute (or redraw from the cache) for the current settings. A run estimated
        over :data:`CONFIRM_SECONDS` waits for Start (``confirmed=True``)."""
        self._drop_convexity()
        self.download.value = ""  # a saved file of the previous settings is not this picture
        settings = self._requested = self.settings
        self._show_estimate()
        self._offer_start(None)
        if settings in self.cache:
            self.runner.stop()
            self._set_running(False)
            ds = self.cache[settings]
            with self.runner.lock:
                self.result = ds
                self._redraw()
            n = int(ds["done"].values.sum())
            self.progress.update(n, ds["done"].size, 0.0, str(ds.attrs.get("device", "?")),
                                 source="from cache (computed before)")
            return
        seconds = self.estimated_seconds(settings)
        if not confirmed and seconds is not None and seconds > CONFIRM_SECONDS:
            self.runner.stop()
            self._set_running(False)
            self._ask_to_start(settings, seconds, reset=True)
            return
        self.progress.message("waiting for the controls to settle...", reset=True)
        self._set_running(True)
        # with no rate measured yet, the run itself measures it and asks if it is long
        check = not confirmed and seconds is None
        self.runner.request(self._work(settings, check), self._draw, self._finished(settings))

    def _ask_to_start(self, settings: Settings, seconds: float, reset: bool) -> None:
        self._offer_start("compute this grid (it is estimated to take long)")
        self.progress.message(f"{settings.grid.size:,} points would take about {format_duration(seconds)}: "
                              "press Start to compute them, or lower the points per axis", "warning",
                              reset=reset)

    # -- control callbacks (kernel's main thread) ------------------------------------
    def zoom_to(self, region: Region | None) -> None:
        """Compute the 2-D map over ``(alpha_min, alpha_max, beta_min, beta_max)`` at the
        current points per axis (None: back to ``±range``). A change of the range slider
        also goes back to the whole range."""
        self._set_region(region)
        self.refresh()

    def _set_region(self, region: Region | None) -> None:
        self.region = None if region is None else tuple(float(v) for v in region)
        self.zoom.full_button.disabled = self.region is None

    def _on_settings(self, change) -> None:
        if change["owner"] is self.half_range:
            self._set_region(None)
        if not self._syncing:
            self.grids[self.view.value] = (_half_range(self.half_range.value), int(self.num.value))
            if self.settings != self._requested:  # (a page sends 1.0000000000000002 back for 1.0)
                self.refresh()

    def _on_view(self, _change) -> None:
        half, num = self.grids[self.view.value]
        self._syncing = True
        try:
            self.num.max = MAX_NUM[self.view.value]
            self.half_range.value, self.num.value = half, num
        finally:
            self._syncing = False
        self._show_views()
        self.refresh()

    def _on_display(self, _change) -> None:
        with self.runner.lock:
            if self.result is not None:
                self._redraw()

    def _show_error(self, exc: BaseException) -> None:
        self._set_running(False)
        self.progress.message(f"error: {type(exc).__name__}: {exc}", "danger")

    def _offer_start(self, tooltip: str | None) -> None:
        """Show Start in Stop's place, saying what it does (``None``: Stop again), so that
        the buttons after them keep their places."""
        if tooltip is not None:
            self.start_button.tooltip = tooltip
        self.start_button.layout.display = None if tooltip is not None else "none"
        self.stop_button.layout.display = "none" if tooltip is not None else None

    def _set_running(self, running: bool) -> None:
        """Stop is offered (and coloured) only while a run is pending or in flight."""
        self.stop_button.disabled = not running
        self.stop_button.button_style = "warning" if running else ""

    # -- views -----------------------------------------------------------------------
    def views_of(self, view: str) -> list:
        """The view objects of the ``"1d"``, ``"2d"`` or ``"3d"`` view (made when first asked)."""
        if view not in self._views:
            norm = self.normalization.value
            self._views[view] = {
                "1d": lambda: [LineView(norm)],
                "2d": lambda: _linked_map(norm),
                "3d": lambda: [SliceView(norm), SurfaceView(norm), IsosurfaceView(norm)],
            }[view]()
        return self._views[view]

    def show_beside(self, view: str, widget: w.Widget) -> None:
        """Show ``widget`` after the plots of the ``"1d"``, ``"2d"`` or ``"3d"`` view
        whenever that view is shown (e.g. a picture that follows the cursor on the map)."""
        self._beside.setdefault(view, []).append(widget)
        self._show_views()

    def _show_views(self) -> None:
        view = self.view.value
        self.plots.children = [v.widget for v in self.views_of(view)] + self._beside.get(view, [])
        # a 1-D view has no colours: there the scale is that of the loss axis
        self.scale.description = "loss scale" if view == "1d" else "colour scale"
        # the convexity map describes a plane: offered in the 2-D view only
        self.convexity_button.layout.display = None if self.view.value == "2d" else "none"
        self.zoom.widget.layout.display = None if self.view.value == "2d" else "none"

    def _redraw(self) -> None:
        ds = self.result
        ndim = ds["loss"].ndim
        for v in self.views_of(VIEWS[ndim - 1]):
            v.update(ds, self.metric.value, self.scale.value)

    # -- the worker ------------------------------------------------------------------
    def _work(self, settings: Settings, check: bool = False):
        """The run of ``settings``. It measures :attr:`seconds_per_point` from its exact
        chunks (the time between the first and the latest, so the set-up and the previews
        do not count); with ``check``, a run that rate puts over :data:`CONFIRM_SECONDS`
        ends there and asks for Start."""
        def work(cancel: threading.Event) -> Iterator[Snapshot]:
            grid = settings.grid
            directions, how = self.plane(settings)
            evaluator = PointEvaluator(self.objective(settings.params), directions=directions)
            attrs = {**settings.attrs(), **how}
            first = None  # (elapsed, points) at the first exact chunk
            ask = check
            with self._stopped_lock:
                resume = self.stopped.pop(settings, None)
            if resume is not None:
                resume.attrs.pop("stopped", None)
            resumed = 0 if resume is None else int(resume["done"].values.sum())
            latest = None
            try:
                for snap in landscape_stream(evaluator, grid, cancel, chunk_size=_chunk_size(grid),
                                             strategy=self.strategy, attrs=attrs, store=self.store,
                                             fractions=FRACTIONS if self._previews_pay(grid) else (),
                                             resume=resume):
                    latest = snap.ds
                    yield snap
                    if snap.n_done == resumed or snap.stored:
                        continue
                    if first is None:
                        first = (snap.elapsed, snap.n_done)
                        continue
                    if snap.n_done - first[1] < MIN_RATE_POINTS:
                        continue
                    self.seconds_per_point = (snap.elapsed - first[0]) / (snap.n_done - first[1])
                    if ask and self.estimated_seconds(settings) > CONFIRM_SECONDS:
                        return  # incomplete and not cancelled: ``done`` asks for Start
                    ask = False
            finally:  # stopped, superseded by a control change, or asking: keep what is done
                if latest is not None:
                    self._keep_partial(settings, latest)
        return work

    def _keep_partial(self, settings: Settings, ds: xr.Dataset) -> None:
        """Keep an incomplete result of ``settings`` for a later run to go on from (at
        most :data:`MAX_STOPPED`, the newest)."""
        if not 0 < int(ds["done"].values.sum()) < ds["done"].size:
            return
        with self._stopped_lock:
            self.stopped.pop(settings, None)
            self.stopped[settings] = ds
            while len(self.stopped) > MAX_STOPPED:
                del self.stopped[next(iter(self.stopped))]

    def _previews_pay(self, grid: Grid) -> bool:
        """Estimate the coarse levels on a data sample only when computing the first exactly
        would take over :data:`PREVIEW_SECONDS` at the rate measured so far (or before any
        run): on a small model a sample's forward costs nearly a full one, and the
        estimate would only delay the exact picture."""
        first = int(coarse_to_fine_order(grid.shape)[1][0])
        return self.seconds_per_point is None or first * self.seconds_per_point > PREVIEW_SECONDS

    def _show_estimate(self) -> None:
        s = self.settings
        seconds = self.estimated_seconds(s)
        self.estimate.value = f"{s.grid.size:,} points" + (
            f" · about {format_duration(seconds)}" if seconds is not None else "")

    def _draw(self, snap: Snapshot) -> None:
        self.result = snap.ds
        self._redraw()
        if not self.runner.cancelled:  # else Stop's message stays
            self.progress.show(snap)

    def _finished(self, settings: Settings):
        def done(completed: bool) -> None:
            self._set_running(False)
            self._show_estimate()  # at the rate just measured
            if not completed or self.result is None:
                return
            if bool(self.result["done"].all()):
                self.cache[settings] = self.result
            else:  # the run stopped itself: the rate it measured puts it over CONFIRM_SECONDS
                self._ask_to_start(settings, self.estimated_seconds(settings), reset=False)
        return done


def _linked_map(normalization: str) -> list:
    """The 2-D view: the map, and the cross-sections through the point clicked on it."""
    contour = ContourView(normalization, targets=True)
    return [contour, CrossSections(contour, normalization)]
