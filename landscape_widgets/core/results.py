"""Landscape results as labelled ``xarray.Dataset`` objects, saved to netCDF or zarr."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from .grids import Axis, Grid
from .metric_names import METRICS

#: Suffix of the standard-error variable of an estimated metric (``loss_se``).
SE_SUFFIX = "_se"
_LABELS = {"loss": ("loss", "mean loss over the data"), "accuracy": ("accuracy", "fraction correct")}


def empty_landscape(grid: Grid, metrics: Sequence[str] = METRICS, attrs: dict | None = None) -> xr.Dataset:
    """A dataset with the grid's coordinates and all values missing (NaN).

    Data variables: one per metric (``loss`` first) and ``done`` (bool: the point has
    been computed, so a NaN there is a real non-finite value, not a gap).
    """
    if "loss" not in metrics:
        raise ValueError(f"a landscape needs a 'loss' variable, got metrics {list(metrics)}")
    coords = {a.name: a.values for a in grid.axes}
    dims = grid.names
    data = {m: (dims, np.full(grid.shape, np.nan)) for m in metrics}
    data["done"] = (dims, np.zeros(grid.shape, dtype=bool))
    ds = xr.Dataset(data, coords=coords, attrs=clean_attrs(attrs or {}))
    for m in metrics:
        long_name, units = _LABELS.get(m, (m, "mean over the data"))
        ds[m].attrs.update(long_name=long_name, units=units)
    for a in grid.axes:
        ds[a.name].attrs.update(long_name=f"coefficient along direction {a.name}", units="direction norms")
    return ds


def metrics_of(ds: xr.Dataset) -> tuple[str, ...]:
    """The per-point variables of a result (every data variable over the grid but ``done``
    and the standard errors of estimates)."""
    dims = ds["loss"].dims
    skip = {"done", *standard_errors(ds)}
    return tuple(n for n, v in ds.data_vars.items() if n not in skip and v.dims == dims)


def fill_chunk(ds: xr.Dataset, indices: np.ndarray, values: Mapping[str, np.ndarray], final: bool = True) -> None:
    """Write one chunk of values (``{variable: array}``) into ``ds`` in place (flat indices).

    ``final``: exact values; the points become ``done`` and their standard errors
    (``<metric>_se`` variables, where an estimate was shown before) 0, unless ``values``
    gives them. Otherwise the
    values are estimates (see :mod:`landscape_widgets.core.sampled`): ``values`` holds
    their ``<metric>_se`` too (variables created on first use, NaN elsewhere) and
    ``done`` is left as it is. A point already done keeps its exact values.
    """
    pos = np.unravel_index(np.asarray(indices, dtype=np.int64), ds["loss"].shape)
    if not final:
        fresh = ~ds["done"].values[pos]
        pos = tuple(p[fresh] for p in pos)
        values = {k: np.asarray(v)[fresh] for k, v in values.items()}
    for name, v in values.items():
        if name not in ds and not final and name.endswith(SE_SUFFIX):
            ds[name] = (ds["loss"].dims, np.full(ds["loss"].shape, np.nan))
            ds[name].attrs.update(long_name=f"standard error of {name[: -len(SE_SUFFIX)]}",
                                  units=ds[name[: -len(SE_SUFFIX)]].attrs.get("units", ""))
        if name in ds:
            ds[name].values[pos] = v
    if final:
        ds["done"].values[pos] = True
        for name in standard_errors(ds):
            if name not in values:  # an exact value has no error (unless one is given)
                ds[name].values[pos] = 0.0


def standard_errors(ds: xr.Dataset) -> list[str]:
    """The ``<metric>_se`` variables of a result that showed estimates."""
    return [name for name in ds.data_vars if name.endswith(SE_SUFFIX) and name[: -len(SE_SUFFIX)] in ds]


def known_cells(ds: xr.Dataset) -> np.ndarray:
    """Cells with a value to show: done (exact) or estimated (a finite ``loss_se``)."""
    known = ds["done"].values.copy()
    if "loss" + SE_SUFFIX in ds:
        known |= np.isfinite(ds["loss" + SE_SUFFIX].values)
    return known


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


def clean_attrs(attrs: dict) -> dict:
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
    ds = ds.assign_attrs(clean_attrs(dict(ds.attrs)))
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
