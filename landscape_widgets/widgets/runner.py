"""Run a stream of results in a worker thread and draw it, throttled, never stale.

The one piece every live widget shares::

    runner = Runner(max_rate=10.0, debounce=0.3)

    def work(cancel):                     # runs in a worker thread
        for snapshot in landscape_stream(evaluator, grid, cancel=cancel):
            yield snapshot                # a growing, partially filled result

    def draw(snapshot):                   # called with the latest snapshot only
        view.update(snapshot.ds)

    runner.request(work, draw)            # debounced; cancels the run in flight
    runner.wait()                         # block until it has finished (tests)

Rules it guarantees:

* every :meth:`Runner.request` / :meth:`Runner.start` bumps a *generation*; the
  run in flight is told to stop (its ``cancel`` event is set) and nothing it yields
  afterwards is drawn, so a stale picture never lands over a new one;
* ``draw`` is called at most ``max_rate`` times a second, and only as often as keeps
  drawing to a tenth of the wall time (:class:`~landscape_widgets.widgets.pacing.Pace`,
  which can also wait for the page to catch up), always with the newest snapshot, and
  once more with the final one;
* ``draw`` runs in the worker thread (ipywidgets may send comm messages from any
  thread) under a lock that ``start`` also takes, so a draw of an old generation
  can never interleave with, or follow, the start of a new one.
"""

from __future__ import annotations

import atexit
import queue
import threading
import time
import weakref
from pathlib import Path
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from ..core.evaluation import PointEvaluator
from ..core.grids import Grid
from ..core.sampled import FRACTIONS, refining_chunks
from ..core.streaming import fill_landscape, new_landscape
from .pacing import Pace

Work = Callable[[threading.Event], Iterable[Any]]
Draw = Callable[[Any], None]


@dataclass(frozen=True)
class Snapshot:
    """A partially computed landscape, as handed to ``draw``.

    Attributes
    ----------
    ds : xr.Dataset
        The result so far (``done`` marks the computed points). The same object grows
        during a run: copy it if you keep it.
    n_done, total : int
        Points computed so far, and in the whole grid.
    elapsed : float
        Seconds since the run started.
    final : bool
        True for the last snapshot of a run that was not cancelled.
    device : str
        Where the points are computed.
    stored : bool
        The result came whole from the run store (nothing was computed).
    """

    ds: xr.Dataset
    n_done: int
    total: int
    elapsed: float
    final: bool
    device: str
    stored: bool = False

    @property
    def rate(self) -> float:
        """Points per second so far."""
        return self.n_done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float:
        """Estimated seconds left (infinite before the first point)."""
        rate = self.rate
        return (self.total - self.n_done) / rate if rate > 0 else float("inf")


