"""1-D linear interpolation between two parameter vectors (Goodfellow et al. 2015).

The loss along ``(1 - a) * theta1 + a * theta2`` for ``a`` beyond [0, 1] (default
-0.5..1.5): between the initialization and the solution it shows whether training
crossed a barrier; between two solutions (small- vs large-batch, two seeds) whether
they lie in one basin.
"""

from __future__ import annotations

import xarray as xr
from torch import nn

from ..core.directions import interpolation_direction
from ..core.grids import line
from ..core.landscape import compute_landscape
from ..core.params import ParamSpec, check_same_architecture, flatten_params, model_at, param_layout


def interpolate(
    model1: nn.Module,
    model2: nn.Module,
    loss_fn=None,
    data=None,
    start: float = -0.5,
    stop: float = 1.5,
    num: int = 41,
    *,
    params: ParamSpec = None,
    **landscape_kwargs,
) -> xr.Dataset:
    """Loss and metrics along ``(1 - a) * theta1 + a * theta2`` for ``a`` in [start, stop].

    Parameters
    ----------
    model1, model2 : nn.Module
        Same architecture; ``a = 0`` is ``model1``, ``a = 1`` is ``model2``. BatchNorm
        buffers (running statistics) and parameters outside ``params`` are ``model1``'s.
    loss_fn, data
        See :func:`~landscape_widgets.core.landscape.compute_landscape`.
    start, stop, num
        The coordinate range and number of points (default -0.5..1.5, 41 points).
    params : optional
        Interpolate only these parameters (see
        :func:`~landscape_widgets.core.params.select_params`).
    **landscape_kwargs
        Passed to :func:`~landscape_widgets.core.landscape.compute_landscape` (device,
        order, on_chunk, cancel, max_samples, ...).

    Returns
    -------
    xr.Dataset
        ``loss`` / ``accuracy`` over coordinate ``alpha`` (= a).

    Raises
    ------
    ValueError
        If the models differ in architecture.
    """
    check_same_architecture(model1, model2)
    layout = param_layout(model1, params)
    ds = compute_landscape(
        model1, loss_fn, data, line((start, stop), num), directions=[interpolation_direction(model1, model2, layout)],
        theta=flatten_params(model1, layout), params=layout, **landscape_kwargs,
    )
    ds.attrs["interpolation"] = "(1 - alpha) * theta1 + alpha * theta2"
    return ds


def interpolate_from_init(model: nn.Module, init, loss_fn=None, data=None, **kwargs) -> xr.Dataset:
    """:func:`interpolate` from the flat initialization ``init`` (``a = 0``) to ``model``
    (``a = 1``)."""
    return interpolate(model_at(model, init), model, loss_fn, data, **kwargs)
