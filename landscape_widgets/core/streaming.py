"""Stream a grid's values chunk by chunk, coarse to fine, cancellable from another thread."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import xarray as xr

from .evaluation import STRATEGIES, HasValues, PointEvaluator, Strategy
from .grids import Grid, coarse_to_fine_order
from .results import empty_landscape, fill_chunk


@dataclass(frozen=True)
class Chunk(HasValues):
    """Values of a set of grid points, as they finish.

    Attributes
    ----------
    indices : np.ndarray
        Flat indices into the grid (``np.unravel_index(indices, grid.shape)``).
    values : dict of str -> np.ndarray
        ``loss`` (NaN where it was not finite), ``accuracy`` (classification) and the
        user metrics at each point.
    strategy : str
        ``"loop"`` or ``"batched"``: how this chunk was computed (``"sample"`` for
        estimates).
    final : bool
        Exact values on all the data (``False``: estimates from a data sample, with
        their standard errors as ``<metric>_se`` values; see
        :mod:`landscape_widgets.core.sampled`).
    """

    indices: np.ndarray
    values: dict[str, np.ndarray]
    strategy: str
    final: bool = True


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
        ``auto`` times both strategies on the first chunks (a few loop points, one or
        two batched chunks; their results are kept, so no point is computed twice) and
        continues with the faster one.
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
    trials = _AutoTrials(k) if strategy == "auto" else None
    start = 0
    while start < len(todo):
        if cancel is not None and cancel.is_set():
            return
        use, size = trials.next() if trials is not None else (strategy, k)
        idx = todo[start : start + size]
        values, per_point = evaluator.timed(grid.coords(idx), use)
        if evaluator.batched_failed:
            use = "loop"
        if trials is not None:
            trials.record(use, per_point, batched_ok=not evaluator.batched_failed)
        start += len(idx)
        yield Chunk(idx, values.values, use)


class _AutoTrials:
    """``auto``: time both strategies on the first chunks, then keep the faster.

    The trials are real work (their values are kept) and short: a 2-point batched
    chunk pays vmap's one-off set-up and is not timed, then the loop and the batched
    strategy are timed on a few points each; when batched is close behind, one full
    batched chunk (more points per forward) gets the last word. Afterwards each
    chunk's time replaces its strategy's record, so when the machine's load changes
    (other processes on the same cores) the choice follows within a chunk or two.
    """

    TRIAL_POINTS = 8
    WARMUP_POINTS = 2
    #: batched per-point time up to this multiple of the loop's earns a full-chunk trial
    CLOSE = 1.2

    def __init__(self, k: int) -> None:
        self.k = k
        small = min(k, self.TRIAL_POINTS)
        self.plan: list[tuple[str, int, bool]] = [
            ("batched", min(k, self.WARMUP_POINTS), False),
            ("loop", small, True),
            ("batched", small, True),
        ]
        self.timings: dict[str, float] = {}
        self.chosen = "loop"
        self.timed = True
        self.trial = True

    def next(self) -> tuple[str, int]:
        """Strategy and number of points of the next chunk."""
        self.trial = bool(self.plan)
        if not self.plan:
            self.timed = True
            return self.chosen, self.k
        use, size, self.timed = self.plan.pop(0)
        return use, size

    def record(self, used: str, per_point: float, batched_ok: bool = True) -> None:
        """Note how long the chunk from :meth:`next` took (seconds per point)."""
        if not batched_ok:  # vmap cannot run the model: nothing to compare
            self.plan, self.chosen = [], "loop"
            return
        if not self.timed:
            return
        first = used not in self.timings
        self.timings[used] = (
            min(per_point, self.timings.get(used, np.inf)) if self.trial else per_point
        )
        self.chosen = min(self.timings, key=self.timings.get)
        loop, batched = self.timings.get("loop"), self.timings.get("batched")
        if (
            first and used == "batched" and not self.plan and self.k > self.TRIAL_POINTS
            and loop is not None and loop < batched <= self.CLOSE * loop
        ):
            self.plan = [("batched", self.k, True)]


def fill_landscape(
    ds: xr.Dataset,
    chunks: Iterable[Chunk],
) -> Iterator[Chunk]:
    """Write each chunk into ``ds`` as it arrives and pass it on: the one loop that turns a
    stream of chunks into a growing result, for every caller (one-call functions, the
    widgets, stored and distributed runs)."""
    for chunk in chunks:
        fill_chunk(ds, chunk.indices, chunk.values, chunk.final)
        yield chunk


def new_landscape(evaluator: PointEvaluator, grid: Grid, attrs: dict | None = None) -> xr.Dataset:
    """An empty result for ``evaluator``'s metrics on ``grid``, with the objective's attributes."""
    return empty_landscape(grid, evaluator.metric_names, {**evaluator.objective.attrs(), **(attrs or {})})
