"""Evaluate a landscape on Dask workers (``dask.distributed``), streaming chunks back.

The grid's points, in coarse-to-fine order, are split into blocks of flat indices.
Each block is one Dask task; the model, loss, data, directions and centre point travel
once per worker (as one task result the blocks depend on, so Dask can recompute it if
a worker dies), and each worker keeps one :class:`~landscape_widgets.core.evaluation.PointEvaluator`
on its own device (``cuda:{i}`` on a GPU worker, else the CPU). Finished blocks come
back as :class:`~landscape_widgets.core.streaming.Chunk` objects in completion order
(:func:`distributed.as_completed`), so the explorer draws them as they arrive.
Tasks of a killed worker are rerun by Dask on the remaining or restarted workers.

Use :func:`compute_landscape_dask` for a whole result, :func:`dask_backend` to plug
the workers into :func:`~landscape_widgets.core.landscape.compute_landscape` or
:func:`~landscape_widgets.runs.store.compute_stored`, and :func:`iter_chunks_dask` for the
raw stream.
"""

from __future__ import annotations

import copy
import threading
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

import numpy as np
import torch
import xarray as xr
from torch.utils._pytree import tree_map

from ..core.evaluation import STRATEGIES, PointEvaluator, Strategy
from ..core.grids import Grid
from ..core.landscape import compute_landscape
from ..core.objective import Objective
from ..core.streaming import Chunk, point_order

#: Evaluators kept per worker process, by run token (most recent last).
_EVALUATORS: OrderedDict[str, PointEvaluator] = OrderedDict()
#: Per run token: seconds per point of each strategy measured on this worker.
_TIMINGS: dict[str, dict[str, list[float]]] = {}
_KEEP = 2


@contextmanager
def dask_client(client=None, scheduler_address: str | None = None, n_workers: int = 2,
                threads_per_worker: int = 1):
    """The given client, one connected to ``scheduler_address``, or a new ``LocalCluster``.

    A cluster or connection opened here is closed on exit; a given client is left open.
    """
    if client is not None:
        yield client
        return
    from distributed import Client, LocalCluster

    if scheduler_address is not None:
        with Client(scheduler_address) as own:
            yield own
        return
    with LocalCluster(
        n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
        dashboard_address=None,
    ) as cluster, Client(cluster) as own:
        yield own


def worker_device() -> str:
    """``cuda:{i}`` for the i-th worker when it sees GPUs (round robin), else ``cpu``."""
    if not torch.cuda.is_available():
        return "cpu"
    from distributed import get_worker

    try:
        name = get_worker().name
    except ValueError:  # not on a worker
        name = 0
    index = name if isinstance(name, int) else zlib.crc32(str(name).encode())
    return f"cuda:{index % torch.cuda.device_count()}"


def _payload(evaluator: PointEvaluator) -> bytes:
    """What a worker needs to rebuild ``evaluator``'s objective on the CPU, pickled.

    The data goes as the list of batches the client read (streamed data is read once
    here). Pickled with cloudpickle (not by Dask's torch serializer, which drops the
    modules' hook dictionaries), so lambdas and local loss functions travel too.
    """
    import cloudpickle

    ob = evaluator.objective
    with ob.lock:
        ob.set_point(evaluator.theta)
        model = copy.deepcopy(ob.model).cpu()
    batches = [tree_map(lambda t: t.cpu() if isinstance(t, torch.Tensor) else t, b) for b in ob.data]
    options = {"params": ob.layout, "forward": ob.forward, "pass_batch": ob.pass_batch, "metrics": ob.metrics,
               "task": "classification" if ob.classification else "regression"}
    return cloudpickle.dumps((model, ob.loss_fn, batches, options, evaluator.directions.cpu(),
                              evaluator.theta.cpu()))


def _identity(x):
    return x


def _worker_evaluator(token: str, payload: bytes, device: str | None) -> PointEvaluator:
    evaluator = _EVALUATORS.get(token)
    if evaluator is None:
        import cloudpickle

        model, loss_fn, batches, options, directions, theta = cloudpickle.loads(payload)
        objective = Objective(model, loss_fn, batches, device=device or worker_device(), **options)
        evaluator = PointEvaluator(objective, directions=list(directions), theta=theta)
        _EVALUATORS[token] = evaluator
        while len(_EVALUATORS) > _KEEP:
            _TIMINGS.pop(_EVALUATORS.popitem(last=False)[0], None)
    _EVALUATORS.move_to_end(token)
    return evaluator


def _evaluate_block(
    token: str, payload: bytes, indices: np.ndarray, grid: Grid, strategy: str, device: str | None
) -> list[Chunk]:
    """Worker side: one block of points. ``auto`` splits a worker's first blocks between
    the two strategies (two timings each), then keeps the faster one."""
    evaluator = _worker_evaluator(token, payload, device)
    timings = _TIMINGS.setdefault(token, {"loop": [], "batched": []})
    if strategy != "auto":
        parts = [(indices, strategy)]
    elif evaluator.batched_failed or min(len(t) for t in timings.values()) >= 2:
        best = "loop" if evaluator.batched_failed else min(timings, key=lambda s: min(timings[s]))
        parts = [(indices, best)]
    else:
        half = (len(indices) + 1) // 2
        parts = [(indices[:half], "loop"), (indices[half:], "batched")]
    chunks = []
    for idx, use in parts:
        if len(idx):
            values, per_point = evaluator.timed(grid.coords(idx), use)
            use = "loop" if evaluator.batched_failed else use
            timings[use].append(per_point)
            chunks.append(Chunk(idx, values.values, use))
    return chunks


