"""Linked 2-D views: click a point of a map and the two 1-D cross-sections through it, the
loss along each axis, appear beside the map.

:class:`CrossSections` listens to a :class:`~landscape_widgets.widgets.views.ContourView`'s
cursor targets and draws from the result the map shows (no computation of its own), so the
cross-sections fill in as the map does.
"""

from __future__ import annotations

import ipywidgets as w
import xarray as xr

from .views import ContourView, LineView


class CrossSections:
    """The loss along ``alpha`` and along ``beta`` through the point last clicked on
    ``contour`` (which must have ``targets``); hidden until the first click.

    Attributes
    ----------
    widget : ipywidgets.VBox
    lines : tuple of LineView
        Along alpha (at the clicked beta) and along beta (at the clicked alpha).
    point : (float, float) or None
        The clicked ``(alpha, beta)``.
    marker : bqplot.Scatter
        A ring on the map at the grid point the cross-sections go through.
    """

    def __init__(self, contour: ContourView, normalization: str | None = "filter") -> None:
        if contour.targets is None:
            raise ValueError("the map has no cursor targets: make it with ContourView(targets=True)")
        self.lines = tuple(LineView(normalization, height="270px", width="440px") for _ in range(2))
        self.point: tuple[float, float] | None = None
        self._shown: tuple[xr.Dataset, str, str] | None = None
        self.widget = w.VBox([line.widget for line in self.lines],
                             layout={"width": "440px", "display": "none", "margin": "0 0 0 12px"})
        import bqplot as bq

        # the chosen point, marked on the map (a ring, apart from the centre's cross)
        self.marker = bq.Scatter(x=[0.0], y=[0.0], scales={"x": contour.x_scale, "y": contour.y_scale},
                                 marker="circle", colors=["white"], stroke="black", stroke_width=2,
                                 default_size=90, fill=False, visible=False, tooltip=None)
        marks = list(contour.widget.marks)
        marks.insert(marks.index(contour.targets), self.marker)  # under the targets: they keep the cursor
        contour.widget.marks = marks
        contour.targets.on_element_click(
            lambda _mark, event: self.select(float(event["data"]["x"]), float(event["data"]["y"])))

    def select(self, alpha: float, beta: float) -> None:
        """Show the cross-sections through the grid point nearest to ``(alpha, beta)``."""
        self.point = (alpha, beta)
        self.widget.layout.display = None
        self._draw()

    def update(self, ds: xr.Dataset, metric: str = "loss", scale: str = "linear") -> None:
        """The map's newest result: redraw the cross-sections through the chosen point."""
        self._shown = (ds, metric, scale)
        self._draw()

    def _draw(self) -> None:
        if self.point is None or self._shown is None:
            return
        ds, metric, scale = self._shown
        alpha, beta = self.point
        at = ds.sel(alpha=alpha, beta=beta, method="nearest")
        a, b = float(at["alpha"]), float(at["beta"])
        with self.marker.hold_sync():
            self.marker.x, self.marker.y = [a], [b]
            self.marker.visible = True
        self.lines[0].update(ds.sel(beta=b), metric, scale, title=f"along alpha at beta = {b:.3g}")
        self.lines[1].update(ds.sel(alpha=a), metric, scale, title=f"along beta at alpha = {a:.3g}")
