"""Live 1-D interpolation plot (Goodfellow et al. 2015): loss and accuracy along
``(1 - a) * theta1 + a * theta2``, drawn point by point (coarse to fine) with H-widgets'
:class:`LineView` and :class:`Runner`."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import ipywidgets as w
from torch import nn

from ..core.directions import interpolation_direction
from ..core.evaluation import PointEvaluator
from ..core.grids import line
from ..core.objective import LossFn, Objective
from ..core.params import check_same_architecture
from .progress import ProgressView, points_done
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
                 labels: tuple[str, str], title: str, store: bool | str = False) -> None:
        self.store = store
        self.evaluator = evaluator
        self.grid = line((start, stop), num)
        self.x_label = f"a  [point (1 - a)·{labels[0]} + a·{labels[1]}]"
        self.title = title
        self.view = LineView(normalization=None)
        self.progress = ProgressView()
        self.runner = Runner(max_rate=10.0, debounce=0.0, on_error=self.progress.error)
        self.result = None
        #: the loss axis: linear (what a difference is worth) or log (detail near zero)
        self.scale = w.ToggleButtons(options=["linear", "log"], value="linear", description="loss scale")
        self.scale.observe(lambda change: self._redraw(), names="value")
        self.widget = w.VBox([self.progress.widget, self.scale, self.view.widget])

    def start(self) -> None:
        """(Re)compute the curve; a run in flight is cancelled."""
        self.runner.start(self._work, self._draw)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the run finishes (for tests and scripts)."""
        return self.runner.wait(timeout)

    def _work(self, cancel: threading.Event) -> Iterator[Snapshot]:
        return landscape_stream(self.evaluator, self.grid, cancel=cancel, chunk_size=4, store=self.store)

    def _draw(self, snap: Snapshot) -> None:
        self.result = snap.ds
        self._redraw()
        self.progress.show(snap)

    def _redraw(self) -> None:
        ds = self.result
        if ds is None:
            return
        self.view.update(ds, "loss", self.scale.value)
        n_done = int(ds["done"].sum())
        with self.view.widget.hold_sync():
            self.view.x_axis.label = self.x_label
            self.view.widget.title = f"{self.title} ({points_done(n_done, ds['done'].size)})"


def interpolation_panel(
    model1: nn.Module,
    model2: nn.Module,
    loss_fn: LossFn | None = None,
    data=None,
    start: float = -0.5,
    stop: float = 1.5,
    num: int = 41,
    *,
    labels: tuple[str, str] = ("θ1", "θ2"),
    title: str = "1-D linear interpolation",
    autostart: bool = True,
    store: bool | str = False,
    **objective_kwargs,
) -> InterpolationPanel:
    """A live plot of :func:`landscape_widgets.analysis.interpolation.interpolate` (display ``.widget``).

    Parameters
    ----------
    model1, model2 : nn.Module
        Same architecture; ``a = 0`` is ``model1``, ``a = 1`` is ``model2``.
    loss_fn, data
        Mean-reduced loss and the data to evaluate on.
    start, stop, num
        Range of ``a`` (default -0.5..1.5) and number of points.
    labels : (str, str)
        Names of the two end points for the axis label.
    title : str
    autostart : bool
        Start computing at once.
    store : bool or path
        Keep complete landscapes in the run store and show a stored one at once (see
        :func:`~landscape_widgets.widgets.runner.landscape_stream`).
    **objective_kwargs
        ``device``, ``max_samples``, ``params``... (see
        :class:`~landscape_widgets.core.objective.Objective`).
    """
    check_same_architecture(model1, model2)
    objective = Objective(model1, loss_fn, data, **objective_kwargs)
    direction = interpolation_direction(model1, model2, objective.layout)
    evaluator = PointEvaluator(objective, directions=[direction])
    panel = InterpolationPanel(evaluator, start, stop, num, labels, title, store)
    if autostart:
        panel.start()
    return panel
