"""Read a saved result as plain numpy arrays and attributes, without xarray (fast start).

:func:`quick_load` reads what :func:`~landscape_widgets.core.results.save_landscape`
writes: a ``.nc`` file in netCDF 3 (the format xarray writes with scipy, parsed here with
numpy alone), a zarr store made by :func:`~landscape_widgets.runs.store.create_store`
(uncompressed, read with numpy alone) or any other zarr store (read with zarr). It
decodes the values as :func:`~landscape_widgets.core.results.load_landscape` does
(``_FillValue`` masked, ``done`` as bool), so the command line's ``info`` and ``plot``
start without importing xarray, dask or torch. A file it cannot decode faithfully (netCDF
4 / HDF5, record variables, scaled or time-encoded variables...) raises
:class:`Unsupported`; the caller then loads it with xarray.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["QuickResult", "QuickVariable", "Unsupported", "as_dataset", "chunk_key", "quick_load", "raw_array_meta",
           "raw_fill"]


class Unsupported(ValueError):
    """The file may be fine, but only xarray reads it faithfully."""


@dataclass
class QuickVariable:
    """One variable: ``values``, ``dims`` and ``attrs``, as on an ``xarray.DataArray``."""

    values: np.ndarray
    dims: tuple[str, ...]
    attrs: dict = field(default_factory=dict)


class QuickResult:
    """A result's variables (data variables and coordinates) and attributes.

    The part of ``xarray.Dataset`` that the figures and ``info`` use: ``name in result``,
    ``result[name].values`` / ``.dims`` / ``.attrs`` and ``result.attrs``.
    """

    def __init__(self, variables: dict[str, QuickVariable], attrs: dict) -> None:
        self.variables, self.attrs = variables, attrs

    def __contains__(self, name) -> bool:
        return name in self.variables

    def __getitem__(self, name: str) -> QuickVariable:
        return self.variables[name]

    def __repr__(self) -> str:
        return f"QuickResult({', '.join(f'{k}{v.dims}' for k, v in self.variables.items())})"


def as_dataset(result: QuickResult):
    """``result`` as the ``xarray.Dataset`` that
    :func:`~landscape_widgets.core.results.load_landscape` gives for the same file: a
    variable is a coordinate when it is its own dimension or a data variable's
    ``coordinates`` attribute names it (as xarray encodes them)."""
    import xarray as xr

    attrs = {name: dict(var.attrs) for name, var in result.variables.items()}
    coords = {name for name, var in result.variables.items() if var.dims == (name,)}
    for a in attrs.values():
        coords.update(str(a.pop("coordinates", "")).split())
    variables = {name: xr.Variable(var.dims, var.values, attrs[name]) for name, var in result.variables.items()}
    return xr.Dataset({k: v for k, v in variables.items() if k not in coords},
                      coords={k: v for k, v in variables.items() if k in coords}, attrs=dict(result.attrs))


# -- decoding as xarray does (CF conventions) ------------------------------------------------

#: Attributes whose decoding only xarray does faithfully.
_ENCODED = ("scale_factor", "add_offset", "_Unsigned", "calendar", "missing_value", "dtype")


def _decode(name: str, values: np.ndarray, dims: tuple[str, ...], attrs: dict, fill=None) -> QuickVariable:
    attrs = dict(attrs)
    if any(k in attrs for k in _ENCODED) or " since " in str(attrs.get("units", "")):
        raise Unsupported(f"variable {name!r} is encoded ({sorted(attrs)})")
    fill = attrs.pop("_FillValue", fill)
    values = np.asarray(values)
    if values.dtype.byteorder not in ("=", "|"):
        values = values.astype(values.dtype.newbyteorder("="))
    if fill is not None:
        fill = np.asarray(fill).reshape(-1)[0]
        if values.dtype.kind == "f":
            if not np.isnan(fill):
                values = np.where(values == fill, np.nan, values)
        elif values.dtype.kind != "b":  # an integer variable with a fill value: xarray makes it float
            raise Unsupported(f"variable {name!r} is an integer with a _FillValue")
    return QuickVariable(values, dims, attrs)


def _result(variables: dict[str, QuickVariable], attrs: dict, path: Path) -> QuickResult:
    if "loss" not in variables:
        raise ValueError(f"{path} is not a landscape result (it has no 'loss' variable)")
    if "done" in variables:
        variables["done"].values = variables["done"].values.astype(bool)
    return QuickResult(variables, attrs)


# -- netCDF 3 (classic, 64-bit offset, CDF-5) ---------------------------------------------------

_NC_TYPES = {1: "i1", 2: "S1", 3: ">i2", 4: ">i4", 5: ">f4", 6: ">f8", 7: "u1", 8: ">u2", 9: ">u4",
             10: ">i8", 11: ">u8"}
_ABSENT, _DIMENSION, _VARIABLE, _ATTRIBUTE = 0, 10, 11, 12


class _Header:
    def __init__(self, buf: bytes, version: int) -> None:
        self.buf, self.pos, self.version = buf, 4, version

    def int(self) -> int:
        v = struct.unpack_from(">i", self.buf, self.pos)[0]
        self.pos += 4
        return v

    def size(self) -> int:  # NON_NEG: 8 bytes in CDF-5
        if self.version == 5:
            v = struct.unpack_from(">q", self.buf, self.pos)[0]
            self.pos += 8
            return v
        return self.int()

    def offset(self) -> int:
        fmt, n = (">i", 4) if self.version == 1 else (">q", 8)
        v = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += n
        return v

    def padded(self, n: int) -> bytes:
        data = self.buf[self.pos:self.pos + n]
        if len(data) < n:
            raise ValueError("truncated netCDF header")
        self.pos += n + (-n % 4)
        return data

    def name(self) -> str:
        return self.padded(self.size()).decode("utf-8")

    def list_header(self, tag: int) -> int:
        kind, n = self.int(), self.size()
        if kind == _ABSENT and n == 0:
            return 0
        if kind != tag:
            raise ValueError("not a netCDF file (bad header)")
        return n

    def attrs(self) -> dict:
        out = {}
        for _ in range(self.list_header(_ATTRIBUTE)):
            name, nc_type, n = self.name(), self.int(), self.size()
            if nc_type not in _NC_TYPES:
                raise ValueError(f"not a netCDF file (attribute type {nc_type})")
            dtype = np.dtype(_NC_TYPES[nc_type])
            raw = self.padded(n * dtype.itemsize)
            if nc_type == 2:
                out[name] = raw.decode("utf-8")
            else:
                values = np.frombuffer(raw, dtype).astype(dtype.newbyteorder("="))
                out[name] = values[0] if len(values) == 1 else values
        return out


def _read_netcdf3(path: Path) -> QuickResult:
    buf = path.read_bytes()
    if buf[:3] != b"CDF" or len(buf) < 8 or buf[3] not in (1, 2, 5):
        raise Unsupported(f"{path} is not a netCDF 3 file")
    h = _Header(buf, buf[3])
    h.size()  # numrecs
    dims = []
    for _ in range(h.list_header(_DIMENSION)):
        name, length = h.name(), h.size()
        if length == 0:
            raise Unsupported(f"{path} has an unlimited (record) dimension")
        dims.append((name, length))
    attrs = h.attrs()
    variables = {}
    for _ in range(h.list_header(_VARIABLE)):
        name = h.name()
        ids = [h.size() for _ in range(h.size())]
        vattrs = h.attrs()
        nc_type, _, begin = h.int(), h.size(), h.offset()  # type, vsize, begin
        if nc_type == 2 or nc_type not in _NC_TYPES:
            raise Unsupported(f"variable {name!r} holds characters")
        shape = tuple(dims[i][1] for i in ids)
        count = int(np.prod(shape, dtype=np.int64))
        dtype = np.dtype(_NC_TYPES[nc_type])
        if begin + count * dtype.itemsize > len(buf):
            raise ValueError(f"{path} is truncated (variable {name!r})")
        values = np.frombuffer(buf, dtype, count, begin).reshape(shape)
        variables[name] = _decode(name, values, tuple(dims[i][0] for i in ids), vattrs)
    return _result(variables, attrs, path)


# -- zarr -------------------------------------------------------------------------------------


def raw_array_meta(var_dir: Path) -> dict | None:
    """The ``.zarray`` metadata of the zarr array at ``var_dir`` when it is one numpy reads
    and writes directly: zarr format 2, uncompressed, unfiltered, C order, numbers or
    bools, chunk files named ``i.j.k`` (as ``store.create_store`` makes them); else None."""
    try:
        meta = json.loads((var_dir / ".zarray").read_text())
        dtype = np.dtype(meta["dtype"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    plain = (meta.get("zarr_format") == 2 and meta.get("compressor") is None and not meta.get("filters")
             and meta.get("order") == "C" and meta.get("dimension_separator", ".") == "." and dtype.kind in "fiub")
    return meta if plain else None


def raw_fill(meta: dict):
    """The value of a raw array's elements whose chunk file is missing."""
    fill = meta.get("fill_value")
    return np.nan if fill in ("NaN", "nan") else (0 if fill is None else fill)