def landscape_stream(
    evaluator: PointEvaluator,
    grid: Grid,
    cancel: threading.Event | None = None,
    chunk_size: int | None = None,
    strategy: str = "auto",
    attrs: dict | None = None,
    fractions: Sequence[float] = FRACTIONS,
    store: bool | str | Path = False,
    resume: xr.Dataset | None = None,
) -> Iterator[Snapshot]:
    """Evaluate ``grid`` coarse to fine, yielding a :class:`Snapshot` after each chunk.

    The first snapshot (nothing computed) is yielded at once, so views can show the
    empty grid and the progress bar straight away. The coarse levels are first
    estimated on data samples (:func:`~landscape_widgets.core.sampled.refining_chunks`);
    the snapshots' ``done`` counts exact points only.

    Parameters
    ----------
    evaluator : PointEvaluator
        Objective and directions (one per grid axis).
    grid : Grid
        The points to compute.
    cancel : threading.Event, optional
        Stops the stream after the chunk in flight.
    chunk_size : int, optional
        Points per chunk: smaller chunks give more frequent, smaller updates.
    strategy : {"auto", "loop", "batched"}
        See :func:`landscape_widgets.core.streaming.iter_chunks`.
    attrs : dict, optional
        Attributes stored on the dataset.
    fractions : sequence of float
        Data fractions of the estimated levels (``()``: exact values only).
    store : bool or path
        Keep complete results in the run store (``True``: the default
        :func:`~landscape_widgets.runs.store.store_root`, or this directory), named by
        :func:`~landscape_widgets.runs.store.evaluation_key`: a grid already there is
        shown at once, as one final snapshot, without any evaluation. An evaluator whose
        loss cannot be hashed faithfully (a lambda) is computed and not stored.
    resume : xarray.Dataset, optional
        A partial result of this very computation (the same evaluator and grid, e.g. a
        stopped run's): the stream goes on from it, in place, computing only the points
        it has not marked ``done``.
    """
    start = time.perf_counter()
    device = str(evaluator.device)
    key = _store_key(evaluator, grid) if store is not False else None
    root = None if store is True else store
    if key is not None:
        from ..runs.store import load_cached

        cached = load_cached(key, root)
        if cached is not None:
            cached.attrs.update(attrs or {})
            yield Snapshot(cached, grid.size, grid.size, time.perf_counter() - start, True, device, stored=True)
            return
    if resume is not None and resume["done"].shape != grid.shape:
        raise ValueError(f"resume has shape {resume['done'].shape}, the grid {grid.shape}: "
                         "resume only a partial result of this grid")
    ds = new_landscape(evaluator, grid, attrs) if resume is None else resume
    skip = np.flatnonzero(ds["done"].values)
    n_done = len(skip)
    yield Snapshot(ds, n_done, grid.size, 0.0, n_done == grid.size, device)
    chunks = refining_chunks(evaluator, grid, strategy, chunk_size=chunk_size, cancel=cancel, fractions=fractions,
                             skip=skip)
    for chunk in fill_landscape(ds, chunks):
        n_done += len(chunk.indices) if chunk.final else 0
        final = n_done == grid.size
        if final and key is not None:
            from ..runs.store import save_complete

            save_complete(key, ds, root)
        yield Snapshot(ds, n_done, grid.size, time.perf_counter() - start, final, device)


def _store_key(evaluator: PointEvaluator, grid: Grid) -> str | None:
    from ..runs.store import UncacheableError, evaluation_key

    try:
        return evaluation_key(evaluator, grid)
    except UncacheableError:
        return None


#: Seconds the interpreter waits at exit for cancelled runs to stop (their chunk in flight).
EXIT_WAIT = 30.0

_RUNNERS: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _stop_at_exit() -> None:
    """Cancel every run and wait for it: a worker thread still inside torch while the
    interpreter shuts down aborts the process."""
    runners = list(_RUNNERS)
    for runner in runners:
        runner.stop()
    deadline = time.monotonic() + EXIT_WAIT
    for runner in runners:
        runner.wait(max(0.0, deadline - time.monotonic()))


