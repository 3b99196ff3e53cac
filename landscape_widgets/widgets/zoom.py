"""Zoom a 2-D map to a rectangle dragged on it (a bqplot brush selector)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

#: A side of a zoom rectangle under this share of the map's side is a click, not a zoom.
MIN_SIDE = 0.02
Region = tuple[float, float, float, float]


def zoom_region(x: Sequence[float], y: Sequence[float], within: Region) -> Region | None:
    """The rectangle dragged from ``(x[0], y[0])`` to ``(x[1], y[1])`` as
    ``(alpha_min, alpha_max, beta_min, beta_max)``: inside the map ``within``, each bound
    rounded to two significant digits of its side (round tick values, and a setting that
    a pixel more or less does not change). None for a click or a sliver (a side under
    :data:`MIN_SIDE` of the map's)."""
    bounds = []
    for (a, b), (lo, hi) in zip((x, y), (within[:2], within[2:])):
        a, b = sorted((min(max(float(a), lo), hi), min(max(float(b), lo), hi)))
        if b - a < MIN_SIDE * (hi - lo):
            return None
        step = 10.0 ** (math.floor(math.log10(b - a)) - 1)
        a, b = math.floor(a / step) * step, math.ceil(b / step) * step
        bounds += [round(max(a, lo), 12), round(min(b, hi), 12)]
    return tuple(bounds)


class RectangleZoom:
    """Buttons to zoom a :class:`~landscape_widgets.widgets.views.ContourView` map:
    "zoom" lets the next rectangle dragged on the map choose the region, "full range"
    goes back. ``on_zoom(region)`` gets the region (or None for the full range)."""

    def __init__(self, contour, on_zoom: Callable[[Region | None], None]) -> None:
        import bqplot as bq
        import ipywidgets as w

        self.contour = contour
        self.on_zoom = on_zoom
        self.selector = bq.interacts.BrushSelector(x_scale=contour.x_scale, y_scale=contour.y_scale,
                                                   color="red")
        self.zoom_button = w.ToggleButton(description="zoom", icon="search-plus",
                                          tooltip="drag a rectangle on the map: that region is computed "
                                                  "at the same points per axis")
        self.full_button = w.Button(description="full range", icon="expand", disabled=True,
                                    tooltip="back to the whole range")
        self.zoom_button.add_class("landscape-zoom")
        self.full_button.add_class("landscape-full-range")
        self.zoom_button.observe(self._toggled, "value")
        self.selector.observe(self._brushed, "brushing")
        self.full_button.on_click(lambda _: self.on_zoom(None))
        self.widget = w.HBox([self.zoom_button, self.full_button])

    def _toggled(self, change) -> None:
        self.contour.widget.interaction = self.selector if change["new"] else None

    def _brushed(self, change) -> None:
        x, y = self.selector.selected_x, self.selector.selected_y
        if change["new"] or x is None or y is None or len(x) < 2 or len(y) < 2:
            return  # still dragging, or nothing selected
        scale_x, scale_y = self.contour.x_scale, self.contour.y_scale
        region = zoom_region(x, y, (scale_x.min, scale_x.max, scale_y.min, scale_y.max))
        if region is None:
            return
        self.zoom_button.value = False  # the brush goes with the zoom mode
        self.on_zoom(region)
