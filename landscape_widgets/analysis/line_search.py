"""PAL, the parabolic approximation line search (Mutschler & Zell 2019), against the truth.

Along the normalized negative gradient ``u = -g / |g|`` the loss is ``l(s) = L(theta + s u)``.
PAL measures ``l(0)``, its slope ``l'(0) = -|g|`` and ``l(mu)`` at a measuring distance
``mu``, fits ``l^(s) = a s^2 + b s + c`` with ``a = (l(mu) - l(0) - l'(0) mu) / mu^2``,
``b = l'(0)``, ``c = l(0)``, and proposes the step ``s* = -b / (2a)`` when ``a > 0``.
:func:`pal_line` evaluates the true ``l(s)`` beside the parabola and finds the true
minimum along the line, so a plot shows how good the proposal is.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr
from scipy.optimize import minimize_scalar

from ..core.evaluation import PointEvaluator
from ..core.objective import as_objective


def pal_line(
    model,
    loss_fn=None,
    data=None,
    mu: float = 0.1,
    s_max: float | None = None,
    num: int = 41,
    point: torch.Tensor | None = None,
    **objective_kwargs,
) -> xr.Dataset:
    """The loss along the negative gradient, PAL's parabola and its proposed step.

    Parameters
    ----------
    model, loss_fn, data, **objective_kwargs
        See :class:`~landscape_widgets.core.objective.Objective`, or an objective.
    mu : float
        Measuring distance (parameter units along the unit direction).
    s_max : float, optional
        End of the evaluated line (default ``2 * max(s*, mu)``, or ``4 mu`` when the
        parabola is not convex).
    num : int
        Points of the evaluated line (from ``s = 0``).
    point : torch.Tensor, optional
        Flat starting point (default theta).

    Returns
    -------
    xr.Dataset
        Over ``s``: ``loss`` (and ``accuracy``), ``parabola``; attributes ``a``, ``b``,
        ``c``, ``mu``, ``s_star`` (NaN when ``a <= 0``: PAL proposes no step),
        ``loss_at_s_star``, ``s_min`` and ``loss_min`` (the true minimum along the line
        in ``[0, s_max]``, refined between grid points), ``gradient_norm``.
    """
    if mu <= 0 or num < 3:
        raise ValueError(f"need mu > 0 and num >= 3, got mu={mu}, num={num}")
    ob = as_objective(model, loss_fn, data, **objective_kwargs)
    start = ob.as_point(point)
    l0, g = ob.gradient(start)
    norm = float(g.norm())
    if not norm > 0:
        raise ValueError("the gradient is zero at this point: there is no descent direction for PAL")
    ev = PointEvaluator(ob, directions=[-g / norm], theta=start)

    def loss_at(s) -> np.ndarray:
        return ev.evaluate(np.asarray(s, dtype=np.float64).reshape(-1, 1)).loss

    slope = -norm
    l_mu = float(loss_at(mu)[0])
    a, b, c = (l_mu - l0 - slope * mu) / mu**2, slope, l0
    s_star = -b / (2 * a) if a > 0 else float("nan")
    if s_max is None:
        s_max = 2 * max(s_star, mu) if a > 0 else 4 * mu
    s = np.linspace(0.0, s_max, num)
    values = ev.evaluate(s[:, None]).values
    i = int(np.nanargmin(values["loss"]))
    lo, hi = s[max(i - 1, 0)], s[min(i + 1, num - 1)]
    best = minimize_scalar(lambda x: float(loss_at(x)[0]), bounds=(lo, hi), method="bounded",
                           options={"xatol": 1e-4 * max(s_max, 1e-12)})
    s_min, loss_min = (float(best.x), float(best.fun)) if best.fun < values["loss"][i] else (s[i], values["loss"][i])
    ds = xr.Dataset({name: ("s", v) for name, v in values.items()} | {"parabola": ("s", a * s * s + b * s + c)},
                    coords={"s": s})
    ds["s"].attrs.update(long_name="s (step along the negative gradient)", units="parameter units")
    ds.attrs.update(a=a, b=b, c=c, mu=mu, s_star=s_star, gradient_norm=norm,
                    loss_at_s_star=float(loss_at(s_star)[0]) if a > 0 else float("nan"),
                    s_min=float(s_min), loss_min=float(loss_min))
    return ds
