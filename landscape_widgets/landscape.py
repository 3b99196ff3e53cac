"""One call from a model to a labelled landscape: directions, grid, evaluation, result."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import xarray as xr
from torch import nn
from tqdm.auto import tqdm

from .directions import BiasBN, Normalization, resolve_directions
from .evaluation import LossFn, PointEvaluator, Strategy
from .grids import Grid, default_grid
from .results import done_indices, empty_landscape, fill_chunk, grid_of
from .streaming import Chunk, iter_chunks


def compute_landscape(
    model: nn.Module,
    loss_fn: LossFn,
    data,
    grid: Grid | None = None,
    directions: Sequence[torch.Tensor] | None = None,
    *,
    seed: int = 0,
    normalization: Normalization = "filter",
    bias_bn: BiasBN = "ignore",
    theta: torch.Tensor | None = None,
    device: str | torch.device | None = None,
    strategy: Strategy = "auto",
    chunk_size: int | None = None,
    order: str = "coarse_to_fine",
    max_batches: int | None = None,
    max_samples: int | None = None,
    accuracy: bool = True,
    resume: xr.Dataset | None = None,
    cancel: threading.Event | None = None,
    on_chunk: Callable[[xr.Dataset, Chunk], None] | None = None,
    progress: bool = False,
    backend: Callable[..., Iterator[Chunk]] = iter_chunks,
) -> xr.Dataset:
    """Loss (and accuracy) of ``model`` on a line, plane or volume around theta.

    Parameters
    ----------
    model, loss_fn, data
        The network, a mean-reduced loss ``loss_fn(outputs, targets)`` and the data
        (``(X, y)`` tensors or a DataLoader); see :class:`PointEvaluator`.
    grid : Grid, optional
        Default: a 51x51 plane over [-1, 1]^2 (or as many axes as ``directions``).
    directions : sequence of flat tensors, optional
        Default: ``random_directions(model, grid.ndim, seed, normalization, bias_bn)``.
    seed, normalization, bias_bn
        Used to draw the default directions (Li et al. 2018: ``filter``, ``ignore``).
    theta : torch.Tensor, optional
        Flat centre point (default: the model's parameters).
    device, strategy, chunk_size, order, max_batches, max_samples, accuracy
        See :class:`PointEvaluator` and :func:`iter_chunks`.
    resume : xr.Dataset, optional
        A partial result of the same grid: its finished points are kept, only the
        missing ones are computed.
    cancel : threading.Event, optional
        Stops the run after the chunk in flight; the partial result is returned with
        ``attrs["complete"] == 0``.
    on_chunk : callable, optional
        Called as ``on_chunk(dataset, chunk)`` after each chunk is written.
    progress : bool
        Show a tqdm progress bar.
    backend : callable
        Produces the chunks; called like :func:`iter_chunks` (default), e.g.
        :func:`landscape_widgets.distributed.dask_backend` to evaluate on Dask workers.

    Returns
    -------
    xr.Dataset
        ``loss`` (and ``accuracy`` for classification) over coordinates ``alpha``
        (``beta``, ``gamma``), a ``done`` mask, and attributes recording how the result
        was made. Non-finite losses are stored as NaN and counted in
        ``attrs["n_nonfinite"]``.
    """
    if grid is None:
        grid = default_grid(len(directions) if directions is not None else 2)
    directions, how = resolve_directions(
        model, grid.ndim, directions, seed, normalization, bias_bn, theta
    )
    evaluator = PointEvaluator(
        model, loss_fn, data, directions, theta=theta, device=device,
        max_batches=max_batches, max_samples=max_samples, accuracy=accuracy,
    )
    attrs = {
        **how,
        "grid": grid.to_dict(),
        "n_params": evaluator.layout.size,
        "n_samples": evaluator.batches.n_samples,
        "device": str(evaluator.device),
        "model": type(model).__name__,
    }
    if resume is not None:
        if grid_of(resume) != grid:
            raise ValueError("the result to resume was computed on a different grid")
        ds = resume.copy(deep=True)
        ds.attrs.update(attrs)
    else:
        ds = empty_landscape(grid, accuracy=evaluator.classification, attrs=attrs)
    done = done_indices(ds)
    bar = tqdm(total=grid.size, initial=len(done), disable=not progress, unit="pt")
    used: set[str] = set()
    for chunk in backend(
        evaluator, grid, strategy, chunk_size=chunk_size, order=order, skip=done, cancel=cancel
    ):
        fill_chunk(ds, chunk.indices, chunk.loss, chunk.accuracy)
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
