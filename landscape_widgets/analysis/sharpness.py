"""Sharpness around a solution: the loss increase at a filter-normalized radius, and the
radial "tunnel width" of Fort & Jastrzebski 2019 as a distribution over directions.

All directions go into one evaluator: the point at radius ``r`` along direction ``i``
has the coefficients ``r * e_i``, so the model copy and the data are shared and every
point is computed exactly as a landscape point would be.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..core.directions import BiasBN, Normalization, random_directions
from ..core.evaluation import PointEvaluator
from ..core.objective import as_objective


def _radial(model, loss_fn, data, n_directions, seed, normalization, bias_bn, unit, objective_kwargs):
    if n_directions < 1:
        raise ValueError(f"need at least one direction, got n_directions={n_directions}")
    ob = as_objective(model, loss_fn, data, **objective_kwargs)
    dirs = random_directions(ob.model, n_directions, seed, normalization, bias_bn, theta=ob.theta, params=ob.layout)
    return PointEvaluator(ob, directions=[d / d.norm() for d in dirs] if unit else dirs)


def _loss_along(ev: PointEvaluator, i: int, radii: np.ndarray) -> np.ndarray:
    """Loss at ``theta + r * d_i`` for each radius ``r``."""
    coeffs = np.zeros((len(radii), ev.n_directions))
    coeffs[:, i] = radii
    return ev.evaluate(coeffs).loss


def sharpness(
    model,
    loss_fn=None,
    data=None,
    radius: float = 0.1,
    n_directions: int = 10,
    seed: int = 0,
    normalization: Normalization = "filter",
    bias_bn: BiasBN = "ignore",
    **objective_kwargs,
) -> xr.Dataset:
    """Loss increase at distance ``radius`` along random normalized directions.

    ``L(theta + radius * d) - L(theta)`` for ``n_directions`` random directions ``d``
    normalized like the landscape plots (Li et al. 2018: ``filter``), so ``radius`` is
    in the same units as the plot axes and the number is comparable across models of
    different scale.

    Parameters
    ----------
    model, loss_fn, data, **objective_kwargs
        As for :func:`~landscape_widgets.core.landscape.compute_landscape` (``params``,
        ``device``, ``max_samples``...).

    Returns
    -------
    xr.Dataset
        ``increase`` over dimension ``direction``; attributes ``base_loss``,
        ``mean_increase`` and ``radius``.
    """
    if radius <= 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    ev = _radial(model, loss_fn, data, n_directions, seed, normalization, bias_bn, False, objective_kwargs)
    values = ev.evaluate(np.vstack([np.zeros(n_directions), radius * np.eye(n_directions)])).loss
    base, inc = float(values[0]), values[1:] - values[0]
    ds = xr.Dataset({"increase": ("direction", inc)}, coords={"direction": np.arange(n_directions)})
    ds["increase"].attrs.update(long_name=f"loss increase at radius {radius}", units="loss")
    ds.attrs.update(base_loss=base, mean_increase=float(np.nanmean(inc)), radius=radius, seed=seed,
                    normalization=normalization, bias_bn=bias_bn)
    return ds


def first_crossing(loss_at, threshold: float, radii: np.ndarray, tol: float = 0.0, rtol: float = 0.0) -> float:
    """Smallest radius with ``loss_at(r) > threshold``: the first of the increasing scan
    ``radii`` above it, refined by bisection to ``tol`` (absolute) or ``rtol`` (relative
    to the radius), whichever is larger; ``inf`` when no radius is above. A NaN loss
    (diverged) counts as above."""
    radii = np.asarray(radii, dtype=np.float64)
    above = np.flatnonzero(~(loss_at(radii) <= threshold))
    if len(above) == 0:
        return float("inf")
    hi = radii[above[0]]
    lo = radii[above[0] - 1] if above[0] > 0 else 0.0
    while hi - lo > max(tol, rtol * hi):
        mid = 0.5 * (lo + hi)
        if loss_at(np.array([mid]))[0] <= threshold:
            lo = mid
        else:
            hi = mid
    return float(0.5 * (lo + hi))


def tunnel_widths(
    model,
    loss_fn=None,
    data=None,
    threshold: float | None = None,
    n_directions: int = 20,
    max_radius: float = 10.0,
    seed: int = 0,
    normalization: Normalization = "none",
    bias_bn: BiasBN = "random",
    scan: int = 8,
    tol: float = 1e-3,
    **objective_kwargs,
) -> xr.Dataset:
    """Radial tunnel widths (Fort & Jastrzebski 2019) as a distribution over directions.

    For each random direction, the distance from theta at which the loss first exceeds
    ``threshold``: a coarse scan of ``scan`` points up to ``max_radius`` brackets the
    first crossing, bisection refines it to ``tol * max_radius``. Directions where the
    loss stays below the threshold give ``inf``.

    Parameters
    ----------
    threshold : float, optional
        Loss level (default: twice the loss at theta plus 0.1).
    normalization, bias_bn
        With the default ``"none"`` (all parameters, biases included, moved) each
        direction is scaled to unit Euclidean norm, so widths are distances in
        parameter space; with ``"filter"``/``"layer"`` they are in plot units.
    **objective_kwargs
        As for :func:`~landscape_widgets.core.landscape.compute_landscape`.

    Returns
    -------
    xr.Dataset
        ``width`` over dimension ``direction``; attributes ``threshold``,
        ``base_loss`` and ``median_width``.
    """
    if max_radius <= 0 or scan < 1:
        raise ValueError("max_radius must be > 0 and scan >= 1")
    ev = _radial(model, loss_fn, data, n_directions, seed, normalization, bias_bn, normalization == "none",
                 objective_kwargs)
    base = float(_loss_along(ev, 0, np.zeros(1))[0])
    threshold = 2 * base + 0.1 if threshold is None else float(threshold)
    if not base <= threshold:
        raise ValueError(f"the loss at theta ({base:.4g}) is already above the threshold {threshold:.4g}")
    w = np.array([
        first_crossing(lambda r, i=i: _loss_along(ev, i, r), threshold, np.linspace(0, max_radius, scan + 1)[1:],
                       tol * max_radius)
        for i in range(n_directions)
    ])
    ds = xr.Dataset({"width": ("direction", w)}, coords={"direction": np.arange(n_directions)})
    units = "parameter-space distance" if normalization == "none" else f"{normalization}-normalized units"
    ds["width"].attrs.update(long_name="radial tunnel width", units=units)
    ds.attrs.update(threshold=threshold, base_loss=base, median_width=float(np.median(w)),
                    max_radius=max_radius, seed=seed, normalization=normalization)
    return ds
