"""Resumable landscape runs on disk, and a cache of finished results.

A run is named by a hash of everything that determines its numbers (:func:`spec_hash`):
the model's parameters and buffers, the directions (seed, normalization, bias/BN
handling, or the given vectors), the centre point, the grid, the data and the loss.
:func:`compute_stored` writes every chunk of points to a zarr store under that name as
soon as it finishes (zarr writes each chunk file atomically, and the ``done`` mask is
written after the values), so a killed run loses at most the chunk in flight, and
running the same specification again computes only the missing points.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import xarray as xr
import zarr
from torch import nn

from .data import as_batches
from .grids import Grid, default_grid
from .landscape import compute_landscape
from .results import empty_landscape, load_landscape, save_landscape
from .streaming import Chunk

#: Finished results kept in memory by :func:`load_cached` (most recent last).
MEMORY_CACHE_SIZE = 32
_memory: OrderedDict[str, xr.Dataset] = OrderedDict()


def _hash_tensors(h, tensors) -> None:
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())


def spec_hash(
    model: nn.Module,
    loss_fn: Callable,
    data,
    grid: Grid,
    directions: Sequence[torch.Tensor] | None = None,
    *,
    seed: int = 0,
    normalization: str = "filter",
    bias_bn: str = "ignore",
    theta: torch.Tensor | None = None,
    max_batches: int | None = None,
    max_samples: int | None = None,
) -> str:
    """A short hex name for everything that determines a landscape's values.

    Parameters
    ----------
    model : nn.Module
        Its parameters *and* buffers (e.g. BatchNorm statistics) are hashed.
    loss_fn : callable
        Identified by its module and qualified name.
    data
        ``(X, y)`` or a DataLoader (read once, as the evaluation reads it).
    grid : Grid
    directions : sequence of flat tensors, optional
        Hashed by value when given; otherwise ``seed``, ``normalization`` and
        ``bias_bn`` (which draw them) are.
    theta, max_batches, max_samples
        As for :func:`landscape_widgets.landscape.compute_landscape`.

    Returns
    -------
    str
        24 hex digits.
    """
    h = hashlib.sha256()
    state = model.state_dict()
    h.update(json.dumps(sorted(state)).encode())
    _hash_tensors(h, state.values())
    if directions is None:
        h.update(json.dumps({"seed": seed, "normalization": normalization, "bias_bn": bias_bn}).encode())
    else:
        h.update(b"given")
        _hash_tensors(h, directions)
    if theta is not None:
        h.update(b"theta")
        _hash_tensors(h, [theta])
    h.update(json.dumps(grid.to_dict(), sort_keys=True).encode())
    for x, y in as_batches(data, max_batches=max_batches, max_samples=max_samples).batches:
        _hash_tensors(h, [x, y])
    loss_name = getattr(loss_fn, "__qualname__", None) or type(loss_fn).__qualname__
    h.update(f"{getattr(loss_fn, '__module__', '')}.{loss_name}".encode())
    return h.hexdigest()[:24]


def store_root(root: str | Path | None = None) -> Path:
    """Where run stores live: ``root``, else ``runs/`` in the package cache directory."""
    if root is None:
        from .training import cache_dir

        root = cache_dir() / "runs"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def store_path(key: str, root: str | Path | None = None) -> Path:
    """The zarr store of the run named ``key``."""
    return store_root(root) / f"{key}.zarr"


def create_store(path: str | Path, grid: Grid, accuracy: bool, attrs: dict | None = None) -> Path:
    """Create an empty result store (all points missing) at ``path``.

    It is written to a temporary directory first and renamed into place, so a store
    either exists complete or not at all.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.zarr")
    shutil.rmtree(tmp, ignore_errors=True)
    save_landscape(empty_landscape(grid, accuracy=accuracy, attrs=attrs), tmp)
    tmp.rename(path)
    return path


