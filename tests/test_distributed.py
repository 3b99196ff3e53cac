"""Dask backend on a LocalCluster of 2 worker processes: same numbers as the local
backend, streamed as chunks, and a worker killed mid-run is recovered from."""

import os
import time
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from landscape_widgets import PointEvaluator, compute_landscape, line, plane, random_directions
from landscape_widgets.builtin import zoo
from landscape_widgets.runs.distributed import compute_landscape_dask, iter_chunks_dask

distributed = pytest.importorskip("distributed")

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def client(cluster):
    with distributed.Client(cluster) as client:
        client.wait_for_workers(2, timeout=120)
        yield client


@pytest.fixture(scope="module")
def problem():
    torch.manual_seed(0)
    model = zoo.mlp(width=16)
    data = tuple(t[:200] for t in zoo.digits().test)
    return model, data


def slow_cross_entropy(outputs, targets, delay):
    """Cross-entropy that takes at least ``delay`` seconds (keeps tasks in flight)."""
    time.sleep(delay)
    return F.cross_entropy(outputs, targets)


@pytest.mark.parametrize("strategy", ["loop", "auto"])
def test_dask_equals_local_backend(client, problem, strategy):
    model, data = problem
    grid = plane(num=9)
    local = compute_landscape(model, F.cross_entropy, data, grid, strategy="loop")
    seen: list[int] = []
    remote = compute_landscape_dask(
        model, F.cross_entropy, data, grid, client=client, strategy=strategy, block_size=7,
        on_chunk=lambda ds, chunk: seen.extend(chunk.indices.tolist()),
    )
    assert sorted(seen) == list(range(grid.size))  # streamed, every point exactly once
    assert remote.attrs["complete"] == 1 and remote.attrs["backend"] == "dask"
    np.testing.assert_allclose(remote["loss"].values, local["loss"].values, rtol=1e-5)
    np.testing.assert_allclose(remote["accuracy"].values, local["accuracy"].values, atol=1e-6)


def test_scheduler_address_and_resume_compute_only_missing_points(cluster, problem):
    model, data = problem
    grid = plane(num=7)
    local = compute_landscape(model, F.cross_entropy, data, grid, strategy="loop")
    partial_ds = local.copy(deep=True)
    partial_ds["done"].values.reshape(-1)[20:] = False
    partial_ds["loss"].values.reshape(-1)[20:] = np.nan
    seen: list[int] = []
    remote = compute_landscape_dask(
        model, F.cross_entropy, data, grid, scheduler_address=cluster.scheduler_address,
        strategy="loop", block_size=5, resume=partial_ds,
        on_chunk=lambda ds, chunk: seen.extend(chunk.indices.tolist()),
    )
    assert sorted(seen) == list(range(20, grid.size))
    np.testing.assert_allclose(remote["loss"].values, local["loss"].values, rtol=1e-5)


def test_bad_grid_is_refused(problem):
    model, data = problem
    directions = random_directions(model, 2)
    evaluator = PointEvaluator(model, F.cross_entropy, data, directions)
    with pytest.raises(ValueError, match="2 directions"):
        next(iter_chunks_dask(evaluator, line(num=3)))


def test_worker_killed_mid_run_is_recovered(client, problem):
    model, data = problem
    grid = plane(num=9)
    loss_fn = partial(slow_cross_entropy, delay=0.02)
    directions = random_directions(model, 2)
    evaluator = PointEvaluator(model, loss_fn, data, directions)
    before = set(client.scheduler_info()["workers"])
    stream = iter_chunks_dask(evaluator, grid, "loop", client=client, block_size=3, retries=2)
    chunks = [next(stream)]
    victim = sorted(before)[0]
    try:
        client.run(os._exit, 1, workers=[victim])
    except Exception:  # the worker dies before it can answer
        pass
    chunks += list(stream)
    after = set(client.scheduler_info()["workers"])
    assert victim not in after or len(after) < len(before)  # a worker really died

    indices = np.concatenate([c.indices for c in chunks])
    assert sorted(set(indices.tolist())) == list(range(grid.size))
    loss = np.full(grid.size, np.nan)
    for c in chunks:
        loss[c.indices] = c.loss
    local = compute_landscape(model, F.cross_entropy, data, grid, directions, strategy="loop")
    np.testing.assert_allclose(loss.reshape(grid.shape), local["loss"].values, rtol=1e-5)
