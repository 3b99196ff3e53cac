"""Several models on the same kind of landscape: one direction seed rule, one
normalization, one colour range, and a sharpness number beside each test accuracy.

Each model gets its own directions from the *same* seed, normalized relative to its
own weights (Li et al. 2018), so with filter normalization the landscapes of different
models are comparable; with ``normalization="none"`` the weight scale leaks in (weight
decay shrinks the weights, so the same step looks larger and the minimum sharper).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import xarray as xr
from torch import nn

from ..core.directions import BiasBN, Normalization, random_directions
from ..core.evaluation import values_at
from ..core.grids import Grid, plane
from ..core.landscape import compute_landscape
from ..core.objective import Objective
from ..core.params import ParamSpec, flatten_params, param_layout
from ..core.streaming import Chunk


def centre_loss(ds: xr.Dataset) -> float:
    """Loss at the grid point nearest to the origin (the trained model itself)."""
    origin = {name: 0.0 for name in ds["loss"].dims}
    return float(ds["loss"].sel(origin, method="nearest"))


def mean_loss_increase(ds: xr.Dataset) -> float:
    """Sharpness: mean of ``loss - loss(origin)`` over the finished grid points.

    A flat minimum gives a small number, a sharp one a large number. It depends on
    the grid range, so compare landscapes computed on the same grid.
    """
    loss = ds["loss"].values[ds["done"].values]
    if loss.size == 0 or np.isnan(loss).all():
        raise ValueError("the landscape has no finished finite points")
    return float(np.nanmean(loss) - centre_loss(ds))


def radius_to_loss(ds: xr.Dataset, factor: float = 2.0, offset: float = 0.1) -> float:
    """Sharpness: distance from the origin (in grid coordinates) of the nearest point
    whose loss reaches ``factor * loss(origin) + offset``; ``inf`` if none does.

    A wide minimum gives a large radius. ``offset`` keeps the threshold meaningful when
    the centre loss is near zero.
    """
    if factor <= 0:
        raise ValueError(f"factor must be positive, got {factor}")
    threshold = factor * centre_loss(ds) + offset
    coords = np.meshgrid(*[ds[d].values for d in ds["loss"].dims], indexing="ij")
    dist = np.sqrt(sum(c**2 for c in coords))
    above = ds["done"].values & (np.nan_to_num(ds["loss"].values, nan=np.inf) >= threshold)
    return float(dist[above].min()) if above.any() else float("inf")


def raw_range_scale(models: Sequence[nn.Module], seed: int = 0, bias_bn: BiasBN = "ignore",
                    params: ParamSpec = None) -> float:
    """The factor that turns a filter-normalized range into one for raw directions
    (``normalization="none"``) of the same seed: the largest raw step of ``±scale`` has the
    length of the smallest model's moved weights, as a filter-normalized step of 1 has each
    filter's own length; rounded down to one significant digit.

    Raw Gaussian directions are far longer than trained weights, so on the ±1 range of
    filter-normalized plots every raw landscape is a wall. One scale serves all the models,
    so their raw landscapes stay comparable. ``params`` restricts the moved parameters as
    in :func:`~landscape_widgets.core.directions.random_directions`.
    """
    if not models:
        raise ValueError("give at least one model")
    ratios = []
    for model in models:
        d = random_directions(model, 1, seed, normalization="none", bias_bn=bias_bn, params=params)[0]
        theta = flatten_params(model, param_layout(model, params))
        ratios.append(float(theta[d != 0].norm() / d.norm()))
    ratio = min(ratios)
    unit = 10.0 ** np.floor(np.log10(ratio))
    return float(np.floor(ratio / unit) * unit)


def compare_landscapes(
    models: Mapping[str, nn.Module],
    loss_fn=None,
    data=None,
    grid: Grid | None = None,
    *,
    seed: int = 0,
    normalization: Normalization = "filter",
    bias_bn: BiasBN = "ignore",
    test_data: tuple | None = None,
    on_chunk: Callable[[str, xr.Dataset, Chunk], None] | None = None,
    **landscape_kwargs,
) -> dict[str, xr.Dataset]:
    """The 2-D landscape of every model with the same direction seed and normalization.

    Parameters
    ----------
    models : mapping of name -> nn.Module
        Models to compare (architectures may differ: each gets its own directions).
    loss_fn, data
        Mean-reduced loss and the data to evaluate on (usually the training set).
    grid : Grid, optional
        Default: an 11x11 plane over [-1, 1]^2.
    seed, normalization, bias_bn
        The direction rule shared by all models.
    test_data : optional
        Data like ``data``; if given, each result's ``attrs["test_accuracy"]`` holds the
        model's accuracy on it (classification).
    on_chunk : callable, optional
        Called as ``on_chunk(name, dataset, chunk)`` while a landscape fills.
    **landscape_kwargs
        Passed to :func:`~landscape_widgets.core.landscape.compute_landscape` (device,
        strategy, cancel, params, max_samples, ...).

    Returns
    -------
    dict of name -> xr.Dataset
        Each with ``attrs["mean_loss_increase"]`` and ``attrs["radius_to_loss"]``.
    """
    if not models:
        raise ValueError("give at least one model to compare")
    grid = plane(num=11) if grid is None else grid
    out: dict[str, xr.Dataset] = {}
    for name, model in models.items():
        callback = None if on_chunk is None else (lambda ds, chunk, _n=name: on_chunk(_n, ds, chunk))
        ds = compute_landscape(
            model, loss_fn, data, grid, seed=seed, normalization=normalization, bias_bn=bias_bn,
            on_chunk=callback, **landscape_kwargs,
        )
        if ds.attrs.get("complete"):
            ds.attrs["mean_loss_increase"] = mean_loss_increase(ds)
            ds.attrs["radius_to_loss"] = radius_to_loss(ds)
        if test_data is not None:
            ds.attrs["test_accuracy"] = accuracy_on(model, loss_fn, test_data)
        out[name] = ds
    return out


def accuracy_on(model: nn.Module, loss_fn, test_data, **objective_kwargs) -> float:
    """Accuracy of ``model`` on ``test_data`` (NaN when the task is not classification)."""
    return values_at(Objective(model, loss_fn, test_data, **objective_kwargs)).get("accuracy", float("nan"))
