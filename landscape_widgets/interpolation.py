"""1-D linear interpolation between two parameter vectors (Goodfellow et al. 2015).

The loss along ``(1 - a) * theta0 + a * theta1`` for ``a`` beyond [0, 1] (default
-0.5..1.5): between the initialization and the solution it shows whether training
crossed a barrier; between two solutions (small- vs large-batch, two seeds) whether
they lie in one basin.
"""

from __future__ import annotations

import copy

import torch
import xarray as xr
from torch import nn

from .directions import interpolation_direction
from .evaluation import LossFn
from .grids import line
from .landscape import compute_landscape
from .params import check_same_architecture, flatten_params, load_flat_params_


def model_at(model: nn.Module, theta: torch.Tensor) -> nn.Module:
    """A deep copy of ``model`` with its parameters set to the flat vector ``theta``."""
    clone = copy.deepcopy(model)
    load_flat_params_(clone, theta)
    return clone


def interpolate(
    model0: nn.Module,
    model1: nn.Module,
    loss_fn: LossFn,
    data,
    start: float = -0.5,
    stop: float = 1.5,
    num: int = 41,
    **landscape_kwargs,
) -> xr.Dataset:
    """Loss (and accuracy) along ``(1 - a) * theta0 + a * theta1`` for ``a`` in [start, stop].

    Parameters
    ----------
    model0, model1 : nn.Module
        Same architecture; ``a = 0`` is ``model0``, ``a = 1`` is ``model1``. BatchNorm
        buffers (running statistics) are taken from ``model0``.
    loss_fn, data
        Mean-reduced loss and the data (see :func:`compute_landscape`).
    start, stop, num
        The coordinate range and number of points (default -0.5..1.5, 41 points).
    **landscape_kwargs
        Passed to :func:`compute_landscape` (device, order, on_chunk, cancel, ...).

    Returns
    -------
    xr.Dataset
        ``loss`` / ``accuracy`` over coordinate ``alpha`` (= a).

    Raises
    ------
    ValueError
        If the models differ in architecture.
    """
    check_same_architecture(model0, model1)
    direction = interpolation_direction(model0, model1)
    ds = compute_landscape(
        model0, loss_fn, data, line(start, stop, num), directions=[direction],
        theta=flatten_params(model0), **landscape_kwargs,
    )
    ds.attrs["interpolation"] = "(1 - alpha) * theta0 + alpha * theta1"
    return ds


def interpolate_from_init(result, loss_fn: LossFn, data, **kwargs) -> xr.Dataset:
    """:func:`interpolate` from a :class:`TrainResult`'s initialization (its first
    checkpoint, ``a = 0``) to its trained model (``a = 1``)."""
    init = model_at(result.model, result.trajectory[0])
    return interpolate(init, result.model, loss_fn, data, **kwargs)
