"""The optimizer's walk on the PCA plane (Li et al. 2018, Section 7): the loss contour
around the final point (H-widgets' :class:`ContourView`, filled in coarse to fine), the
projected path on top, and a slider / play button that scrubs along the path."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import bqplot as bq
import ipywidgets as w
from torch import nn

from ..core.evaluation import PointEvaluator
from ..core.grids import Grid
from ..core.objective import LossFn
from ..analysis.trajectory import TrajectoryPlane, trajectory_grid
from .progress import ProgressView
from .runner import Runner, Snapshot, landscape_stream
from .views import ContourView


class TrajectoryPanel:
    """Contour + path + scrubbing slider; the contour is computed in the background.

    Attributes
    ----------
    widget : ipywidgets.VBox
    view : ContourView
    slider : ipywidgets.IntSlider
        Index of the highlighted checkpoint (0 = initialization).
    runner : Runner
    result : xr.Dataset or None
    """

    def __init__(self, evaluator: PointEvaluator, plane: TrajectoryPlane, grid: Grid) -> None:
        self.evaluator, self.plane, self.grid = evaluator, plane, grid
        self.view = ContourView(normalization=None)
        scales = {"x": self.view.x_scale, "y": self.view.y_scale}
        path = plane.path
        self.path = bq.Lines(x=path[:, 0], y=path[:, 1], scales=scales, colors=["red"],
                             stroke_width=2, marker="circle", marker_size=12)
        self.current = bq.Scatter(x=[path[0, 0]], y=[path[0, 1]], scales=scales, colors=["orange"],
                                  default_size=160, stroke="black")
        self.view.widget.marks = [*self.view.widget.marks, self.path, self.current]
        self.slider = w.IntSlider(value=0, min=0, max=len(path) - 1, description="checkpoint",
                                  continuous_update=True, layout={"width": "420px"})
        self.play = w.Play(value=0, min=0, max=len(path) - 1, interval=200, description="play")
        w.jslink((self.play, "value"), (self.slider, "value"))
        self.slider.observe(self._scrub, names="value")
        self.readout = w.HTML()
        self.progress = ProgressView()
        self.runner = Runner(max_rate=5.0, debounce=0.0, on_error=self.progress.error)
        self.result = None
        self._scrub({"new": 0})
        self.widget = w.VBox([self.progress.widget, self.view.widget,
                              w.HBox([self.play, self.slider, self.readout])])

    def start(self) -> None:
        """(Re)compute the contour; a run in flight is cancelled."""
        self.runner.start(self._work, self._draw)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run finishes (for tests and scripts)."""
        return self.runner.wait(timeout)

    def _work(self, cancel: threading.Event) -> Iterator[Snapshot]:
        return landscape_stream(self.evaluator, self.grid, cancel=cancel)

    def _draw(self, snap: Snapshot) -> None:
        self.result = snap.ds
        self.view.update(snap.ds)
        x_label, y_label = self.plane.axis_labels()
        with self.view.widget.hold_sync():
            self.view.x_axis.label, self.view.y_axis.label = x_label, y_label
            self.view.widget.title = f"Loss on the trajectory's PCA plane ({snap.n_done}/{snap.total} points)"
        self.progress.update(snap.n_done, snap.total, snap.elapsed, snap.device)

    def _scrub(self, change) -> None:
        i = int(change["new"])
        x, y = self.plane.path[i]
        with self.current.hold_sync():
            self.current.x, self.current.y = [float(x)], [float(y)]
        self.readout.value = f"checkpoint {i} of {len(self.plane.path) - 1}: ({x:.3f}, {y:.3f})"


def trajectory_panel(
    model: nn.Module,
    loss_fn: LossFn | None,
    data,
    plane: TrajectoryPlane,
    grid: Grid | None = None,
    *,
    autostart: bool = True,
    **objective_kwargs,
) -> TrajectoryPanel:
    """A live trajectory plot (display ``.widget``).

    Parameters
    ----------
    model, loss_fn, data
        The network (its architecture), a mean-reduced loss and the data.
    plane : TrajectoryPlane
        From :func:`landscape_widgets.analysis.trajectory.trajectory_plane`.
    grid : Grid, optional
        Default: :func:`landscape_widgets.analysis.trajectory.trajectory_grid` (21x21).
    **objective_kwargs
        ``device``, ``max_samples``... (see :class:`~landscape_widgets.core.objective.Objective`).
    autostart : bool
        Start computing at once.
    """
    evaluator = PointEvaluator(model, loss_fn, data, plane.directions, theta=plane.theta, **objective_kwargs)
    panel = TrajectoryPanel(evaluator, plane, trajectory_grid(plane) if grid is None else grid)
    if autostart:
        panel.start()
    return panel
