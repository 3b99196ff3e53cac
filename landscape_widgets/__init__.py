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

__version__ = "0.1.0"

__all__ = [
    "Axis", "Batches", "Chunk", "Grid", "ParamLayout", "PointEvaluator", "PointValues",
    "as_batches", "check_same_architecture", "coarse_to_fine_order", "compute_landscape",
    "direction_cosine", "empty_landscape", "fill_chunk", "flatten_params",
    "interpolation_direction", "iter_chunks", "line", "load_flat_params_", "load_landscape",
    "make_grid", "normalize_direction", "orthogonalize_direction", "param_layout", "plane",
    "random_directions", "resolve_device", "save_landscape", "unflatten_params", "volume",
]
