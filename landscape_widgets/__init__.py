"""landscape-widgets: see the loss landscape of a neural network, live.

The numeric core (this namespace) imports no widget library, so it runs headless,
in tests and on Dask workers. The widgets live in :mod:`landscape_widgets.widgets`.
"""

from .data import Batches, as_batches
from .directions import (
    direction_cosine,
    interpolation_direction,
    normalize_direction,
    orthogonalize_direction,
    random_directions,
)
from .evaluation import PointEvaluator, PointValues, resolve_device
from .grids import Axis, Grid, coarse_to_fine_order, line, make_grid, plane, volume
from .landscape import compute_landscape
from .params import (
    ParamLayout,
    check_same_architecture,
    flatten_params,
    load_flat_params_,
    param_layout,
    unflatten_params,
)
from .results import empty_landscape, fill_chunk, load_landscape, save_landscape
from .streaming import Chunk, iter_chunks
from .store import compute_stored, load_cached, spec_hash
from .trajectory import trajectory_landscape, trajectory_plane
from .interpolation import interpolate
from .comparison import compare_landscapes
from .hessian import convexity_map, hessian_eigenvalues, hutchinson_trace
from .sharpness import sharpness, tunnel_widths
from .wedge import wedge_model

__version__ = "0.1.0"


def __getattr__(name: str):
    # The widgets are imported only when asked for, so the core stays headless.
    if name == "demo":
        from .widgets.builtin_demo import demo

        return demo
    raise AttributeError(f"module 'landscape_widgets' has no attribute {name!r}")


__all__ = [
    "Axis", "Batches", "Chunk", "Grid", "ParamLayout", "PointEvaluator", "PointValues",
    "as_batches", "check_same_architecture", "coarse_to_fine_order", "compute_landscape",
    "direction_cosine", "empty_landscape", "fill_chunk", "flatten_params",
    "interpolation_direction", "iter_chunks", "line", "load_flat_params_", "load_landscape",
    "make_grid", "normalize_direction", "orthogonalize_direction", "param_layout", "plane",
    "random_directions", "resolve_device", "save_landscape", "unflatten_params", "volume",
    "compute_stored", "load_cached", "spec_hash", "trajectory_landscape", "trajectory_plane",
    "interpolate", "compare_landscapes", "convexity_map", "hessian_eigenvalues",
    "hutchinson_trace", "sharpness", "tunnel_widths", "wedge_model", "demo",
]
