"""One call from a model to a labelled landscape: objective, directions, grid, evaluation, result."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from .digest import points_digest
from .directions import BiasBN, Normalization, resolve_directions
from .evaluation import PointEvaluator, Strategy
from .grids import Grid, default_grid
from .objective import as_objective
from .results import done_indices, grid_of
from .streaming import Chunk, fill_landscape, iter_chunks, new_landscape


def prepare_evaluator(
    model,
    loss_fn=None,
    data=None,
    n_directions: int = 2,
    directions: Sequence[torch.Tensor] | None = None,
    *,
    seed: int = 0,
    normalization: Normalization = "filter",
    bias_bn: BiasBN = "ignore",
    theta: torch.Tensor | None = None,
    **objective_kwargs,
) -> tuple[PointEvaluator, dict]:
    """The objective of ``model`` (or ``model`` itself if it is one), the given or random
    directions around ``theta`` and the evaluator over them, with attributes saying how
    the directions were made.

    Returns
    -------
    (PointEvaluator, dict)
    """
    objective = as_objective(model, loss_fn, data, **objective_kwargs)
    centre = objective.as_point(theta)
    dirs, how = resolve_directions(
        objective.model, n_directions, directions, seed, normalization, bias_bn, centre, params=objective.layout
    )
    return PointEvaluator(objective, directions=dirs, theta=centre), how


#: The attributes that say which computation made a result: a result resumed where any
#: of them differs would mix two landscapes. ``points`` names the centre and the
#: directions by value (so the model's weights, the seed, normalization, bias/BN rule
#: and moved parameters that drew them).
IDENTITY_ATTRS = ("model", "loss_fn", "params", "n_params", "n_params_fixed", "n_samples", "dtype", "points")


def check_resumable(done: Mapping, now: Mapping) -> None:
    """Raise ``ValueError`` naming what differs where the attributes ``done`` of a
    result to resume and ``now`` of the computation asked for disagree on
    :data:`IDENTITY_ATTRS`."""
    differ = [_difference(key, done, now) for key in IDENTITY_ATTRS if str(done.get(key)) != str(now.get(key))]
    if not differ:
        return
    said = "; ".join(differ)
    raise ValueError(f"the result to resume was computed differently ({said}): resume it with the same "
                     "model, loss, data, parameters and directions, or start a new result")


def _difference(key: str, done: Mapping, now: Mapping) -> str:
    if key != "points":
        there, here = (v.item() if isinstance(v, np.generic) else v for v in (done.get(key), now.get(key)))
        return f"{key}={there!r} there, {here!r} here"
    if "points" not in done:
        return "it records no digest of its points (made by an older version, or not by compute_landscape)"
    return "other points: another centre or other directions (model state, seed, normalization, bias_bn)"


def compute_landscape(
    model,
    loss_fn=None,
    data=None,
    grid: Grid | None = None,
    directions: Sequence[torch.Tensor] | None = None,
    *,
    seed: int = 0,
    normalization: Normalization = "filter",
    bias_bn: BiasBN = "ignore",
    theta: torch.Tensor | None = None,
    strategy: Strategy = "auto",
    chunk_size: int | None = None,
    order: str = "coarse_to_fine",
    resume: xr.Dataset | None = None,
    cancel: threading.Event | None = None,
    on_chunk: Callable[[xr.Dataset, Chunk], None] | None = None,
    progress: bool = False,
    backend: Callable[..., Iterator[Chunk]] = iter_chunks,
    **objective_kwargs,
) -> xr.Dataset:
    """Loss and metrics of ``model`` on a line, plane or volume around theta.

    Parameters
    ----------
    model : nn.Module or Objective
        The network (with ``loss_fn``, ``data`` and ``objective_kwargs``), or a prepared
        :class:`~landscape_widgets.core.objective.Objective`.
    loss_fn : callable, optional
        A mean-reduced ``loss_fn(outputs, targets)``; default the model's own
        ``outputs.loss``. See :class:`~landscape_widgets.core.objective.Objective`.
    data
        ``(X, y)`` tensors, a dict of tensors, or a DataLoader of pairs, tuples or dicts.
    grid : Grid, optional
        Default: a 51x51 plane over [-1, 1]^2 (or as many axes as ``directions``).
    directions : sequence of flat tensors, optional
        Default: ``random_directions(model, grid.ndim, seed, normalization, bias_bn)``
        over the moved parameters.
    seed, normalization, bias_bn
        Used to draw the default directions (Li et al. 2018: ``filter``, ``ignore``).
    theta : torch.Tensor, optional
        Flat centre point (default: the model's values of the moved parameters).
    strategy, chunk_size, order
        See :func:`~landscape_widgets.core.streaming.iter_chunks`.
    resume : xr.Dataset, optional
        A partial result of the same computation (grid and :data:`IDENTITY_ATTRS`; a
        ``ValueError`` says what differs): its finished points are kept, only the
        missing ones are computed.
    cancel : threading.Event, optional
        Stops the run after the chunk in flight; the partial result is returned with
        ``attrs["complete"] == 0``.
    on_chunk : callable, optional
        Called as ``on_chunk(dataset, chunk)`` after each chunk is written.
    progress : bool
        Show a tqdm progress bar.
    backend : callable
        Produces the chunks; called like :func:`~landscape_widgets.core.streaming.iter_chunks`
        (default), e.g. :func:`landscape_widgets.runs.distributed.dask_backend`.
    **objective_kwargs
        ``params`` (which parameters move: ``"trainable"``, globs, modules...),
        ``forward``, ``pass_batch``, ``metrics``, ``accuracy``, ``task``, ``device``
        (default: the model's), ``dtype``, ``batch_size``, ``max_batches``,
        ``max_samples`` (the cost controls), ``data_budget``: see
        :class:`~landscape_widgets.core.objective.Objective`.

    Returns
    -------
    xr.Dataset
        ``loss`` (``accuracy`` for classification, and each user metric) over
        coordinates ``alpha`` (``beta``, ``gamma``), a ``done`` mask, and attributes
        recording how the result was made (directions, parameters moved and fixed, data
        size, device). Non-finite losses are stored as NaN and counted in
        ``attrs["n_nonfinite"]``.
    """
    if grid is None:
        grid = default_grid(len(directions) if directions is not None else 2)
    if not isinstance(grid, Grid):
        raise TypeError(f"grid must be a Grid, e.g. plane((-1, 1), num=51), line((-1, 1), num=51) or volume(...); "
                        f"got {grid!r}")
    evaluator, how = prepare_evaluator(
        model, loss_fn, data, grid.ndim, directions, seed=seed, normalization=normalization,
        bias_bn=bias_bn, theta=theta, **objective_kwargs,
    )
    attrs = {**how, "grid": grid.to_dict(), "points": points_digest(evaluator.theta, evaluator.directions)}
    if resume is not None:
        if grid_of(resume) != grid:
            raise ValueError("the result to resume was computed on a different grid")
        recorded = {**evaluator.objective.attrs(), **attrs}
        check_resumable(resume.attrs, recorded)
        ds = resume.copy(deep=True)
        ds.attrs.update(recorded)
    else:
        ds = new_landscape(evaluator, grid, attrs)
    done = done_indices(ds)
    bar = tqdm(total=grid.size, initial=len(done), disable=not progress, unit="pt")
    used: set[str] = set()
    chunks = backend(evaluator, grid, strategy, chunk_size=chunk_size, order=order, skip=done, cancel=cancel)
    for chunk in fill_landscape(ds, chunks):
        used.add(chunk.strategy)
        bar.update(len(chunk.indices))
        if on_chunk is not None:
            on_chunk(ds, chunk)
    bar.close()
    n_done = int(ds["done"].sum())
    ds.attrs.update(
        strategy="+".join(sorted(used)) or "none",
        complete=int(n_done == grid.size),
        n_done=n_done,
        n_nonfinite=int(np.count_nonzero(ds["done"].values & np.isnan(ds["loss"].values))),
    )
    if evaluator.batched_failed:
        ds.attrs["vmap_fallback"] = evaluator.batched_failed
    return ds
