"""Models side by side (Li et al. 2018, Section 6): one 2-D landscape per model with the
same direction seed and normalization, one shared colour range, test accuracy and a
sharpness number under each; a toggle switches the normalization so one can watch the
comparison change (without it, weight decay makes a minimum look sharper than it is).
Raw directions get the grid scaled by
:func:`~landscape_widgets.analysis.comparison.raw_range_scale`, so their landscapes are not
walls."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping

import ipywidgets as w
import xarray as xr
from torch import nn

from ..analysis.comparison import accuracy_on, mean_loss_increase, raw_range_scale
from ..plotting.figures import shared_color_range
from ..core.directions import NORMALIZATIONS
from ..core.grids import Grid, plane
from ..core.landscape import prepare_evaluator
from ..core.objective import LossFn, Objective
from .progress import ProgressView
from .runner import Runner, landscape_stream
from .views import SCALES, ContourView, shared_color_bar

#: The maps of a comparison share rows about this wide (px), at most three maps a row (four
#: as 2 x 2); each map is at most 400 px.
ROW_WIDTH = 1200


class ComparisonPanel:
    """Side-by-side contour maps, computed one model after the other in the background.

    Attributes
    ----------
    widget : ipywidgets.VBox
    views : dict of name -> ContourView
    normalization : ipywidgets.ToggleButtons
        Changing it recomputes every landscape.
    grids : dict of normalization -> Grid
        The grid each normalization is computed on.
    results : dict of name -> xr.Dataset
    """

    def __init__(self, objectives: Mapping[str, Objective], grids: Mapping[str, Grid], seed: int,
                 test_accuracy: Mapping[str, float], normalization: str, store: bool | str = False) -> None:
        self.store = store
        self.models = dict(objectives)
        self.grids, self.seed = dict(grids), seed
        self.test_accuracy = dict(test_accuracy)
        import bqplot as bq

        # one colour scale and one colour bar for every map
        self.color_scale = bq.ColorScale(scheme="viridis", min=0.0, max=1.0)
        per_row = len(self.models) if len(self.models) <= 3 else -(-len(self.models) // 2)  # 4 maps: 2 x 2
        size = min(400, ROW_WIDTH // per_row)
        self.views = {name: ContourView(normalization=normalization, width=f"{size}px", height=f"{size}px",
                                        color_scale=self.color_scale, color_bar=False) for name in self.models}
        self.color_bar, self.color_axis = shared_color_bar(self.color_scale, size)
        self.captions = {name: w.HTML() for name in self.models}
        self.results: dict = {}
        self.normalization = w.ToggleButtons(options=list(NORMALIZATIONS), value=normalization,
                                             description="normalization", style={"button_width": "70px"},
                                             layout={"flex": "0 0 auto"})  # its buttons on one row
        self.normalization.observe(lambda _change: self.start(), names="value")
        # log10 of the loss: the basins of low-loss minima apart when one map's rim is high
        self.scale = w.ToggleButtons(options=list(SCALES), value="linear", description="colour scale",
                                     style={"button_width": "70px"}, layout={"margin": "0 0 0 24px", "flex": "0 0 auto"})
        self.scale.observe(lambda _change: self._redraw(), names="value")
        self.progress = ProgressView()
        self.runner = Runner(max_rate=5.0, debounce=0.3, on_error=self.progress.error)
        columns = [w.VBox([self.views[n].widget, self.captions[n]], layout={"width": f"{size}px"})
                   for n in self.models]
        rows = [w.HBox(columns[i:i + per_row]) for i in range(0, len(columns), per_row)]
        self.widget = w.VBox([w.HBox([self.normalization, self.scale, self.progress.widget]),
                              w.HBox([w.VBox(rows), self.color_bar])])
        for name in self.models:
            self._caption(name)

    def start(self) -> None:
        """(Re)compute all landscapes with the current normalization."""
        with self.runner.lock:  # no draw of the old run puts its results back in between
            self.results = {}
            self.runner.request(self._work, self._draw)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until all landscapes are finished (for tests and scripts)."""
        return self.runner.wait(timeout)

    def _work(self, cancel: threading.Event) -> Iterator[tuple[str, object, dict]]:
        """``(name, snapshot, latest)``: ``latest`` holds every model's newest result, so a
        throttled draw that skips snapshots still draws each model's last one."""
        norm = self.normalization.value
        latest: dict = {}
        for name, objective in self.models.items():
            evaluator, how = prepare_evaluator(objective, n_directions=2, seed=self.seed, normalization=norm)
            for snap in landscape_stream(evaluator, self.grids[norm], cancel=cancel, attrs=how, store=self.store):
                latest[name] = snap.ds
                yield name, snap, dict(latest)

    def _draw(self, item) -> None:
        name, snap, latest = item
        self.results.update(latest)
        self._redraw(latest)
        for other in self.models:
            self._caption(other)
        self.progress.show(snap, f"model '{name}'")

    def _redraw(self, results: Mapping[str, xr.Dataset] | None = None) -> None:
        """Draw ``results`` (default: all there are) on the shared colour range of all,
        under the runner's lock: the scale toggle's redraw and the runner's draws of new
        snapshots take turns."""
        with self.runner.lock:
            scale, every = self.scale.value, dict(self.results)
            limits = shared_color_range(every, log=scale == "log")
            for name, ds in dict(every if results is None else results).items():
                view = self.views[name]
                view.update(ds, scale=scale, limits=limits)
                view.widget.title = name
                self.color_axis.label = view.color_axis.label

    def _caption(self, name: str) -> None:
        parts = [f"<b>{name}</b>"]
        if name in self.test_accuracy:
            parts.append(f"test accuracy {100 * self.test_accuracy[name]:.1f} %")
        ds = self.results.get(name)
        if ds is not None and bool(ds["done"].all()):
            parts.append(f"sharpness {mean_loss_increase(ds):.3g} (mean loss increase over the grid)")
        self.captions[name].value = " · ".join(parts)


