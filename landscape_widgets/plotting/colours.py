"""Colour conventions shared by the matplotlib figures and the live bqplot views."""

from __future__ import annotations

#: The convexity map's colours at evenly spaced ratios 0, 0.25, 0.5, 0.75 and 1: blue up to
#: white at :data:`~landscape_widgets.analysis.curvature.CONVEX_THRESHOLD` (nearly convex),
#: then deepening reds (non-convex). Ratios above 1 take the last colour.
CONVEXITY_COLOURS = ("#2166ac", "#f7f7f7", "#f4a582", "#d6604d", "#b2182b")
CONVEXITY_RANGE = (0.0, 1.0)
#: Computed points whose value is not finite (NaN, inf): never a colour of the colour map.
MISSING_COLOUR = "#8c8c8c"
