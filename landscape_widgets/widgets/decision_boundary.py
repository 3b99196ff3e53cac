"""What a point of the landscape *is*: the decision boundary of the network at the
point under the cursor, drawn beside the explorer's map (2-D inputs, e.g. moons).

Hovering the map (its cursor targets, :class:`~landscape_widgets.widgets.views.ContourView`'s
``targets``) draws the classifier at ``theta + alpha d1 + beta d2``: its predicted class
over the input plane and the data on top.
"""

from __future__ import annotations

from dataclasses import replace

import ipywidgets as w
import numpy as np
import torch

from ..core.evaluation import PointEvaluator
from .explorer import LandscapeExplorer
from .views import seamless_heatmap, set_cells

#: Input-plane cells per axis of the boundary picture.
RESOLUTION = 80

#: Most data points drawn over the boundary: every point is an SVG element of its own, and
#: the browser draws thousands slowly.
MAX_POINTS = 200


#: Background colours of the predicted classes 0 and 1.
REGION_COLOURS = ("#9ecae1", "#fdae6b")


class DecisionBoundaryView:
    """The class the model predicts over its 2-D input plane, with the data points.

    Parameters
    ----------
    inputs, labels : torch.Tensor
        ``[N, 2]`` inputs and their ``[N]`` integer classes (at most :data:`MAX_POINTS`
        of them drawn on top, a fixed random choice).
    """

    def __init__(self, inputs: torch.Tensor, labels: torch.Tensor, width: str = "420px") -> None:
        import bqplot as bq

        if inputs.dim() != 2 or inputs.shape[1] != 2:
            raise ValueError(f"a decision boundary needs 2-D inputs, got shape {tuple(inputs.shape)}")
        x = inputs.detach().cpu().numpy()
        pad = 0.1 * (x.max(0) - x.min(0))
        lo, hi = x.min(0) - pad, x.max(0) + pad
        self.axes = [np.linspace(lo[i], hi[i], RESOLUTION) for i in range(2)]
        gx, gy = np.meshgrid(*self.axes, indexing="ij")
        self.plane_inputs = torch.tensor(np.stack([gx.ravel(), gy.ravel()], 1), dtype=inputs.dtype)
        sx, sy = bq.LinearScale(), bq.LinearScale()
        self.class_scale = bq.ColorScale(colors=list(REGION_COLOURS), min=0.0, max=1.0)
        self.underlay, self.region = seamless_heatmap(scales={"x": sx, "y": sy, "color": self.class_scale})
        shown = np.sort(np.random.default_rng(0).permutation(len(x))[:MAX_POINTS])
        x, y = x[shown], labels.detach().cpu().numpy()[shown]
        self.points = bq.Scatter(x=x[:, 0], y=x[:, 1], color=y.astype(float), default_size=40, stroke="white",
                                 stroke_width=1.0,
                                 scales={"x": sx, "y": sy, "color": bq.ColorScale(colors=["#08519c", "#a63603"],
                                                                                  min=0.0, max=1.0)})
        self.widget = bq.Figure(
            marks=[self.underlay, self.region, self.points], title="boundary of the trained network",
            axes=[bq.Axis(scale=sx, label="input x1"), bq.Axis(scale=sy, orientation="vertical", label="input x2",
                                                                 label_offset="40px")],
            padding_x=0, padding_y=0, fig_margin={"top": 50, "bottom": 50, "left": 60, "right": 20},
            layout={"width": width, "height": width},
        )

    def show(self, model: torch.nn.Module, where: str) -> None:
        """Draw ``model``'s predicted class over the input plane; ``where`` titles it."""
        with torch.inference_mode():
            outputs = model(self.plane_inputs)
        predicted = outputs.argmax(1).float().cpu().numpy().reshape(RESOLUTION, RESOLUTION)
        with self.widget.hold_sync():
            set_cells((self.underlay, self.region), *self.axes, predicted.T)
            self.widget.title = f"boundary {where}"


class BoundaryExplorer:
    """``explorer`` (its 2-D view) with a :class:`DecisionBoundaryView` beside it that
    follows the cursor on the map: hover a point of the map to see that network.

    Attributes
    ----------
    widget : LandscapeExplorer
        The explorer, with the boundary beside its 2-D map.
    explorer : LandscapeExplorer
    boundary : DecisionBoundaryView
    """

    def __init__(self, explorer: LandscapeExplorer, inputs: torch.Tensor, labels: torch.Tensor) -> None:
        self.explorer = explorer
        self.boundary = DecisionBoundaryView(inputs, labels)
        self.targets = explorer.views_of("2d")[0].targets
        self.targets.on_hover(lambda _mark, event: self.show(float(event["data"]["x"]), float(event["data"]["y"])))
        self.boundary.show(explorer.model.eval(), "of the trained network")
        hint = w.HTML("<i>Move the cursor over the map: the picture of the data shows what the network at that "
                      f"point of the plane predicts for every input, <span style='background:{REGION_COLOURS[0]}'>&nbsp;"
                      f"class 0&nbsp;</span> or <span style='background:{REGION_COLOURS[1]}'>&nbsp;class 1&nbsp;"
                      "</span>; the dots are the data, coloured by their true class.</i>")
        # as wide as the picture, so that it fits beside the map instead of below it
        explorer.show_beside("2d", w.VBox([self.boundary.widget, hint],
                                          layout={"margin": "0 0 0 12px", "width": self.boundary.widget.layout.width}))
        self.widget = explorer

    def network_at(self, alpha: float, beta: float) -> torch.nn.Module:
        """A copy of the model at ``theta + alpha d1 + beta d2`` of the map's plane."""
        from ..core.params import model_at

        settings = replace(self.explorer.settings, view="2d")
        directions, _ = self.explorer.plane(settings)
        evaluator = PointEvaluator(self.explorer.objective(settings.params), directions=directions)
        point = evaluator.points(np.array([[alpha, beta]]))[0]
        return model_at(self.explorer.model, point.cpu(), evaluator.objective.layout).eval()

    def show(self, alpha: float, beta: float) -> None:
        """Draw the boundary of the network at ``(alpha, beta)``."""
        self.boundary.show(self.network_at(alpha, beta), f"at alpha = {alpha:.2f}, beta = {beta:.2f}")
