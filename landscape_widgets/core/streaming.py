"""Stream a grid's values chunk by chunk, coarse to fine, cancellable from another thread."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .evaluation import STRATEGIES, HasValues, PointEvaluator, Strategy
from .grids import Grid, coarse_to_fine_order, point_levels

if TYPE_CHECKING:  # xarray (about 0.2-0.9 s to import) only where a Dataset is made
    import xarray as xr


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


def level_ends(grid: Grid, todo: np.ndarray) -> np.ndarray:
    """Positions in ``todo`` (coarse-to-fine order) where each level's points end, the
    last ``len(todo)``: a chunk never runs past one, so a level's picture is complete as
    soon as its own points are."""
    levels = point_levels(grid.shape, todo)
    return np.append(np.flatnonzero(np.diff(levels)) + 1, len(todo))


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
        ``auto`` starts with a few loop points; where the rest of the work is large
        enough for a trial of the batched strategy to pay (see :class:`_AutoTrials`), it
        times a batched chunk or two, then continues with the faster one. Trial results
        are kept, so no point is computed twice.
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
    k = evaluator.chunk_points(chunk_size)
    todo = point_order(grid, order, skip)
    key = evaluator.speed_key()
    trials = (
        _AutoTrials(k, len(todo), evaluator.device.type, evaluator.batched_setup_seconds, _SPEEDS.get(key),
                    _WORK.get(key, 0.0))
        if strategy == "auto" else None
    )
    best: dict[str, float] = {}  # this run's best seconds per point of each strategy
    ends = level_ends(grid, todo) if order == "coarse_to_fine" else np.array([len(todo)])
    start = 0
    while start < len(todo):
        if cancel is not None and cancel.is_set():
            return
        most = int(ends[np.searchsorted(ends, start, side="right")]) - start  # up to the level's end
        use, size = trials.next(most) if trials is not None else (strategy, min(k, most))
        idx = todo[start : start + size]
        values, per_point = evaluator.timed(grid.coords(idx), use)
        timed = trials is None or trials.timed
        if evaluator.batched_failed:
            use = "loop"
            _SPEEDS.setdefault(key, {})["batched"] = np.inf
        if trials is not None:
            trials.record(use, per_point, batched_ok=not evaluator.batched_failed)
        _WORK[key] = _WORK.get(key, 0.0) + per_point * len(idx)
        if timed and len(idx) >= min(k, _AutoTrials.TRIAL_POINTS):
            best[use] = min(per_point, best.get(use, np.inf))
            _SPEEDS.setdefault(key, {})[use] = best[use]  # replaces what earlier runs measured
        start += len(idx)
        yield Chunk(idx, values.values, use)


#: Seconds per point of each strategy measured by the runs so far in this process (the
#: latest run's best chunk, ``inf`` where vmap failed), per :meth:`PointEvaluator.speed_key`:
#: a later ``auto`` run of the same kind that knows both starts with the faster one and
#: runs no trials.
_SPEEDS: dict[tuple, dict[str, float]] = {}
#: Seconds of work done so far in this process per kind of evaluation: the trial budget
#: of a small run includes it, so repeated small runs of one kind try batched once.
_WORK: dict[tuple, float] = {}


class _AutoTrials:
    """``auto``: the loop first, a batched trial only where it can pay, then the faster.

    1. The first chunk (:attr:`TRIAL_POINTS` points) runs the loop, which has no set-up.
       Its time per point ``t`` (one-off costs included, so an upper bound) estimates the
       rest of the work, ``W = points left x t``.
    2. Batched is tried only where the trial can pay for itself (``W`` also counts the
       work earlier runs of the same kind did in this process, ``done_before``, so that
       repeated small runs try it once and remember the result). Its cost is bounded by
       its set-up ``S`` (vmap's first call in the process, sympy's import: ``setup()``)
       plus its points at up to :attr:`WORST_CPU_RATIO` times the loop's time:
       ``C = S + (WORST_CPU_RATIO - 1) (WARMUP_POINTS + TRIAL_POINTS) t``.

       - On the CPU, where a compute-bound forward makes batched 0.6-0.8x the loop,
         only when ``C <= LOSS_FRACTION x W``: a lost trial then costs at most a few
         percent. Small grids (81 points) and runs whose set-up would not be paid back
         (a fresh process) never try it.
       - On other devices (a GPU, where batched usually wins by far) when
         ``S <= W / 2``.
    3. The trial: a :attr:`WARMUP_POINTS` batched chunk (not timed: it pays the
       set-up), :attr:`TRIAL_POINTS` batched points timed, the same number of loop
       points timed again (without the first chunk's one-off costs); the best time of
       each strategy counts. When batched is close behind (within :attr:`CLOSE`), one
       full batched chunk (more points per forward) gets the last word.
    4. Afterwards the running strategy's record is its best time over its last
       :attr:`WINDOW` chunks in a row. When it falls behind the other strategy's
       record, which is older and may date from a quieter spell of a shared machine,
       auto does not switch at once: it re-checks, timing one chunk of each back to back,
       and keeps the faster. A re-check that confirms the running strategy doubles the
       chunks before the next one may start (at least :attr:`WINDOW`), so a burst of
       load that slows both strategies alike costs a few chunks at most, while a lasting
       change of their relative speed is followed.

    Where earlier runs in this process measured both strategies on the same kind of
    evaluation (``known``, from :data:`_SPEEDS`), there are no trials: the faster one
    runs from the first chunk, and step 4 applies with those times as the records.

    Every chunk is real work: its values are kept, and :func:`iter_chunks` gives each
    point to exactly one chunk.
    """

    TRIAL_POINTS = 8
    WARMUP_POINTS = 2
    #: batched per-point time up to this multiple of the loop's earns a full-chunk trial
    CLOSE = 1.2
    #: On the CPU, the most of the estimated work a batched trial may cost.
    LOSS_FRACTION = 0.03
    #: Batched time per point assumed, at worst, in the trial's cost, as a multiple of the loop's.
    WORST_CPU_RATIO = 2.0
    #: Chunks in a row whose best time is the running strategy's record.
    WINDOW = 3

    def __init__(self, k: int, n_points: int | None = None, device_type: str = "cpu",
                 setup=0.0, known: dict[str, float] | None = None, done_before: float = 0.0) -> None:
        self.k = k
        self.left = n_points  # None: unknown, as many as it takes
        self.device_type = device_type
        self._setup = setup
        self.done_before = done_before
        small = min(k, self.TRIAL_POINTS)
        self.plan: list[tuple[str, int, bool]] = [("loop", small, True)]
        self.timings: dict[str, float] = {}
        self.chosen = "loop"
        self.timed = True
        self.trial = True
        self.tried_batched: bool | None = None  # None: not decided yet
        self._full_trial = False
        self._run: list[float] = []  # times of the running strategy's chunks in a row
        self._running: str | None = None
        self._recheck: list[tuple[str, int]] = []  # a re-check's two chunks, still to run
        self._pair: dict[str, float] | None = None  # a re-check's times so far
        self._patience = self._wait = self.WINDOW  # chunks before a re-check may start
        if known and {"loop", "batched"} <= set(known):  # measured before in this process
            self.timings = {s: known[s] for s in ("loop", "batched")}
            self.chosen = min(self.timings, key=self.timings.get)
            self.plan, self.tried_batched = [], True

    def setup(self) -> float:
        """Estimated one-off seconds of the first batched chunk."""
        return float(self._setup() if callable(self._setup) else self._setup)

    def next(self, most: int | None = None) -> tuple[str, int]:
        """Strategy and number of points of the next chunk (at most ``most``)."""
        self.trial = not self._recheck and bool(self.plan)
        if self._recheck:
            (use, size), self.timed = self._recheck.pop(0), True
        elif not self.plan:
            self.timed = True
            use, size = self.chosen, self.k
        else:
            use, size, self.timed = self.plan.pop(0)
        if most is not None:
            size = max(1, min(size, most))
        if self.left is not None:
            size = max(1, min(size, self.left))
            self.left -= size
        return use, size

    def worth_a_batched_trial(self, loop_per_point: float) -> bool:
        """Whether a batched trial can pay, after the first loop chunk (see the class text)."""
        left = self.left if self.left is not None else np.inf
        trial_points = self.WARMUP_POINTS + min(self.k, self.TRIAL_POINTS)
        if left <= trial_points:
            return False
        work = left * loop_per_point + self.done_before
        setup = self.setup()
        if self.device_type == "cpu":
            cost = setup + (self.WORST_CPU_RATIO - 1) * trial_points * loop_per_point
            return cost <= self.LOSS_FRACTION * work
        return setup <= work / 2

    def record(self, used: str, per_point: float, batched_ok: bool = True) -> None:
        """Note how long the chunk from :meth:`next` took (seconds per point)."""
        if not batched_ok:  # vmap cannot run the model: nothing to compare
            self.plan, self.chosen, self.tried_batched = [], "loop", False
            return
        if self.tried_batched is None and used == "loop":
            self.tried_batched = self.worth_a_batched_trial(per_point)
            if self.tried_batched:
                small = min(self.k, self.TRIAL_POINTS)
                self.plan = [("batched", min(self.k, self.WARMUP_POINTS), False),
                             ("batched", small, True), ("loop", small, True)]
        if not self.timed:
            return
        if self.trial:
            self.timings[used] = min(per_point, self.timings.get(used, np.inf))
            self.chosen = min(self.timings, key=self.timings.get)
            loop, batched = self.timings.get("loop"), self.timings.get("batched")
            if (
                not self.plan and self.tried_batched and not self._full_trial
                and self.k > self.TRIAL_POINTS and loop is not None and batched is not None
                and loop < batched <= self.CLOSE * loop
            ):
                self._full_trial = True
                self.plan = [("batched", self.k, True)]
            return
        if self._pair is not None:  # a re-check: both strategies timed back to back
            self._pair[used] = per_point
            if len(self._pair) < 2:
                return
            before, self.timings, self._pair = self._running, dict(self._pair), None
            self.chosen = min(self.timings, key=self.timings.get)
            # confirmed: wait twice as long before the next re-check; switched: start over
            self._patience = 2 * self._patience if self.chosen == before else self.WINDOW
            self._wait = self._patience
            self._running, self._run = self.chosen, [self.timings[self.chosen]]
            return
        if used != self._running:  # the end of the trials: their best time counts
            after_trials = self._running is None
            self._running = used
            self._run = [self.timings[used]] if after_trials and used in self.timings else []
        self._run = (self._run + [per_point])[-self.WINDOW:]
        self.timings[used] = min(self._run)
        self._wait -= 1
        other = "batched" if used == "loop" else "loop"
        if (
            self._wait <= 0 and np.isfinite(self.timings.get(other, np.inf))
            and self.timings[used] > self.timings[other]
        ):  # slower than the other's (older) record: time both back to back before switching
            self._pair = {}
            self._recheck = [(other, self.k), (used, self.k)]


def fill_landscape(
    ds: xr.Dataset,
    chunks: Iterable[Chunk],
) -> Iterator[Chunk]:
    """Write each chunk into ``ds`` as it arrives and pass it on: the one loop that turns a
    stream of chunks into a growing result, for every caller (one-call functions, the
    widgets, stored and distributed runs)."""
    from .results import fill_chunk

    for chunk in chunks:
        fill_chunk(ds, chunk.indices, chunk.values, chunk.final)
        yield chunk


def new_landscape(evaluator: PointEvaluator, grid: Grid, attrs: dict | None = None) -> xr.Dataset:
    """An empty result for ``evaluator``'s metrics on ``grid``, with the objective's attributes."""
    from .results import empty_landscape

    return empty_landscape(grid, evaluator.metric_names, {**evaluator.objective.attrs(), **(attrs or {})})
