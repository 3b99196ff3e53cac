"""Short directions along a low-loss path (Fort & Jastrzebski 2019, their Fig. 4).

A short direction is one in which the loss rises quickly; at a point it is counted as a
Hessian eigenvalue above a ``threshold``. The largest eigenvalues come from Lanczos on
Hessian-vector products (:mod:`~landscape_widgets.analysis.curvature`); by Cauchy
interlacing the ``i``-th largest Ritz value never exceeds the ``i``-th largest
eigenvalue, so with fewer Lanczos steps than parameters the count is a lower bound that
rises to the exact count as ``steps`` grows (it is exact once ``steps`` reaches the
number of parameters). A count close to ``steps`` means ``steps`` is too small: the
result's ``saturated`` flag says so.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr

from ..core.objective import as_objective
from .curvature import hvp_operator, lanczos


def short_directions(
    model,
    loss_fn=None,
    data=None,
    points: Sequence[torch.Tensor] | torch.Tensor = (),
    threshold: float = 1.0,
    t: Sequence[float] | None = None,
    steps: int = 40,
    seed: int = 0,
    **objective_kwargs,
) -> xr.Dataset:
    """Number of Hessian eigenvalues above ``threshold`` at each of ``points``.

    Parameters
    ----------
    model, loss_fn, data, **objective_kwargs
        See :class:`~landscape_widgets.core.objective.Objective`, or an objective.
    points : sequence of torch.Tensor or [k, n] tensor
        Flat points over the objective's moved parameters (e.g. along a Bezier curve or
        a tunnel: ``tunnel(...)["points"]``).
    threshold : float
        Curvature above which a direction counts as short (in loss units per squared
        parameter unit).
    t : sequence of float, optional
        Position of each point along its path (coordinate of the result; default
        ``0, 1, ...``).
    steps : int
        Lanczos steps per point (at most the number of parameters).
    seed : int
        Seed of Lanczos' start vector (the same at every point).

    Returns
    -------
    xr.Dataset
        Over ``t``: ``count`` (eigenvalues above the threshold), ``lambda_max`` and
        ``saturated`` (count within 5 of the Ritz values found: raise ``steps``);
        attributes ``threshold`` and ``steps``.
    """
    if threshold <= 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    ob = as_objective(model, loss_fn, data, **objective_kwargs)
    points = list(points)
    if not points:
        raise ValueError("give the points (flat parameter vectors) where to count short directions")
    t = np.arange(len(points), dtype=np.float64) if t is None else np.asarray(t, dtype=np.float64)
    if len(t) != len(points):
        raise ValueError(f"t has {len(t)} values for {len(points)} points")
    counts, top, saturated = [], [], []
    for p in points:
        ritz = lanczos(hvp_operator(ob, ob.as_point(torch.as_tensor(p))), ob.layout.size, steps, seed,
                       ob.device, torch.float64)
        n = int((ritz > threshold).sum())
        counts.append(n)
        top.append(float(ritz[-1]))
        saturated.append(n > len(ritz) - 5 and len(ritz) < ob.layout.size)
    ds = xr.Dataset({"count": ("t", np.array(counts)), "lambda_max": ("t", np.array(top)),
                     "saturated": ("t", np.array(saturated))}, coords={"t": t})
    ds["count"].attrs["long_name"] = f"Hessian eigenvalues above {threshold:g}"
    ds.attrs.update(threshold=float(threshold), steps=int(steps))
    return ds
