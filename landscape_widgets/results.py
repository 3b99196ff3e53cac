"""Landscape results as labelled ``xarray.Dataset`` objects, saved to netCDF or zarr."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from .grids import Axis, Grid

METRICS: tuple[str, ...] = ("loss", "accuracy")


def empty_landscape(grid: Grid, accuracy: bool = True, attrs: dict | None = None) -> xr.Dataset:
    """A dataset with the grid's coordinates and all values missing (NaN).

    Data variables: ``loss``, ``accuracy`` (when asked for) and ``done`` (bool: the point
    has been computed, so a NaN loss there is a real non-finite loss, not a gap).
    """
    coords = {a.name: a.values for a in grid.axes}
    dims = grid.names
    data = {"loss": (dims, np.full(grid.shape, np.nan))}
    if accuracy:
        data["accuracy"] = (dims, np.full(grid.shape, np.nan))
    data["done"] = (dims, np.zeros(grid.shape, dtype=bool))
    ds = xr.Dataset(data, coords=coords, attrs=_clean_attrs(attrs or {}))
    ds["loss"].attrs.update(long_name="loss", units="mean loss over the data")
    if accuracy:
        ds["accuracy"].attrs.update(long_name="accuracy", units="fraction correct")
    for a in grid.axes:
        ds[a.name].attrs.update(long_name=f"coefficient along direction {a.name}", units="direction norms")
    return ds


def fill_chunk(ds: xr.Dataset, indices: np.ndarray, loss: np.ndarray, accuracy=None) -> None:
    """Write one chunk of values into ``ds`` in place (flat grid indices)."""
    shape = ds["loss"].shape
    pos = np.unravel_index(np.asarray(indices, dtype=np.int64), shape)
    ds["loss"].values[pos] = loss
    if accuracy is not None and "accuracy" in ds:
        ds["accuracy"].values[pos] = accuracy
    ds["done"].values[pos] = True


def done_indices(ds: xr.Dataset) -> np.ndarray:
    """Flat indices of the points already computed."""
    return np.flatnonzero(ds["done"].values.reshape(-1))


def grid_of(ds: xr.Dataset) -> Grid:
    """The grid a result was computed on (from its coordinates)."""
    axes = []
    for name in ds["loss"].dims:
        v = ds[name].values
        axes.append(Axis(name, float(v[0]), float(v[-1]), len(v)))
    return Grid(tuple(axes))


def _clean_attrs(attrs: dict) -> dict:
    """netCDF accepts numbers, strings and arrays only: encode the rest as JSON."""
    out = {}
    for key, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = int(value)
        elif isinstance(value, (int, float, str, np.integer, np.floating)):
            out[key] = value
        else:
            out[key] = json.dumps(value)
    return out


def save_landscape(ds: xr.Dataset, path: str | Path) -> Path:
    """Save to ``.nc`` (netCDF) or ``.zarr`` (a directory), chosen by the suffix."""
    path = Path(path)
    ds = ds.assign_attrs(_clean_attrs(dict(ds.attrs)))
    if path.suffix == ".zarr":
        ds.to_zarr(path, mode="w", consolidated=False)
    elif path.suffix in (".nc", ".netcdf", ".nc4"):
        ds.assign(done=ds["done"].astype("int8")).to_netcdf(path)
    else:
        raise ValueError(f"save to a .nc or .zarr path, got {path.name!r}")
    return path


def load_landscape(path: str | Path) -> xr.Dataset:
    """Load a result saved by :func:`save_landscape` (values read into memory)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no landscape result at {path}")
    if path.suffix == ".zarr" or path.is_dir():
        ds = xr.open_zarr(path, consolidated=False).load()
    else:
        with xr.open_dataset(path) as f:
            ds = f.load()
    if "loss" not in ds:
        raise ValueError(f"{path} is not a landscape result (it has no 'loss' variable)")
    if "done" in ds:
        ds["done"] = ds["done"].astype(bool)
    return ds
