"""Live 1-D interpolation plot (Goodfellow et al. 2015): loss and accuracy along
``(1 - a) * theta0 + a * theta1``, drawn point by point (coarse to fine) with H-widgets'
:class:`LineView` and :class:`Runner`."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import ipywidgets as w
from torch import nn

from ..directions import interpolation_direction
from ..evaluation import LossFn, PointEvaluator
from ..grids import line
from ..params import check_same_architecture, flatten_params
from .progress import ProgressView
from .runner import Runner, Snapshot, landscape_stream
from .views import LineView


class InterpolationPanel:
    """Loss/accuracy along the segment between two models, computed in the background.

    Attributes
    ----------
    widget : ipywidgets.VBox
    view : LineView
    runner : Runner
    result : xr.Dataset or None
        The latest (possibly partial) result over coordinate ``alpha`` (= a).
    """

    def __init__(self, evaluator: PointEvaluator, start: float, stop: float, num: int,
                 labels: tuple[str, str], title: str) -> None:
        self.evaluator = evaluator
        self.grid = line(start, stop, num)
        self.x_label = f"a  [point (1 - a)·{labels[0]} + a·{labels[1]}]"
        self.title = title
        self.view = LineView(normalization=None)
        self.progress = ProgressView()
        self.runner = Runner(max_rate=10.0, debounce=0.0, on_error=self.progress.error)
        self.result = None
        self.widget = w.VBox([self.progress.widget, self.view.widget])

    def start(self) -> None:
        """(Re)compute the curve; a run in flight is cancelled."""
        self.runner.start(self._work, self._draw)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run finishes (for tests and scripts)."""
        return self.runner.wait(timeout)

    def _work(self, cancel: threading.Event) -> Iterator[Snapshot]:
        return landscape_stream(self.evaluator, self.grid, cancel=cancel, chunk_size=4)

    def _draw(self, snap: Snapshot) -> None:
        self.result = snap.ds
        self.view.update(snap.ds)
        with self.view.widget.hold_sync():
            self.view.x_axis.label = self.x_label
            self.view.widget.title = f"{self.title} ({snap.n_done}/{snap.total} points)"
        self.progress.update(snap.n_done, snap.total, snap.elapsed, snap.device)


def interpolation_panel(
    model0: nn.Module,
    model1: nn.Module,
    loss_fn: LossFn,
    data,
    start: float = -0.5,
    stop: float = 1.5,
    num: int = 41,
    *,
    labels: tuple[str, str] = ("θ0", "θ1"),
    title: str = "1-D linear interpolation",
    device=None,
    max_samples: int | None = None,
    autostart: bool = True,
) -> InterpolationPanel:
    """A live plot of :func:`landscape_widgets.interpolation.interpolate` (display ``.widget``).

    Parameters
    ----------
    model0, model1 : nn.Module
        Same architecture; ``a = 0`` is ``model0``, ``a = 1`` is ``model1``.
    loss_fn, data
        Mean-reduced loss and the data to evaluate on.
    start, stop, num
        Range of ``a`` (default -0.5..1.5) and number of points.
    labels : (str, str)
        Names of the two end points for the axis label.
    title : str
    device, max_samples
        See :class:`PointEvaluator`.
    autostart : bool
        Start computing at once.
    """
    check_same_architecture(model0, model1)
    evaluator = PointEvaluator(
        model0, loss_fn, data, [interpolation_direction(model0, model1)], theta=flatten_params(model0),
        device=device, max_samples=max_samples,
    )
    panel = InterpolationPanel(evaluator, start, stop, num, labels, title)
    if autostart:
        panel.start()
    return panel