class Runner:
    """Runs one stream at a time in a daemon thread; see the module docstring. When the
    interpreter exits, every run is cancelled and waited for (at most :data:`EXIT_WAIT`
    seconds).

    Parameters
    ----------
    max_rate : float
        Most ``draw`` calls per second (the final snapshot is always drawn).
    debounce : float
        Seconds :meth:`request` waits for further requests before starting.
    on_error : callable, optional
        Called as ``on_error(exception)`` (in the worker thread) when ``work`` or
        ``draw`` raises; by default the exception is kept in :attr:`error` only.
    pace : Pace, optional
        When partial snapshots may be drawn; by default ``Pace(max_rate)`` (the kernel's
        drawing time only). Give ``Pace(max_rate, page=True)`` and put its ``widget`` in
        the layout to wait for the page too.
    """

    def __init__(
        self,
        max_rate: float = 10.0,
        debounce: float = 0.3,
        on_error: Callable[[BaseException], None] | None = None,
        pace: Pace | None = None,
    ) -> None:
        if max_rate <= 0:
            raise ValueError(f"max_rate must be positive, got {max_rate}")
        self.pace = pace or Pace(max_rate)
        if debounce < 0:
            raise ValueError(f"debounce must be >= 0 seconds, got {debounce}")
        self.max_rate = float(max_rate)
        self.debounce = float(debounce)
        self.on_error = on_error
        self.generation = 0
        #: Number of ``draw`` calls made (all generations), for tests and diagnostics.
        self.n_draws = 0
        #: The last exception raised by ``work`` or ``draw``, if any.
        self.error: BaseException | None = None
        #: Held while drawing and while starting/stopping: take it to draw from another thread.
        self.lock = threading.RLock()
        self._cancel = threading.Event()
        self._timer: threading.Timer | None = None
        # one worker thread for every run, started with the first: torch's CPU thread
        # pool stays with it (a new thread per run pays for a new pool, and the old
        # pool's idle threads compete with it for the cores)
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._queued = 0  # runs started and not finished
        self._idle = threading.Condition(self.lock)
        _RUNNERS.add(self)

    @property
    def running(self) -> bool:
        """A run is in flight or waiting for its debounce delay."""
        timer = self._timer
        return self._queued > 0 or (timer is not None and timer.is_alive())

    @property
    def cancelled(self) -> bool:
        """The current run has been told to stop (read without the lock, e.g. by a draw)."""
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Tell the run in flight to stop, at once: unlike :meth:`stop` it does not wait
        for the lock, so for a draw in flight to end."""
        self._cancel.set()

    def stop(self) -> None:
        """Cancel the run in flight and any pending request; nothing more is drawn."""
        self.cancel()
        with self.lock:
            self.generation += 1
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def start(self, work: Work, draw: Draw, done: Callable[[bool], None] | None = None) -> int:
        """Cancel the current run and start ``work`` now; returns the new generation.

        Parameters
        ----------
        work : callable
            ``work(cancel)`` returning an iterable of snapshots; it should stop soon after
            ``cancel`` (a :class:`threading.Event`) is set.
        draw : callable
            ``draw(snapshot)``, called (throttled) with the newest snapshot.
        done : callable, optional
            ``done(completed)`` after the run, ``completed`` False when it was cancelled
            or failed; not called for a stale generation.
        """
        with self.lock:
            self.stop()
            gen = self.generation
            cancel = threading.Event()
            self._cancel = cancel
            self._queued += 1
            self._jobs.put((gen, cancel, work, draw, done))
            if self._worker is None:
                self._worker = threading.Thread(target=self._serve, daemon=True, name="landscape-runner")
                self._worker.start()
        return gen

    def _serve(self) -> None:
        """The worker thread: the runs one after another (a cancelled one first ends its
        chunk in flight; one superseded before it began does not start)."""
        while True:
            job = self._jobs.get()
            try:
                self._run(*job)
            finally:
                with self.lock:
                    self._queued -= 1
                    self._idle.notify_all()

    def request(self, work: Work, draw: Draw, done: Callable[[bool], None] | None = None) -> None:
        """Like :meth:`start`, after :attr:`debounce` seconds without another request.

        The run in flight is cancelled at once (so it stops drawing immediately).
        """
        with self.lock:
            self.stop()
            if self.debounce == 0:
                self.start(work, draw, done)
                return
            timer = threading.Timer(self.debounce, self.start, args=(work, draw, done))
            timer.daemon = True
            self._timer = timer
            timer.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no run is pending or in flight; False if ``timeout`` expired."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self.lock:
                timer = self._timer
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if timer is not None and timer.is_alive():
                timer.join(left)
            else:
                with self.lock:
                    if self._queued == 0:
                        return True
                    self._idle.wait(left)
            if deadline is not None and time.monotonic() >= deadline:
                return not self.running

    def _draw_if_current(self, gen: int, draw: Draw, snapshot: Any) -> bool:
        with self.lock:
            if gen != self.generation:
                return False
            start = time.monotonic()
            draw(snapshot)
            self.pace.drawn(start, time.monotonic())
            self.n_draws += 1
            return True

    def _run(self, gen: int, cancel: threading.Event, work: Work, draw: Draw, done) -> None:
        pending: Any = None
        have_pending = False
        completed = False
        if cancel.is_set():
            return  # superseded before it began
        stream = iter(work(cancel))
        try:
            for snapshot in stream:
                if cancel.is_set() or gen != self.generation:
                    return
                if self.pace.ready():
                    if not self._draw_if_current(gen, draw, snapshot):
                        return
                    have_pending = False
                else:
                    pending, have_pending = snapshot, True
            if have_pending and not self._draw_if_current(gen, draw, pending):
                return
            completed = not cancel.is_set()
        except Exception as exc:  # noqa: BLE001 - reported to the widget, not lost in a thread
            self.error = exc
            if self.on_error is not None and gen == self.generation:
                self.on_error(exc)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:  # a generator's own clean-up runs now, before ``done``
                close()
            if done is not None:
                with self.lock:
                    if gen == self.generation:
                        done(completed)