def chunk_key(index) -> str:
    """A zarr format 2 chunk file's name (``"0.1"``; ``"0"`` for a 0-d array)."""
    return ".".join(str(int(i)) for i in index) or "0"


def _read_raw_zarr(path: Path) -> QuickResult | None:
    """A zarr format 2 store of raw arrays (:func:`raw_array_meta`) with numpy; None when
    the store is in another layout."""
    try:
        attrs = json.loads((path / ".zattrs").read_text()) if (path / ".zattrs").exists() else {}
        if json.loads((path / ".zgroup").read_text()).get("zarr_format") != 2:
            return None
    except (OSError, ValueError):
        return None
    variables = {}
    for var_dir in sorted(p for p in path.iterdir() if (p / ".zarray").is_file()):
        meta = raw_array_meta(var_dir)
        vattrs = json.loads((var_dir / ".zattrs").read_text()) if (var_dir / ".zattrs").exists() else {}
        if meta is None or "_ARRAY_DIMENSIONS" not in vattrs:
            return None
        dtype, shape, chunks = np.dtype(meta["dtype"]), tuple(meta["shape"]), tuple(meta["chunks"])
        fill = raw_fill(meta)
        values = np.full(shape, fill, dtype=dtype)
        for key in np.ndindex(*(-(-s // c) for s, c in zip(shape, chunks))):
            file = var_dir / chunk_key(key)
            if file.exists():
                block = np.fromfile(file, dtype=dtype).reshape(chunks)
                where = tuple(slice(k * c, min((k + 1) * c, s)) for k, c, s in zip(key, chunks, shape))
                values[where] = block[tuple(slice(0, w.stop - w.start) for w in where)]
        dims = tuple(vattrs.pop("_ARRAY_DIMENSIONS"))
        variables[var_dir.name] = _decode(var_dir.name, values, dims, vattrs, fill=fill if dtype.kind == "f" else None)
    return _result(variables, attrs, path)


def _read_zarr(path: Path) -> QuickResult:
    quick = _read_raw_zarr(path)
    if quick is not None:
        return quick
    import zarr

    group = zarr.open_group(str(path), mode="r")
    variables = {}
    for name, array in group.arrays():
        vattrs = dict(array.attrs)
        dims = vattrs.pop("_ARRAY_DIMENSIONS", None) or getattr(array.metadata, "dimension_names", None)
        if dims is None:
            raise Unsupported(f"array {name!r} of {path} has no dimension names")
        fill = vattrs.pop("_FillValue", None)
        if isinstance(fill, str):  # zarr format 3: base64 of the raw value
            fill = np.frombuffer(base64.b64decode(fill), dtype=array.dtype)[0]
        elif fill is None and array.metadata.zarr_format == 2 and array.dtype.kind == "f":
            fill = array.fill_value  # xarray masks a format 2 array's fill value
        variables[name] = _decode(name, array[...], tuple(dims), vattrs, fill=fill)
    return _result(variables, dict(group.attrs), path)


def quick_load(path: str | Path) -> QuickResult:
    """A saved result (``.nc`` or ``.zarr``) as a :class:`QuickResult`, without xarray.

    Raises
    ------
    FileNotFoundError
        Nothing at ``path``.
    Unsupported
        A layout only xarray decodes faithfully: load it with
        :func:`~landscape_widgets.core.results.load_landscape`.
    ValueError, OSError
        Not a landscape result.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no landscape result at {path}")
    if path.suffix == ".zarr" or path.is_dir():
        return _read_zarr(path)
    return _read_netcdf3(path)
