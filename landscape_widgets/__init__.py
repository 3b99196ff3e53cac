"""landscape-widgets: see the loss landscape of a neural network, live.

The top level holds the one-call functions and the objects a user holds. Architecture:
:mod:`~landscape_widgets.core` (objective, parameters, directions, grids, data,
evaluation, streaming, results), :mod:`~landscape_widgets.analysis` (interpolation,
trajectories, comparison, curvature, sharpness, connectivity, ensembling),
:mod:`~landscape_widgets.builtin` (built-in data, models, training, presets, wedge model),
:mod:`~landscape_widgets.runs` (resumable stores, Dask), :mod:`~landscape_widgets.plotting`,
:mod:`~landscape_widgets.widgets` and :mod:`~landscape_widgets.app` (Voila app, CLI).
Importing this package imports no widget library; ``lw.demo`` loads the widgets on first use.
"""

from .core.directions import interpolation_direction, random_directions
from .core.evaluation import PointEvaluator
from .core.grids import Axis, Grid, line, make_grid, plane, volume
from .core.landscape import compute_landscape
from .core.objective import Objective
from .core.params import select_params
from .core.results import load_landscape, save_landscape
from .core.streaming import Chunk, iter_chunks
from .analysis.comparison import compare_landscapes
from .analysis.curvature import convexity_map, hessian_eigenvalues, hutchinson_trace
from .analysis.interpolation import interpolate
from .analysis.sharpness import sharpness, tunnel_widths
from .analysis.trajectory import trajectory_landscape, trajectory_plane
from .runs.store import compute_stored, load_cached

__version__ = "0.1.0"


def __getattr__(name: str):
    # The widgets are imported only when asked for, so the core stays headless.
    if name == "demo":
        from .widgets.builtin_demo import demo

        return demo
    raise AttributeError(f"module 'landscape_widgets' has no attribute {name!r}")


__all__ = [
    "Axis", "Chunk", "Grid", "Objective", "PointEvaluator",
    "compare_landscapes", "compute_landscape", "compute_stored", "convexity_map",
    "hessian_eigenvalues", "hutchinson_trace", "interpolate", "interpolation_direction",
    "iter_chunks", "line", "load_cached", "load_landscape", "make_grid", "plane",
    "random_directions", "save_landscape", "select_params", "sharpness", "trajectory_landscape",
    "trajectory_plane", "tunnel_widths", "volume",
]
