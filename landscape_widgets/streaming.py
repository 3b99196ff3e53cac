"""Stream a grid's values chunk by chunk, coarse to fine, cancellable from another thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .evaluation import STRATEGIES, PointEvaluator, Strategy
from .grids import Grid, coarse_to_fine_order


@dataclass(frozen=True)
class Chunk:
    """Values of a set of grid points, as they finish.

    Attributes
    ----------
    indices : np.ndarray
        Flat indices into the grid (``np.unravel_index(indices, grid.shape)``).
    loss : np.ndarray
        Mean loss at each point; NaN where it was not finite.
    accuracy : np.ndarray or None
        Accuracy at each point (classification only).
    strategy : str
        ``"loop"`` or ``"batched"``: how this chunk was computed.
    """

    indices: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray | None
    strategy: str


def point_order(grid: Grid, order: str = "coarse_to_fine", skip=None) -> np.ndarray:
    """Flat indices in evaluation order, without those in ``skip`` (already done)."""
    if order == "coarse_to_fine":
        idx = coarse_to_fine_order(grid.shape)[0]
    elif order == "raster":
        idx = np.arange(grid.size, dtype=np.int64)
    else:
        raise ValueError(f"order must be 'coarse_to_fine' or 'raster', got {order!r}")
    if skip is not None and len(skip):
        idx = idx[~np.isin(idx, np.asarray(skip, dtype=np.int64))]
    return idx


def iter_chunks(
    evaluator: PointEvaluator,
    grid: Grid,
    strategy: Strategy = "auto",
    chunk_size: int | None = None,
    order: str = "coarse_to_fine",
    skip=None,
    cancel: threading.Event | None = None,
) -> Iterator[Chunk]:
    """Evaluate every grid point once, yielding :class:`Chunk` objects as they finish.

    Parameters
    ----------
    evaluator : PointEvaluator
        Model, loss, data and directions, prepared.
    grid : Grid
        Must have one axis per direction.
    strategy : {"auto", "loop", "batched"}
        ``auto`` times both strategies on the first chunks (whose results are kept, so
        no point is computed twice) and continues with the faster one.
    chunk_size : int, optional
        Points per chunk (default from the evaluator's memory budget).
    order : {"coarse_to_fine", "raster"}
        ``coarse_to_fine`` gives a first picture after a few percent of the points.
    skip : array of int, optional
        Flat indices already computed (e.g. from a resumed run); they are not
        evaluated again.
    cancel : threading.Event, optional
        Set it from any thread to stop; the iterator ends after the chunk in flight.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if grid.ndim != evaluator.n_directions:
        raise ValueError(
            f"the grid has {grid.ndim} axes but there are {evaluator.n_directions} "
            "directions; give one direction per axis"
        )
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    k = evaluator.chunk_plan(chunk_size)[0]
    todo = point_order(grid, order, skip)
    # ``auto``: loop, batched, loop, batched on the first chunks; keep the best time of each.
    trials: list[str] = ["loop", "batched"] * 2 if strategy == "auto" else []
    timings: dict[str, float] = {}
    chosen = "loop" if strategy == "auto" else strategy
    start = 0
    while start < len(todo):
        if cancel is not None and cancel.is_set():
            return
        use = trials.pop(0) if trials else chosen
        idx = todo[start : start + k]
        values, per_point = evaluator.timed(grid.coords(idx), use)
        if evaluator.batched_failed:
            use = "loop"
            trials = [t for t in trials if t != "batched"]
        timings[use] = min(per_point, timings.get(use, np.inf))
        if strategy == "auto" and not trials:
            chosen = min(timings, key=timings.get)
        start += len(idx)
        yield Chunk(idx, values.loss, values.accuracy, use)
