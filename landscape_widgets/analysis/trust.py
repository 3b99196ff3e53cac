"""How much a picture depends on the choices that produced it.

A 2-D slice is one random plane, one data sample and one normalization out of many.
These functions measure the spread the choices cause:

- :func:`seed_spread`: the same grid along the planes of several direction seeds
  (mean and standard deviation at each grid point);
- :func:`bootstrap_spread`: the data's sampling error, resampling the data's batches
  with replacement (each batch's mean loss is kept per point, so no point is evaluated
  twice);
- :func:`normalization_spread`: the same seed under each normalization, with the radius
  at which the loss doubles in each;
- :func:`check_range`: whether the grid's range suits where the loss doubles along the
  plane's directions, with a warning and a suggested range when it is far off.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import xarray as xr

from ..core.directions import NORMALIZATIONS
from ..core.grids import Grid, plane
from ..core.landscape import compute_landscape, prepare_evaluator
from ..core.objective import as_objective
from ..core.results import empty_landscape, fill_chunk
from .comparison import radius_to_loss
from .sharpness import first_crossing

#: A range is far too small when the loss doubles only beyond this multiple of it, and
#: far too large when it doubles within this fraction of it.
TOO_SMALL, TOO_LARGE = 3.0, 0.1


def seed_spread(model, loss_fn=None, data=None, grid: Grid | None = None, seeds: Sequence[int] = range(5),
                **landscape_kwargs) -> xr.Dataset:
    """The landscape along the random planes of several seeds, and its spread.

    Parameters
    ----------
    model, loss_fn, data, **landscape_kwargs
        As for :func:`~landscape_widgets.core.landscape.compute_landscape`
        (``normalization``, ``bias_bn``, objective keywords).
    grid : Grid, optional
        Default ``plane(num=21)``.
    seeds : sequence of int
        At least two direction seeds.

    Returns
    -------
    xr.Dataset
        ``loss`` over ``seed`` and the grid's axes, ``loss_mean`` and ``loss_sd`` (over
        the seeds, ``ddof=1``), attributes ``mean_sd`` (the grid mean of ``loss_sd``).
    """
    seeds = list(seeds)
    if len(seeds) < 2:
        raise ValueError("give at least two seeds to measure a spread")
    grid = grid or plane(num=21)
    ob = as_objective(model, loss_fn, data, **_objective_kwargs(landscape_kwargs))
    maps = [compute_landscape(ob, grid=grid, seed=s, **_landscape_only(landscape_kwargs))["loss"] for s in seeds]
    loss = xr.concat(maps, dim=xr.DataArray(seeds, dims="seed", name="seed"))
    ds = xr.Dataset({"loss": loss, "loss_mean": loss.mean("seed"), "loss_sd": loss.std("seed", ddof=1)})
    ds.attrs.update(mean_sd=float(ds["loss_sd"].mean()), seeds=seeds,
                    normalization=landscape_kwargs.get("normalization", "filter"))
    return ds


def bootstrap_spread(model, loss_fn=None, data=None, grid: Grid | None = None, directions=None, *,
                     resamples: int = 200, seed: int = 0, **landscape_kwargs) -> xr.Dataset:
    """The loss's sampling error at every grid point, by resampling the data's batches.

    Each point is evaluated once, keeping each batch's mean loss; ``resamples`` times
    the batches are drawn with replacement and the sample-weighted mean recomputed. The
    standard deviation of those means is the bootstrap standard error. Give the data in
    at least 10 batches (a DataLoader, or tensors with ``batch_size=``): the error is
    that of batch means, so fewer batches give a poor estimate.

    Returns
    -------
    xr.Dataset
        ``loss`` (the full-data value), ``loss_se`` (bootstrap standard error) and
        ``loss_lo``/``loss_hi`` (2.5% and 97.5% bootstrap quantiles) over the grid;
        attributes ``batches``, ``resamples``.
    """
    grid = grid or plane(num=21)
    ev, how = prepare_evaluator(model, loss_fn, data, grid.ndim, directions, **landscape_kwargs)
    values, sizes = ev.evaluate_batches(grid.coords(np.arange(grid.size)))
    if len(sizes) < 10:
        raise ValueError(f"the data is in {len(sizes)} batches; bootstrap needs at least 10 "
                         "(pass a DataLoader or batch_size=...)")
    per_batch = values[0].cpu().numpy()  # [points, batches]
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(sizes), size=(resamples, len(sizes)))
    counts = np.stack([np.bincount(d, minlength=len(sizes)) for d in draws]) * np.asarray(sizes)  # [resamples, batches]
    means = per_batch @ (counts / counts.sum(1, keepdims=True)).T  # [points, resamples]
    full = per_batch @ (np.asarray(sizes) / sum(sizes))
    ds = empty_landscape(grid, ("loss", "loss_se", "loss_lo", "loss_hi"), {**ev.objective.attrs(), **how})
    fill_chunk(ds, np.arange(grid.size), {"loss": full, "loss_se": means.std(axis=1, ddof=1),
                                          "loss_lo": np.quantile(means, 0.025, axis=1),
                                          "loss_hi": np.quantile(means, 0.975, axis=1)})
    ds.attrs.update(batches=len(sizes), resamples=resamples)
    return ds


def normalization_spread(model, loss_fn=None, data=None, grid: Grid | None = None, seed: int = 0,
                         factor: float = 2.0, offset: float = 0.1, **landscape_kwargs) -> xr.Dataset:
    """The landscape of one seed under every normalization, and where its loss doubles.

    Returns
    -------
    xr.Dataset
        ``loss`` over ``normalization`` and the grid's axes; ``radius``, the
        :func:`~landscape_widgets.analysis.comparison.radius_to_loss` of each (grid
        units, ``inf`` when the loss stays below the threshold on the grid).
    """
    grid = grid or plane(num=21)
    ob = as_objective(model, loss_fn, data, **_objective_kwargs(landscape_kwargs))
    rest = {k: v for k, v in _landscape_only(landscape_kwargs).items() if k != "normalization"}
    maps = {n: compute_landscape(ob, grid=grid, seed=seed, normalization=n, **rest) for n in NORMALIZATIONS}
    loss = xr.concat([m["loss"] for m in maps.values()], dim=xr.DataArray(list(maps), dims="normalization"))
    radius = [radius_to_loss(m, factor, offset) for m in maps.values()]
    return xr.Dataset({"loss": loss, "radius": ("normalization", radius)}, attrs={"seed": seed})


def check_range(model, loss_fn=None, data=None, grid: Grid | None = None, directions=None, *,
                factor: float = 2.0, offset: float = 0.0, max_radius: float = 1000.0, warn: bool = True,
                **landscape_kwargs) -> dict:
    """Whether ``grid``'s range suits the distance at which the loss reaches
    ``factor * loss(theta) + offset`` along the plane's directions.

    The distance is found along each direction, both ways (a scan and bisection). The
    range is *far too small* when that distance exceeds :data:`TOO_SMALL` times the
    grid's half-width (the picture shows a flat patch), *far too large* when it is below
    :data:`TOO_LARGE` times it (the basin is a dot); then a warning says so and
    suggests a half-width of about 2.5 times the distance, rounded to 1, 2 or 5 times a
    power of ten.

    Returns
    -------
    dict
        ``radius`` (the smallest distance over the directions, ``inf`` when the loss
        stays below the threshold up to ``max_radius``), ``half_width`` (the grid's),
        ``verdict`` (``"ok"``, ``"too small"`` or ``"too large"``), ``suggested`` (a
        half-width) and ``threshold``.
    """
    grid = grid or plane(num=21)
    ev, _ = prepare_evaluator(model, loss_fn, data, grid.ndim, directions, **landscape_kwargs)
    k = ev.n_directions
    base = float(ev.evaluate(np.zeros((1, k))).loss[0])
    threshold = factor * base + offset
    if not base < threshold:
        raise ValueError(f"the loss at theta ({base:.4g}) is not below the threshold {threshold:.4g}: "
                         "raise factor or offset")

    def loss_at(i: int, sign: float):
        def at(radii: np.ndarray) -> np.ndarray:
            coeffs = np.zeros((len(radii), k))
            coeffs[:, i] = sign * np.asarray(radii)
            return ev.evaluate(coeffs).loss
        return at

    scan = np.geomspace(max_radius * 1e-6, max_radius, 37)  # ten points per decade
    radius = min(first_crossing(loss_at(i, s), threshold, scan, rtol=1e-4) for i in range(k) for s in (1, -1))
    half = float(max(max(abs(a.start), abs(a.stop)) for a in grid.axes))
    verdict = "too small" if radius > TOO_SMALL * half else "too large" if radius < TOO_LARGE * half else "ok"
    suggested = _round_125(2.5 * radius) if math.isfinite(radius) else float("inf")
    if verdict != "ok" and warn:
        where = (f"the loss reaches {threshold:.3g} ({factor:g} x its centre value) at {radius:.3g} from the centre"
                 if math.isfinite(radius) else f"the loss stays below {threshold:.3g} up to {max_radius:g}")
        hint = f"; try a range of ±{suggested:g}" if math.isfinite(suggested) else ""
        warnings.warn(f"the grid's range (±{half:g}) is far {verdict}: {where}{hint}", stacklevel=2)
    return {"radius": radius, "half_width": half, "verdict": verdict, "suggested": suggested,
            "threshold": threshold}


def _round_125(x: float) -> float:
    """The nearest of 1, 2, 5 times a power of ten (in log scale)."""
    exp = math.floor(math.log10(x))
    return min((m * 10.0**e for e in (exp - 1, exp, exp + 1) for m in (1, 2, 5)),
               key=lambda c: abs(math.log(c / x)))


_LANDSCAPE_ONLY = ("normalization", "bias_bn", "theta", "strategy", "chunk_size", "order")


def _landscape_only(kwargs: dict) -> dict:
    return {k: v for k, v in kwargs.items() if k in _LANDSCAPE_ONLY}


def _objective_kwargs(kwargs: dict) -> dict:
    return {k: v for k, v in kwargs.items() if k not in _LANDSCAPE_ONLY}


def split_landscape_kwargs(kwargs: dict) -> tuple[dict, dict]:
    """``(objective keywords, plane keywords)`` of the ``**landscape_kwargs`` these
    functions take, so that a caller can prepare one objective for several of them."""
    return _objective_kwargs(kwargs), _landscape_only(kwargs)
