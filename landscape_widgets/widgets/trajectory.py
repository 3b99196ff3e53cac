"""The optimizer's walk on the PCA plane (Li et al. 2018, Section 7): the loss contour
around the final point (H-widgets' :class:`ContourView`, filled in coarse to fine), the
projected path on top (a dot per checkpoint), a slider / play button that scrubs along
the path, and under it the key and the selected checkpoint's epoch, loss and accuracy."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import bqplot as bq
import ipywidgets as w
import torch
from torch import nn

from ..core.evaluation import PointEvaluator, values_at
from ..core.grids import Grid
from ..core.objective import LossFn
from ..analysis.trajectory import TrajectoryPlane, trajectory_grid
from .progress import ProgressView, points_done
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
    checkpoint_values : list of dict or None
        Loss (and accuracy) at each checkpoint, computed before the contour when the
        checkpoints are given.
    """

    #: What the marks mean, under the plot (a legend inside it would cover the map).
    KEY = ("<span style='color:red'>&#9679;&#8212;</span> training path, one dot per checkpoint; "
           "<span style='color:orange'>&#11044;</span> the selected checkpoint; "
           "<span style='color:red'>+</span> the final model (the plane's origin, 0 on both axes)")

    def __init__(self, evaluator: PointEvaluator, plane: TrajectoryPlane, grid: Grid,
                 trajectory: Sequence[torch.Tensor] | None = None, checkpoints_per_epoch: int = 1,
                 store: bool | str = False) -> None:
        self.store = store
        self.evaluator, self.plane, self.grid = evaluator, plane, grid
        if trajectory is not None and len(trajectory) != len(plane.path):
            raise ValueError(f"{len(trajectory)} checkpoints given for a path of {len(plane.path)}")
        if checkpoints_per_epoch < 1:
            raise ValueError(f"checkpoints_per_epoch must be >= 1, got {checkpoints_per_epoch}")
        self.trajectory, self.checkpoints_per_epoch = trajectory, int(checkpoints_per_epoch)
        self.checkpoint_values: list[dict[str, float]] | None = None
        self.view = ContourView(normalization=None)
        scales = {"x": self.view.x_scale, "y": self.view.y_scale}
        path = plane.path
        self.path = bq.Lines(x=path[:, 0], y=path[:, 1], scales=scales, colors=["red"],
                             stroke_width=2, marker="circle", marker_size=32)
        self.current = bq.Scatter(x=[path[0, 0]], y=[path[0, 1]], scales=scales, colors=["orange"],
                                  default_size=160, stroke="black")
        self.view.widget.marks = [*self.view.widget.marks, self.path, self.current]
        self.slider = w.IntSlider(value=0, min=0, max=len(path) - 1, description="checkpoint",
                                  continuous_update=True, layout={"width": "420px"})
        self.play = w.Play(value=0, min=0, max=len(path) - 1, interval=200, description="play")
        w.jslink((self.play, "value"), (self.slider, "value"))
        self.slider.observe(self._scrub, names="value")
        self.readout = w.HTML()
        self.key = w.HTML(self.KEY)
        self.progress = ProgressView()
        self.runner = Runner(max_rate=5.0, debounce=0.0, on_error=self.progress.error)
        self.result = None
        self._scrub({"new": 0})
        self.widget = w.VBox([self.progress.widget, self.view.widget, self.key,
                              w.HBox([self.play, self.slider]), self.readout])

    def start(self) -> None:
        """(Re)compute the contour; a run in flight is cancelled."""
        self.runner.start(self._work, self._draw)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run finishes (for tests and scripts)."""
        return self.runner.wait(timeout)

    def _work(self, cancel: threading.Event) -> Iterator[Snapshot]:
        if self.trajectory is not None and self.checkpoint_values is None:
            objective = self.evaluator.objective
            self.checkpoint_values = [values_at(objective, point) for point in self.trajectory]
            self._scrub({"new": self.slider.value})
        yield from landscape_stream(self.evaluator, self.grid, cancel=cancel, store=self.store)

    def _draw(self, snap: Snapshot) -> None:
        self.result = snap.ds
        self.view.update(snap.ds)
        x_label, y_label = self.plane.axis_labels()
        with self.view.widget.hold_sync():
            self.view.x_axis.label, self.view.y_axis.label = x_label, y_label
            self.view.widget.title = f"Loss on the trajectory's PCA plane ({points_done(snap.n_done, snap.total)})"
        self.progress.show(snap)

    def _scrub(self, change) -> None:
        i = int(change["new"])
        x, y = self.plane.path[i]
        with self.current.hold_sync():
            self.current.x, self.current.y = [float(x)], [float(y)]
        self.readout.value = checkpoint_text(i, len(self.plane.path) - 1, (float(x), float(y)),
                                             self.checkpoints_per_epoch,
                                             self.checkpoint_values[i] if self.checkpoint_values else None)


def checkpoint_text(i: int, last: int, coords: tuple[float, float], per_epoch: int = 1,
                    values: dict[str, float] | None = None) -> str:
    """``checkpoint 5 of 20 (epoch 5): loss 0.0123, accuracy 99.6% · PCA coordinates
    (0.210, -0.030)``; checkpoint 0 is the initialization."""
    when = "the initialization" if i == 0 else f"epoch {i / per_epoch:g}"
    measured = ""
    if values is not None:
        measured = f": loss {values['loss']:.4g}" + (
            f", accuracy {100 * values['accuracy']:.1f}%" if "accuracy" in values else "")
    return (f"checkpoint {i} of {last} ({when}){measured} · PCA coordinates "
            f"({coords[0]:.3f}, {coords[1]:.3f})")


def trajectory_panel(
    model: nn.Module,
    loss_fn: LossFn | None,
    data,
    plane: TrajectoryPlane,
    grid: Grid | None = None,
    *,
    trajectory: Sequence[torch.Tensor] | None = None,
    checkpoints_per_epoch: int = 1,
    autostart: bool = True,
    store: bool | str = False,
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
    trajectory : sequence of torch.Tensor, optional
        The checkpoints the plane was made from (flat, all parameters): the readout then
        gives each one's loss and accuracy, computed before the contour.
    checkpoints_per_epoch : int
        For the readout's epoch (checkpoint 0 is the initialization).
    **objective_kwargs
        ``device``, ``max_samples``... (see :class:`~landscape_widgets.core.objective.Objective`).
    autostart : bool
        Start computing at once.
    store : bool or path
        Keep complete landscapes in the run store and show a stored one at once (see
        :func:`~landscape_widgets.widgets.runner.landscape_stream`).
    """
    evaluator = PointEvaluator(model, loss_fn, data, plane.directions, theta=plane.theta, **objective_kwargs)
    panel = TrajectoryPanel(evaluator, plane, trajectory_grid(plane) if grid is None else grid, trajectory,
                            checkpoints_per_epoch, store)
    if autostart:
        panel.start()
    return panel
