"""Local entropy (Entropy-SGD, Chaudhari et al. 2017) and the Gaussian-smoothed loss.

The local entropy of the loss ``L`` at ``theta`` with scope ``gamma`` is

    F(theta; gamma) = log integral exp(-L(theta') - gamma/2 |theta - theta'|^2) dtheta'
                    = (n/2) log(2 pi / gamma) + log E[exp(-L(theta + eps))],
                      eps ~ N(0, I / gamma) over the n moved parameters.

The first term is the same at every point, so what is reported (``local_entropy``) is
the second: ``log E[exp(-L)]`` under Gaussian noise of standard deviation
``sigma = 1 / sqrt(gamma)`` per parameter, estimated from ``samples`` noise draws by a
log-mean-exp (larger = wider valley; ``gamma -> inf`` gives ``-L(theta)``). The related
smoothed loss ``E[L(theta + eps)]`` comes from the same draws. Standard errors are those
of the Monte Carlo means (delta method for the logarithm). The same noise draws are used
at every point of a map (common random numbers), so the map is smooth and differences
between points are not noise.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import xarray as xr
from scipy.special import logsumexp
from torch import nn

from ..core.evaluation import PointEvaluator
from ..core.grids import Grid, plane
from ..core.landscape import prepare_evaluator
from ..core.objective import Objective, as_objective
from ..core.results import empty_landscape, fill_chunk
from .sharpness import sharpness

#: Noise draws evaluated per evaluator (each is a direction held in memory).
DRAWS_PER_PASS = 8


def _noise(ob: Objective, gamma: float, samples: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(int(seed))
    scale = 1.0 / np.sqrt(gamma)
    return [(torch.randn(ob.layout.size, generator=gen, dtype=torch.float64) * scale).to(ob.device, ob.theta.dtype)
            for _ in range(samples)]


def _sampled_losses(ob: Objective, centre: torch.Tensor, base: list[torch.Tensor], coeffs: np.ndarray,
                    noise: list[torch.Tensor]) -> np.ndarray:
    """Loss at ``centre + coeffs @ base + eps_j`` for every point (row of ``coeffs``) and
    draw ``j``: ``[points, samples]``."""
    out = []
    for lo in range(0, len(noise), DRAWS_PER_PASS):
        draws = noise[lo : lo + DRAWS_PER_PASS]
        ev = PointEvaluator(ob, directions=base + draws, theta=centre)
        rows = np.hstack([np.repeat(coeffs, len(draws), 0), np.tile(np.eye(len(draws)), (len(coeffs), 1))])
        out.append(ev.evaluate(rows).loss.reshape(len(coeffs), len(draws)))
    return np.concatenate(out, axis=1)


def _statistics(losses: np.ndarray) -> dict[str, np.ndarray]:
    """Local entropy, smoothed loss and their standard errors over the last axis."""
    s = losses.shape[-1]
    entropy = logsumexp(-losses, axis=-1) - np.log(s)
    weights = np.exp(-losses - entropy[..., None])  # exp(-L) / mean(exp(-L))
    return {
        "local_entropy": entropy,
        "local_entropy_stderr": weights.std(axis=-1, ddof=1) / np.sqrt(s),
        "smoothed_loss": losses.mean(axis=-1),
        "smoothed_loss_stderr": losses.std(axis=-1, ddof=1) / np.sqrt(s),
    }


def _check(gamma: float, samples: int) -> None:
    if not gamma > 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    if samples < 2:
        raise ValueError(f"need at least 2 samples for a standard error, got {samples}")


def local_entropy(
    model,
    loss_fn=None,
    data=None,
    gamma: float = 1e4,
    samples: int = 64,
    seed: int = 0,
    point: torch.Tensor | None = None,
    **objective_kwargs,
) -> dict[str, float]:
    """Local entropy and smoothed loss at one point (see the module docs).

    Parameters
    ----------
    model, loss_fn, data, **objective_kwargs
        See :class:`~landscape_widgets.core.objective.Objective`, or an objective.
    gamma : float
        Scope: the noise's standard deviation per parameter is ``1 / sqrt(gamma)``.
    samples : int
        Noise draws.
    seed : int
        Seed of the draws.
    point : torch.Tensor, optional
        Flat point (default theta).

    Returns
    -------
    dict
        ``local_entropy``, ``local_entropy_stderr``, ``smoothed_loss``,
        ``smoothed_loss_stderr``, ``sigma``.
    """
    _check(gamma, samples)
    ob = as_objective(model, loss_fn, data, **objective_kwargs)
    centre = ob.as_point(point)
    losses = _sampled_losses(ob, centre, [], np.zeros((1, 0)), _noise(ob, gamma, samples, seed))
    return {k: float(v[0]) for k, v in _statistics(losses).items()} | {"sigma": float(1 / np.sqrt(gamma))}


def local_entropy_map(
    model,
    loss_fn=None,
    data=None,
    grid: Grid | None = None,
    directions=None,
    *,
    gamma: float = 1e4,
    samples: int = 16,
    seed: int = 0,
    noise_seed: int = 1,
    **landscape_kwargs,
) -> xr.Dataset:
    """The plain loss, the local entropy and the smoothed loss over a grid of a plane.

    Parameters
    ----------
    model, loss_fn, data
        As for :func:`~landscape_widgets.core.landscape.compute_landscape`.
    grid : Grid, optional
        Default ``plane(num=21)``.
    directions, seed, **landscape_kwargs
        The plane: given directions or random ones from ``seed`` (``normalization``,
        ``bias_bn``, ``theta`` and the objective's keywords as for
        :func:`~landscape_widgets.core.landscape.prepare_evaluator`).
    gamma, samples, noise_seed
        Scope, number and seed of the noise draws (the same draws at every point).

    Returns
    -------
    xr.Dataset
        A landscape (``loss``, ``accuracy``, ``done``) with ``local_entropy``,
        ``smoothed_loss`` and their ``*_stderr``; attributes ``gamma``, ``sigma``,
        ``samples``.
    """
    _check(gamma, samples)
    grid = grid or plane(num=21)
    ev, how = prepare_evaluator(model, loss_fn, data, grid.ndim, directions, seed=seed, **landscape_kwargs)
    ob = ev.objective
    coeffs = grid.coords(np.arange(grid.size))
    base = list(ev.directions)
    stats = _statistics(_sampled_losses(ob, ev.theta, base, coeffs, _noise(ob, gamma, samples, noise_seed)))
    ds = empty_landscape(grid, ev.metric_names + tuple(stats), {**ob.attrs(), **how})
    fill_chunk(ds, np.arange(grid.size), ev.evaluate(coeffs).values | stats)
    ds.attrs.update(gamma=float(gamma), sigma=float(1 / np.sqrt(gamma)), samples=int(samples))
    return ds


def flatness_table(models: Mapping[str, nn.Module], loss_fn=None, data=None, *, gamma: float = 1e3,
                   samples: int = 32, radius: float = 0.1, seed: int = 0, **objective_kwargs) -> xr.Dataset:
    """Local entropy set against sharpness, one row per model.

    Parameters
    ----------
    models : mapping of str -> nn.Module
        Named trained networks.
    loss_fn, data, **objective_kwargs
        As for :class:`~landscape_widgets.core.objective.Objective`.
    gamma, samples, seed
        For :func:`local_entropy` (the same draws for every model of one architecture).
    radius
        For :func:`~landscape_widgets.analysis.sharpness.sharpness` (filter-normalized).

    Returns
    -------
    xr.Dataset
        Over ``model``: ``loss``, ``local_entropy``, ``local_entropy_stderr``,
        ``smoothed_loss`` and ``sharpness`` (mean loss increase at ``radius``).
    """
    rows = {}
    for name, model in models.items():
        ob = as_objective(model, loss_fn, data, **objective_kwargs)  # one copy for both measures
        ent = local_entropy(ob, gamma=gamma, samples=samples, seed=seed)
        sharp = sharpness(ob, radius=radius, seed=seed)
        rows[name] = {"loss": sharp.attrs["base_loss"], "sharpness": sharp.attrs["mean_increase"],
                      **{k: ent[k] for k in ("local_entropy", "local_entropy_stderr", "smoothed_loss")}}
    names = list(rows)
    ds = xr.Dataset({k: ("model", np.array([rows[n][k] for n in names])) for k in rows[names[0]]},
                    coords={"model": names})
    ds.attrs.update(gamma=float(gamma), sigma=float(1 / np.sqrt(gamma)), samples=int(samples), radius=float(radius))
    return ds