def iter_chunks_dask(
    evaluator: PointEvaluator,
    grid: Grid,
    strategy: Strategy = "auto",
    chunk_size: int | None = None,
    order: str = "coarse_to_fine",
    skip=None,
    cancel: threading.Event | None = None,
    *,
    client=None,
    scheduler_address: str | None = None,
    n_workers: int = 2,
    block_size: int | None = None,
    device: str | None = None,
    retries: int = 3,
) -> Iterator[Chunk]:
    """Like :func:`~landscape_widgets.core.streaming.iter_chunks`, evaluated on Dask workers.

    Parameters
    ----------
    evaluator : PointEvaluator
        Prepared on the client; its objective (model, loss, forward, metrics, moved
        parameters, data), directions and theta are sent to the workers (so they must pickle; lambdas are fine, Dask uses cloudpickle).
    grid, strategy, chunk_size, order, skip, cancel
        As for :func:`~landscape_widgets.core.streaming.iter_chunks`. Blocks are submitted
        in ``order`` with decreasing priority, so the coarse picture comes first.
    client : distributed.Client, optional
        Use this client (left open). Otherwise connect to ``scheduler_address``, or
        start a ``LocalCluster`` of ``n_workers`` processes with one thread each
        (closed when the iterator ends).
    block_size : int, optional
        Points per task (default: the evaluator's chunk size).
    device : str, optional
        Device on every worker; default :func:`worker_device` (a GPU per worker when
        there are GPUs).
    retries : int
        Times a failing task is retried. (Tasks of a worker that dies are rerun by
        Dask anyway, up to ``distributed.scheduler.allowed-failures`` deaths.)

    Yields
    ------
    Chunk
        In completion order.
    """
    from distributed import as_completed

    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if grid.ndim != evaluator.n_directions:
        raise ValueError(
            f"the grid has {grid.ndim} axes but there are {evaluator.n_directions} directions"
        )
    if block_size is not None and block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    todo = point_order(grid, order, skip)
    if not len(todo):
        return
    size = block_size or evaluator.chunk_plan(chunk_size)[0]
    blocks = [todo[i : i + size] for i in range(0, len(todo), size)]
    token = uuid.uuid4().hex
    with dask_client(client, scheduler_address, n_workers) as dask:
        shared = dask.submit(_identity, _payload(evaluator), pure=False)
        futures = [
            dask.submit(
                _evaluate_block, token, shared, block, grid, strategy, device,
                retries=retries, priority=len(blocks) - i, pure=False,
            )
            for i, block in enumerate(blocks)
        ]
        try:
            for _future, chunks in as_completed(futures, with_results=True):
                yield from chunks
                if cancel is not None and cancel.is_set():
                    return
        finally:
            dask.cancel([*futures, shared])


def dask_backend(
    client=None,
    *,
    scheduler_address: str | None = None,
    n_workers: int = 2,
    block_size: int | None = None,
    device: str | None = None,
    retries: int = 3,
) -> Callable[..., Iterator[Chunk]]:
    """A ``backend`` for :func:`~landscape_widgets.core.landscape.compute_landscape` (and
    :func:`~landscape_widgets.runs.store.compute_stored`) that evaluates on Dask workers.

    See :func:`iter_chunks_dask` for the arguments.
    """
    return partial(
        iter_chunks_dask, client=client, scheduler_address=scheduler_address,
        n_workers=n_workers, block_size=block_size, device=device, retries=retries,
    )


def compute_landscape_dask(
    model: torch.nn.Module,
    loss_fn,
    data,
    grid: Grid | None = None,
    directions=None,
    *,
    client=None,
    scheduler_address: str | None = None,
    n_workers: int = 2,
    block_size: int | None = None,
    worker_device: str | None = None,
    retries: int = 3,
    **kwargs,
) -> xr.Dataset:
    """:func:`~landscape_widgets.core.landscape.compute_landscape` on Dask workers.

    ``kwargs`` go to ``compute_landscape`` (``seed``, ``normalization``, ``strategy``,
    ``resume``, ``on_chunk``, ``progress``...); its ``device`` is where the client
    prepares the run (default CPU), ``worker_device`` where the workers evaluate.
    """
    kwargs.setdefault("device", "cpu")
    backend = dask_backend(
        client, scheduler_address=scheduler_address, n_workers=n_workers,
        block_size=block_size, device=worker_device, retries=retries,
    )
    ds = compute_landscape(model, loss_fn, data, grid, directions, backend=backend, **kwargs)
    ds.attrs.update(backend="dask", device=worker_device or "per worker")
    return ds