def comparison_panel(
    models: Mapping[str, nn.Module],
    loss_fn: LossFn | None = None,
    data=None,
    grid: Grid | None = None,
    *,
    seed: int = 0,
    normalization: str = "filter",
    test_data: tuple | None = None,
    autostart: bool = True,
    store: bool | str = False,
    **objective_kwargs,
) -> ComparisonPanel:
    """A live side-by-side comparison of models' landscapes (display ``.widget``).

    Parameters
    ----------
    models : mapping of name -> nn.Module
    loss_fn, data
        Mean-reduced loss and the data to evaluate on.
    grid : Grid, optional
        The grid of normalized directions (default: a 21x21 plane over [-1, 1]^2); raw
        directions (``"none"``) use it scaled by
        :func:`~landscape_widgets.analysis.comparison.raw_range_scale` of the models.
    seed, normalization
        The direction rule shared by all models (the toggle changes the normalization).
    test_data : optional
        Test accuracy shown under each map.
    **objective_kwargs
        ``max_samples``, ``device``, ``params``... for each model's
        :class:`~landscape_widgets.core.objective.Objective` (prepared once).
    autostart : bool
        Start computing at once.
    store : bool or path
        Keep complete landscapes in the run store and show a stored one at once (see
        :func:`~landscape_widgets.widgets.runner.landscape_stream`).
    """
    if not models:
        raise ValueError("give at least one model to compare")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    acc = {} if test_data is None else {n: accuracy_on(m, loss_fn, test_data) for n, m in models.items()}
    objectives = {n: Objective(m, loss_fn, data, **objective_kwargs) for n, m in models.items()}
    grid = plane(num=21) if grid is None else grid
    grids = {norm: grid for norm in NORMALIZATIONS}
    grids["none"] = grid.scaled(raw_range_scale(list(models.values()), seed, params=objective_kwargs.get("params")))
    panel = ComparisonPanel(objectives, grids, seed, acc, normalization, store)
    if autostart:
        panel.start()
    return panel
