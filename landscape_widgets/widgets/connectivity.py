"""The plane through two solutions and a trained bend (mode connectivity), with the
straight line and the Bezier curve between the solutions drawn on the loss map."""

from __future__ import annotations

import ipywidgets as w
import xarray as xr

from .views import ContourView

KEY = ("<b style='color:#555'>- - -</b> straight line (white, dashed) &nbsp; "
       "<b style='color:red'>&#8212;</b> Bezier curve (red) &nbsp; w1, w2: the two solutions, "
       "bend: the trained bend (white dots)")


def connectivity_view(plane_ds: xr.Dataset) -> w.VBox:
    """The loss (log colour scale) on a
    :func:`~landscape_widgets.analysis.connectivity.connectivity_plane`, with both paths
    and labelled markers for w1, w2 and the bend; the key is under the map."""
    import bqplot as bq

    view = ContourView(normalization=None)
    view.update(plane_ds, "loss", "log")
    scales = {"x": view.x_scale, "y": view.y_scale}
    line = bq.Lines(x=plane_ds["linear_alpha"].values, y=plane_ds["linear_beta"].values, scales=scales,
                    colors=["white"], stroke_width=2.5, line_style="dashed")
    curve = bq.Lines(x=plane_ds["curve_alpha"].values, y=plane_ds["curve_beta"].values, scales=scales,
                     colors=["red"], stroke_width=2.5)
    bend = (plane_ds.attrs["bend_alpha"], plane_ds.attrs["bend_beta"])
    x, y = [0.0, 1.0, bend[0]], [0.0, 0.0, bend[1]]
    dots = bq.Scatter(x=x, y=y, scales=scales, colors=["white"], stroke="black", default_size=60)
    ends = bq.Label(x=x, y=y, text=["w1", "w2", "bend"], colors=["white"],
                    font_weight="bold", default_size=16, x_offset=8, y_offset=-8, scales=scales)
    view.centre.visible = False  # w1 is the centre: its dot and label mark it
    view.widget.marks = [*view.widget.marks, line, curve, dots, ends]
    view.x_axis.label = "u: along w2 − w1 (units of |w2 − w1|)"
    view.y_axis.label = "v: towards the bend (units of |w2 − w1|)"
    view.widget.title = "Loss on the plane through w1, w2 and the bend"
    return w.VBox([view.widget, w.HTML(KEY)])
