"""The convexity map (Li et al. 2018) as a live heat map: |λ_min / λ_max| over a plane.

:class:`ConvexityView` draws a result of :func:`landscape_widgets.analysis.curvature.convexity_map`
with H-widgets' :class:`~landscape_widgets.widgets.views.ContourView` (heat map, contour
lines, colour bar); :func:`convexity_panel` computes the map in a background
:class:`~landscape_widgets.widgets.runner.Runner`, coarse to fine, with a progress bar.
The explorer calls :func:`convexity_panel` with its model, data and directions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence

import ipywidgets as w
import torch
import xarray as xr

from ..core.objective import LossFn
from ..core.grids import Grid
from ..analysis.curvature import iter_convexity
from ..plotting.colours import CONVEXITY_COLOURS, CONVEXITY_RANGE
from .progress import ProgressView, points_done
from .runner import Runner, Snapshot
from .views import ContourView

LABEL = "|λmin / λmax|"


def as_drawable(ds: xr.Dataset) -> xr.Dataset:
    """The convexity ratio in the ``loss`` slot that the 2-D views draw."""
    if "convexity" not in ds:
        raise ValueError("not a convexity map: the dataset has no 'convexity' variable (see hessian.convexity_map)")
    return ds.assign(loss=ds["convexity"])


class ConvexityView:
    """Heat map + colour bar of a convexity map on one fixed colour range for every map,
    blue up to :data:`~landscape_widgets.analysis.curvature.CONVEX_THRESHOLD` and red above
    (:data:`~landscape_widgets.plotting.colours.CONVEXITY_COLOURS`); ``update(ds)`` redraws it."""

    def __init__(self, normalization: str | None = "filter", height: str = "480px", width: str = "640px") -> None:
        import bqplot as bq

        self.color_scale = bq.ColorScale(colors=list(CONVEXITY_COLOURS), min=CONVEXITY_RANGE[0],
                                         max=CONVEXITY_RANGE[1])
        self.contour = ContourView(normalization=normalization, height=height, width=width,
                                   color_scale=self.color_scale, contour_colour="#333333")
        self.widget = self.contour.widget

    def update(self, ds: xr.Dataset) -> None:
        """Draw the points of ``ds`` computed so far."""
        self.contour.update(as_drawable(ds), "loss", limits=CONVEXITY_RANGE)
        n_done, size = int(ds["done"].sum()), ds["done"].size
        with self.widget.hold_sync():
            self.contour.color_axis.label = LABEL
            self.widget.title = f"Convexity map (0 = convex): {points_done(n_done, size)}"


class ConvexityPanel:
    """A convexity map computed in the background and drawn as it fills in.

    Attributes
    ----------
    widget : ipywidgets.VBox
        Progress line above the heat map.
    view : ConvexityView
    runner : Runner
    result : xr.Dataset or None
        The latest (possibly partial) map.
    """

    def __init__(self, compute, normalization: str | None) -> None:
        self._compute = compute
        self.view = ConvexityView(normalization=normalization)
        self.progress = ProgressView()
        self.runner = Runner(max_rate=5.0, debounce=0.0, on_error=self.progress.error)
        self.result: xr.Dataset | None = None
        self.widget = w.VBox([self.progress.widget, self.view.widget])

    def start(self) -> None:
        """(Re)compute the map; a run in flight is cancelled."""
        self.runner.start(self._work, self._draw)

    def stop(self) -> None:
        self.runner.stop()
        self.progress.message("stopped")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run finishes (for tests and scripts)."""
        return self.runner.wait(timeout)

    def _work(self, cancel: threading.Event) -> Iterator[Snapshot]:
        start = time.perf_counter()
        for ds, _flat in self._compute(cancel):
            n_done = int(ds["done"].sum())
            yield Snapshot(ds, n_done, ds["done"].size, time.perf_counter() - start,
                           n_done == ds["done"].size, ds.attrs.get("device", "cpu"))

    def _draw(self, snap: Snapshot) -> None:
        self.result = snap.ds
        self.view.update(snap.ds)
        self.progress.show(snap, "Hessian Lanczos")


def convexity_panel(
    model,
    loss_fn: LossFn | None = None,
    data=None,
    grid: Grid | None = None,
    directions: Sequence[torch.Tensor] | None = None,
    *,
    seed: int = 0,
    normalization: str = "filter",
    bias_bn: str = "ignore",
    theta: torch.Tensor | None = None,
    steps: int = 20,
    start: bool = True,
    attrs: dict | None = None,
    **objective_kwargs,
) -> ConvexityPanel:
    """A live convexity-map widget for ``model`` (display ``panel.widget``).

    Arguments as for :func:`landscape_widgets.analysis.curvature.convexity_map` (``model``
    may be a prepared Objective, as the explorer passes); the same seed and
    normalization give the same plane as the loss plot; given ``directions`` are
    described by ``attrs`` (as :func:`~landscape_widgets.analysis.curvature.iter_convexity`
    stores them; their ``normalization`` labels the axes). ``start=False`` builds it
    without computing (call ``panel.start()``).
    """

    def compute(cancel: threading.Event):
        return iter_convexity(
            model, loss_fn, data, grid, directions, seed=seed, normalization=normalization, bias_bn=bias_bn,
            theta=theta, steps=steps, cancel=cancel, attrs=attrs, **objective_kwargs,
        )

    panel = ConvexityPanel(compute, None if directions is not None else normalization)
    if start:
        panel.start()
    return panel