def write_chunk(path: str | Path, chunk: Chunk) -> None:
    """Write one chunk of values into the store at ``path`` (``done`` last)."""
    group = zarr.open_group(str(path), mode="r+")
    pos = np.unravel_index(np.asarray(chunk.indices, dtype=np.int64), group["loss"].shape)
    group["loss"].vindex[pos] = chunk.loss
    if chunk.accuracy is not None and "accuracy" in group:
        group["accuracy"].vindex[pos] = chunk.accuracy
    group["done"].vindex[pos] = True


def open_partial(path: str | Path, grid: Grid) -> xr.Dataset | None:
    """The stored (possibly partial) result at ``path``, or None if there is none."""
    path = Path(path)
    if not path.exists():
        return None
    ds = load_landscape(path)
    if ds["loss"].shape != grid.shape:
        raise ValueError(f"the store {path} holds a grid of shape {ds['loss'].shape}, not {grid.shape}")
    return ds


def load_cached(key: str, root: str | Path | None = None) -> xr.Dataset | None:
    """A finished result by its :func:`spec_hash`, from memory or disk; None if absent.

    Partial (interrupted) runs are not returned: resume them with :func:`compute_stored`.
    """
    if key in _memory:
        _memory.move_to_end(key)
        return _memory[key]
    path = store_path(key, root)
    if not path.exists():
        return None
    ds = load_landscape(path)
    if not bool(ds["done"].values.all()):
        return None
    ds.attrs.update(complete=1, n_done=int(ds["done"].sum()), spec_hash=key)
    _remember(key, ds)
    return ds


def _remember(key: str, ds: xr.Dataset) -> None:
    _memory[key] = ds
    _memory.move_to_end(key)
    while len(_memory) > MEMORY_CACHE_SIZE:
        _memory.popitem(last=False)


def compute_stored(
    model: nn.Module,
    loss_fn: Callable,
    data,
    grid: Grid | None = None,
    directions: Sequence[torch.Tensor] | None = None,
    *,
    root: str | Path | None = None,
    seed: int = 0,
    normalization: str = "filter",
    bias_bn: str = "ignore",
    theta: torch.Tensor | None = None,
    max_batches: int | None = None,
    max_samples: int | None = None,
    on_chunk: Callable[[xr.Dataset, Chunk], None] | None = None,
    **compute_kwargs,
) -> xr.Dataset:
    """:func:`~landscape_widgets.landscape.compute_landscape`, saved as it goes and resumed.

    The run's store is ``store_path(spec_hash(...), root)``. Points already in the
    store are not computed again; a finished run is returned from :func:`load_cached`
    without any evaluation.

    Parameters
    ----------
    model, loss_fn, data, grid, directions, seed, normalization, bias_bn, theta,
    max_batches, max_samples, on_chunk
        As for :func:`~landscape_widgets.landscape.compute_landscape`.
    root : str or Path, optional
        Directory of the stores (default :func:`store_root`).
    **compute_kwargs
        Passed on (``device``, ``strategy``, ``chunk_size``, ``order``, ``cancel``,
        ``progress``).

    Returns
    -------
    xr.Dataset
        The result, with ``attrs["spec_hash"]`` and ``attrs["store"]``.
    """
    if grid is None:
        grid = default_grid(len(directions) if directions is not None else 2)
    draw = {"seed": seed, "normalization": normalization, "bias_bn": bias_bn}
    limits = {"max_batches": max_batches, "max_samples": max_samples}
    key = spec_hash(model, loss_fn, data, grid, directions, theta=theta, **draw, **limits)
    cached = load_cached(key, root)
    if cached is not None:
        return cached
    path = store_path(key, root)
    partial = open_partial(path, grid)

    def save(ds: xr.Dataset, chunk: Chunk) -> None:
        if not path.exists():
            create_store(path, grid, accuracy="accuracy" in ds, attrs=dict(ds.attrs))
        write_chunk(path, chunk)
        if on_chunk is not None:
            on_chunk(ds, chunk)

    ds = compute_landscape(
        model, loss_fn, data, grid, directions, theta=theta, resume=partial,
        on_chunk=save, **draw, **limits, **compute_kwargs,
    )
    ds.attrs.update(spec_hash=key, store=str(path))
    if ds.attrs.get("complete"):
        _remember(key, ds)
    return ds
