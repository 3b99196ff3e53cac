"""Resumable landscape runs on disk, and a cache of finished results.

A run is named by a hash of everything that determines its numbers (:func:`spec_hash`):
the model (parameters, buffers, module types, their settings and ``forward`` code), the
loss, forward and metrics (their code and configuration, and the module-level values
their code reads), the moved parameters, the
directions (seed, normalization, bias/BN rule, or the given vectors), the centre point,
the grid, the data and its caps, the dtype and device type. A callable whose
configuration cannot be read faithfully (a lambda, a closure, an arbitrary callable
object) makes the run uncacheable unless the caller names it with ``cache_key=``.
:func:`compute_stored` writes the finished chunks of points to a zarr store under that
name in batches, at most a second after they finish (:class:`StoreWriter`; the ``done``
mask is written after the values, so a point marked done always has its values on
disk), so a killed run loses at most about a second of finished work, and running the
same specification again computes only the missing points.

The stores it creates are uncompressed zarr (format 2) stores that any zarr and xarray
read; they are created and written with numpy alone (a write is one file per variable,
well under a millisecond), so a run pays neither zarr's import nor its per-write cost.
A store in another layout (compressed, zarr format 3, e.g. saved by
:func:`~landscape_widgets.core.results.save_landscape`) is written through zarr.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import sys
import sysconfig
import threading
import time
import types
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from torch import nn

from ..core.data import prepare_data, tensor_leaves
from ..core.digest import tensor_digest
from ..core.grids import Grid, default_grid
from ..core.landscape import compute_landscape
from ..core.objective import resolve_device
from ..core.params import select_params
from ..core.results import clean_attrs, empty_landscape, load_landscape, metrics_of
from ..core.streaming import Chunk
from .paths import cache_dir
from .quick_read import Unsupported, as_dataset, chunk_key, quick_load, raw_array_meta, raw_fill

#: Finished results kept in memory by :func:`load_cached` (most recent last).
MEMORY_CACHE_SIZE = 32
_memory: OrderedDict[str, xr.Dataset] = OrderedDict()
_PLAIN = (type(None), bool, int, float, str)


class UncacheableError(ValueError):
    """Part of a specification cannot be hashed faithfully (pass ``cache_key=``)."""


def _code_digest(code: types.CodeType) -> str:
    """Bytecode, constants (nested code objects by digest) and names of a code object."""
    consts = [(_code_digest(c) if isinstance(c, types.CodeType) else repr(c)) for c in code.co_consts]
    text = repr((code.co_code, consts, code.co_names))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _forward_digest(cls: type) -> str:
    """The code of ``cls.forward`` and the plain values (numbers, strings, tensors) of the
    module-level names it reads."""
    fwd = getattr(cls, "forward", None)
    code = getattr(fwd, "__code__", None)
    if code is None:
        return ""
    values = {name: describe(fwd.__globals__[name]) for name in _global_names(code)
              if name in fwd.__globals__ and isinstance(fwd.__globals__[name], (*_PLAIN, torch.Tensor))}
    return _code_digest(code) + (hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]
                                 if values else "")


def _global_names(code: types.CodeType) -> list[str]:
    """The names a code object (with the functions defined in it) looks up, sorted."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.update(_global_names(const))
    return sorted(names)


#: Functions whose description is being built (for a function that calls itself, or two
#: that call each other, through module-level names).
_DESCRIBING = threading.local()


#: This package's top-level name.
_OWN = __name__.split(".")[0]


def _library_code(fn: types.FunctionType) -> bool:
    """Whether ``fn`` comes from this package, an installed package or the standard
    library: versioned code, whose module-level names are not the user's settings."""
    if fn.__module__ == _OWN or fn.__module__.startswith(_OWN + "."):
        return True
    path = getattr(sys.modules.get(fn.__module__), "__file__", None)
    if path is None:
        return False
    path = Path(path).resolve()
    return ("site-packages" in path.parts or "dist-packages" in path.parts
            or path.is_relative_to(Path(sysconfig.get_paths()["stdlib"]).resolve()))


def _describe_globals(fn: types.FunctionType, what: str) -> dict:
    """The module-level names ``fn`` reads, each described: a module by its name, a class
    by its name and ``forward`` code, anything else by :func:`describe` (a global
    number, tensor, loss module or function changes the description when it changes).
    Nothing for a function of a library (``F.cross_entropy``, this package's own)."""
    if _library_code(fn):
        return {}
    active = getattr(_DESCRIBING, "ids", None)
    if active is None:
        active = _DESCRIBING.ids = set()
    out = {}
    active.add(id(fn))
    try:
        for name in _global_names(fn.__code__):
            if name not in fn.__globals__:
                continue  # an attribute name, a builtin
            value = fn.__globals__[name]
            if isinstance(value, types.ModuleType):
                out[name] = {"module": value.__name__}
            elif isinstance(value, type):
                out[name] = {"class": f"{value.__module__}:{value.__qualname__}", "forward": _forward_digest(value)}
            elif isinstance(value, types.FunctionType) and id(value) in active:
                out[name] = {"function": f"{value.__module__}:{value.__qualname__}"}
            else:
                out[name] = describe(value, f"{what} (through its module-level name {name!r})")
    finally:
        active.discard(id(fn))
    return out


def describe(obj, what: str = "value"):
    """A JSON-able description that determines ``obj``'s behaviour, or
    :class:`UncacheableError` when none can be given faithfully.

    Plain values, tensors, arrays, containers and dataclasses of them, module-level
    functions (by name, code and what the module-level names they read hold: a global
    scale, a helper function, a loss module), ``functools.partial`` of describable parts and ``nn.Module``
    objects whose settings are plain values (by type, ``forward`` code, settings and
    state) are described; lambdas, closures and other callable objects are not.
    """
    if isinstance(obj, _PLAIN):
        return obj
    if isinstance(obj, (torch.dtype, torch.device)):
        return str(obj)
    if isinstance(obj, torch.Tensor):
        return tensor_digest(obj)
    if isinstance(obj, np.ndarray) and obj.dtype != object:
        return tensor_digest(torch.from_numpy(np.ascontiguousarray(obj)))
    if isinstance(obj, (list, tuple)):
        return [describe(v, what) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): describe(v, what) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, functools.partial):
        return {"partial": describe(obj.func, what), "args": describe(obj.args, what),
                "keywords": describe(obj.keywords, what)}
    if isinstance(obj, nn.Module):
        return _describe_module(obj, what, strict=True)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        cls = type(obj)
        return {"dataclass": f"{cls.__module__}:{cls.__qualname__}",
                "fields": {f.name: describe(getattr(obj, f.name), what) for f in dataclasses.fields(obj)}}
    if isinstance(obj, types.FunctionType):
        name = obj.__qualname__
        if "<lambda>" in name or "<locals>" in name or obj.__closure__:
            raise UncacheableError(
                f"{what} {name} is a lambda or a closure, whose behaviour cannot be hashed faithfully"
            )
        return {"function": f"{obj.__module__}:{name}", "code": _code_digest(obj.__code__),
                "defaults": describe(obj.__defaults__, what), "kwdefaults": describe(obj.__kwdefaults__, what),
                "globals": _describe_globals(obj, what)}
    if isinstance(obj, (types.BuiltinFunctionType, types.BuiltinMethodType)):
        return {"builtin": f"{getattr(obj, '__module__', '')}:{obj.__qualname__}"}
    raise UncacheableError(f"{what} of type {type(obj).__qualname__} cannot be hashed faithfully")


def _describe_module(module: nn.Module, what: str, strict: bool) -> dict:
    """Types, ``forward`` code, plain settings and state of a module and its children.

    ``strict``: a setting that is not a plain value makes it uncacheable (losses);
    otherwise such settings are described by their ``to_json_string()`` where they have
    one (a Hugging Face config) and left out where they do not (models, whose
    numbers are also fixed by their state).
    """
    settings = {}
    for key, value in sorted(vars(module).items()):
        if key.startswith("_") or key == "training":
            continue
        if isinstance(value, (*_PLAIN, tuple, list, torch.dtype)):
            try:
                settings[key] = describe(value, what)
            except UncacheableError:
                if strict:
                    raise
        elif hasattr(value, "to_json_string"):
            settings[key] = value.to_json_string()
        elif strict:
            raise UncacheableError(f"{what}: setting {key!r} of {type(module).__qualname__} cannot be hashed faithfully")
    cls = type(module)
    return {
        "type": f"{cls.__module__}:{cls.__qualname__}",
        "forward": _forward_digest(cls),
        "settings": settings,
        "extra": module.extra_repr(),
        "state": {k: tensor_digest(v) for k, v in module.state_dict(keep_vars=False).items()} if strict else None,
        "children": {n: _describe_module(c, what, strict) for n, c in module.named_children()},
    }


def spec_hash(
    model: nn.Module,
    loss_fn: Callable | None,
    data,
    grid: Grid,
    directions: Sequence[torch.Tensor] | None = None,
    *,
    seed: int = 0,
    normalization: str = "filter",
    bias_bn: str = "ignore",
    theta: torch.Tensor | None = None,
    cache_key: str | None = None,
    **objective_kwargs,
) -> str:
    """A short hex name for everything that determines a landscape's values.

    Parameters
    ----------
    model : nn.Module
        Its parameters *and* buffers (e.g. BatchNorm statistics), the types and
        ``forward`` code of its modules and their plain settings are hashed.
    loss_fn : callable or None
        Hashed by :func:`describe` (an ``nn.Module`` loss by its configuration, such as
        ``label_smoothing``; a function by its name and code).
    data
        As for the objective (read once, as the evaluation reads it, with the same caps).
    grid : Grid
    directions : sequence of flat tensors, optional
        Hashed by value when given; otherwise ``seed``, ``normalization`` and
        ``bias_bn`` (which draw them) are.
    theta
        As for :func:`~landscape_widgets.core.landscape.compute_landscape`.
    cache_key : str, optional
        Stands for the loss, ``forward`` and ``metrics`` when they cannot be described
        (lambdas, closures): the caller promises that equal keys mean equal callables.
    **objective_kwargs
        ``params``, ``forward``, ``metrics``, ``pass_batch``, ``max_samples``... as for
        the objective; all are part of the hash.

    Returns
    -------
    str
        24 hex digits.

    Raises
    ------
    UncacheableError
        If a callable cannot be described and no ``cache_key`` is given.
    """
    options = dict(objective_kwargs)
    behaviour = _behaviour(loss_fn, options.pop("forward", None), options.pop("metrics", None), cache_key)
    names = select_params(model, options.pop("params", None))
    device = options.pop("device", None)
    data_options = {k: options.pop(k, None) for k in ("batch_size", "max_batches", "max_samples")}
    options.pop("data_budget", None)  # resident or streamed: the same values
    spec = {
        "model": _describe_module(model, "model", strict=False),
        "state": {k: tensor_digest(v) for k, v in model.state_dict().items()},
        "behaviour": behaviour,
        "params": list(names),
        "grid": grid.to_dict(),
        "directions": ([tensor_digest(d) for d in directions] if directions is not None
                       else {"seed": seed, "normalization": normalization, "bias_bn": bias_bn}),
        "theta": None if theta is None else tensor_digest(theta),
        "data_options": data_options,
        "device_type": resolve_device(device, model).type,
        "options": describe(options, "option"),
    }
    return _digest(spec, prepare_data(data, "cpu", **data_options))


def _behaviour(loss_fn, forward, metrics, cache_key: str | None) -> dict:
    """What the loss, forward and metrics compute: :func:`describe` of each, or the
    caller's ``cache_key`` standing for all three."""
    if cache_key is not None:
        return {"cache_key": str(cache_key)}
    return {k: describe(v, k) for k, v in (("loss_fn", loss_fn), ("forward", forward), ("metrics", metrics))}


def _digest(spec: dict, batches) -> str:
    """24 hex digits of the JSON of ``spec`` and of every tensor of ``batches``."""
    h = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode())
    for batch in batches:
        for leaf in tensor_leaves(batch):
            h.update(tensor_digest(leaf).encode())
    return h.hexdigest()[:24]


def evaluation_key(evaluator, grid: Grid, cache_key: str | None = None) -> str:
    """:func:`spec_hash` of a prepared evaluator: the same name for the same numbers.

    Hashed: the objective's model (module types, settings, ``forward`` code, buffers and
    fixed parameters), its loss, forward and metrics (or ``cache_key`` instead), the
    moved parameters, the centre, the directions, the metrics computed, the grid, the
    data it holds (every batch, as evaluated) and the dtype and device type.

    Raises
    ------
    UncacheableError
        If a callable cannot be described and no ``cache_key`` is given.
    """
    ob = evaluator.objective
    moved = set(ob.layout.names)
    spec = {
        "model": _describe_module(ob.model, "model", strict=False),
        "fixed": {k: tensor_digest(v) for k, v in ob.model.state_dict().items() if k not in moved},
        "behaviour": _behaviour(ob.loss_fn, ob.forward, ob.metrics, cache_key),
        "pass_batch": ob.pass_batch,
        "params": list(ob.layout.names),
        "theta": tensor_digest(evaluator.theta),
        "directions": tensor_digest(evaluator.directions),
        "metrics": list(evaluator.metric_names),
        "grid": grid.to_dict(),
        "dtype": str(ob.dtype),
        "device_type": ob.device.type,
    }
    return _digest(spec, ob.data)


def store_root(root: str | Path | None = None) -> Path:
    """Where run stores live: ``root``, else ``runs/`` in the package cache directory."""
    if root is None:
        root = cache_dir() / "runs"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def store_path(key: str, root: str | Path | None = None) -> Path:
    """The zarr store of the run named ``key``."""
    return store_root(root) / f"{key}.zarr"


#: Elements per chunk file of the stores :func:`create_store` makes (float64: 8 MiB).
CHUNK_ELEMENTS = 2**20


def _chunk_shape(shape: tuple[int, ...]) -> list[int]:
    """The whole array, split along the first axis into files of at most about
    :data:`CHUNK_ELEMENTS` elements."""
    rest = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    return [max(1, min(shape[0], CHUNK_ELEMENTS // max(rest, 1))), *shape[1:]]


def _json_value(value):
    return value.item() if isinstance(value, np.generic) else value


def _write_file(path: Path, data: bytes | str) -> None:
    """Write ``path`` atomically: a reader (or a kill) sees the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data) if isinstance(data, bytes) else tmp.write_text(data)
    os.replace(tmp, path)


def create_store(path: str | Path, grid: Grid, metrics: Sequence[str], attrs: dict | None = None) -> Path:
    """Create an empty result store (all points missing) at ``path``.

    The variables, coordinates and attributes are those of
    :func:`~landscape_widgets.core.results.empty_landscape`, as an uncompressed zarr
    (format 2) store, which :func:`~landscape_widgets.core.results.load_landscape`, xarray
    and zarr read and :func:`write_chunk` writes without importing zarr. It is written to
    a temporary directory first and renamed into place, so a store either exists complete
    or not at all.
    """
    ds = empty_landscape(grid, metrics, attrs=attrs)
    return _write_store(Path(path), ds, ds.coords)


def save_complete(key: str, ds: xr.Dataset, root: str | Path | None = None) -> Path:
    """Store the complete result ``ds`` as :func:`load_cached` ``(key, root)`` finds it.

    Written as :func:`create_store` writes a store (read back with numpy alone) and
    renamed into place, so a reader sees all of it or nothing; when the key is stored
    already (by another process, say), that result stays.
    """
    path = store_path(key, root)
    if not path.exists():
        try:
            _write_store(path, ds, ds.variables)
        except OSError:  # stored by another process meanwhile
            if not path.exists():
                raise
    return path


def _write_store(path: Path, ds: xr.Dataset, filled) -> Path:
    """Write ``ds`` at ``path`` as an uncompressed zarr (format 2) store, the variables
    named in ``filled`` with their values and the others all missing (no chunk files);
    written under a temporary name and renamed into place."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.zarr")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        (tmp / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
        (tmp / ".zattrs").write_text(json.dumps({k: _json_value(v) for k, v in clean_attrs(dict(ds.attrs)).items()}))
        for name, var in ds.variables.items():
            values = np.ascontiguousarray(var.values)
            floating = values.dtype.kind == "f"
            meta = {"shape": list(values.shape), "chunks": _chunk_shape(values.shape), "dtype": values.dtype.str,
                    "fill_value": "NaN" if floating else None, "order": "C", "filters": None,
                    "dimension_separator": ".", "compressor": None, "zarr_format": 2}
            var_dir = tmp / str(name)
            var_dir.mkdir()
            (var_dir / ".zarray").write_text(json.dumps(meta))
            (var_dir / ".zattrs").write_text(json.dumps({**{k: _json_value(v) for k, v in var.attrs.items()},
                                                         "_ARRAY_DIMENSIONS": list(var.dims)}))
            if name in filled:
                _write_raw(var_dir, meta, np.arange(values.size), values.reshape(-1))
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _raw_layout(path: Path, names: Sequence[str]) -> dict[str, dict] | None:
    """The metadata of the arrays ``names`` when numpy writes each directly (see
    :func:`~landscape_widgets.runs.quick_read.raw_array_meta`), else None."""
    layout = {name: raw_array_meta(path / name) for name in names}
    return None if any(meta is None for meta in layout.values()) else layout


def _write_raw(var_dir: Path, meta: dict, flat: np.ndarray, values: np.ndarray) -> None:
    """Set the elements ``flat`` (flat indices) of the raw zarr array at ``var_dir`` to
    ``values``, one read and one write per chunk file touched.

    A new chunk file is written whole and renamed into place; an existing one is
    overwritten in place with its old contents plus the new values: renaming over a file
    costs milliseconds on ext4 (it flushes the new file), and an in-place write cut short
    by a kill stops at a page boundary, leaving every element either old or new, so with
    ``done`` written after the values (:func:`write_chunk`) a point marked done always
    has its values on disk.
    """
    shape, chunks, dtype = tuple(meta["shape"]), tuple(meta["chunks"]), np.dtype(meta["dtype"])
    pos = np.stack(np.unravel_index(np.asarray(flat, dtype=np.int64), shape), axis=-1).reshape(-1, len(shape))
    which = pos // np.asarray(chunks, dtype=np.int64)
    values = np.broadcast_to(np.asarray(values), (len(pos),))
    n_chunks = [-(-s // c) for s, c in zip(shape, chunks)]
    ids = np.ravel_multi_index(tuple(which.T), n_chunks) if len(pos) else np.zeros(0, dtype=np.int64)
    fill = raw_fill(meta)
    size = int(np.prod(chunks, dtype=np.int64))
    for chunk_id in np.unique(ids):
        key = np.asarray(np.unravel_index(int(chunk_id), n_chunks), dtype=np.int64)
        mine = ids == chunk_id
        local = tuple((pos[mine] - key * np.asarray(chunks, dtype=np.int64)).T)
        file = var_dir / chunk_key(key)
        try:
            f = open(file, "r+b")
        except FileNotFoundError:
            block = np.full(chunks, fill, dtype=dtype)
            block[local] = values[mine]
            _write_file(file, block.tobytes())
            continue
        with f:
            block = np.fromfile(f, dtype=dtype, count=size)
            if block.size != size:
                raise ValueError(f"the chunk file {file} is truncated")
            block = block.reshape(chunks)
            block[local] = values[mine]
            f.seek(0)
            f.write(block.tobytes())


def write_chunk(path: str | Path, chunk: Chunk) -> None:
    """Write one chunk of values into the store at ``path`` (``done`` last).

    Stores made by :func:`create_store` are written directly (numpy and an atomic file
    replace per chunk file); any other zarr store through zarr.
    """
    path = Path(path)
    names = [n for n in chunk.values if (path / n).is_dir()]
    layout = _raw_layout(path, [*names, "done"])
    if layout is not None:
        for name in names:
            _write_raw(path / name, layout[name], chunk.indices, chunk.values[name])
        _write_raw(path / "done", layout["done"], chunk.indices, True)
        return
    import zarr

    group = zarr.open_group(str(path), mode="r+")
    pos = np.unravel_index(np.asarray(chunk.indices, dtype=np.int64), group["loss"].shape)
    for name, values in chunk.values.items():
        if name in group:
            group[name].vindex[pos] = values
    group["done"].vindex[pos] = True


class StoreWriter:
    """Writes a run's finished chunks into its zarr store, batched by time.

    Chunks are kept in memory and written together at most every ``every`` seconds (and
    by :meth:`flush` at the end), so a killed run loses at most about ``every`` seconds
    of finished work while a fast run pays one write a second instead of one a chunk.
    The store is created with the first write.
    """

    def __init__(self, path: str | Path, grid: Grid, every: float = 1.0) -> None:
        self.path, self.grid, self.every = Path(path), grid, float(every)
        self.pending: list[Chunk] = []
        self.ds: xr.Dataset | None = None
        self.last = time.monotonic()

    def add(self, ds: xr.Dataset, chunk: Chunk) -> None:
        """Note a finished chunk of the result ``ds``; write if ``every`` seconds have passed.

        Estimates (``chunk.final`` false, from a data sample) are not stored: a store
        holds exact values only.
        """
        self.ds = ds
        if not chunk.final:
            return
        self.pending.append(chunk)
        if time.monotonic() - self.last >= self.every:
            self.flush()

    def flush(self) -> None:
        """Write every pending chunk now (one write per variable)."""
        if not self.pending:
            return
        if not self.path.exists():
            create_store(self.path, self.grid, metrics_of(self.ds), attrs=dict(self.ds.attrs))
        values = {k: np.concatenate([c.values[k] for c in self.pending]) for k in self.pending[0].values}
        write_chunk(self.path, Chunk(np.concatenate([c.indices for c in self.pending]), values, "stored"))
        self.pending = []
        self.last = time.monotonic()


def open_partial(path: str | Path, grid: Grid) -> xr.Dataset | None:
    """The stored (possibly partial) result at ``path``, or None if there is none."""
    path = Path(path)
    if not path.exists():
        return None
    ds = _read(path)
    if ds["loss"].shape != grid.shape:
        raise ValueError(f"the store {path} holds a grid of shape {ds['loss'].shape}, not {grid.shape}")
    return ds


def _read(path: Path) -> xr.Dataset:
    """:func:`~landscape_widgets.core.results.load_landscape`, with numpy alone where the
    layout allows (:mod:`~landscape_widgets.runs.quick_read`: no zarr, dask or scheduler
    start-up)."""
    try:
        return as_dataset(quick_load(path))
    except Unsupported:
        return load_landscape(path)


def load_cached(key: str, root: str | Path | None = None) -> xr.Dataset | None:
    """A finished result by its :func:`spec_hash`, from memory or disk; None if absent.

    The result is a copy: changing it changes neither the cache nor later results.
    Partial (interrupted) runs are not returned: resume them with :func:`compute_stored`.
    """
    if key in _memory:
        _memory.move_to_end(key)
        return _memory[key].copy(deep=True)
    path = store_path(key, root)
    if not path.exists():
        return None
    ds = _read(path)
    if not bool(ds["done"].values.all()):
        return None
    ds.attrs.update(complete=1, n_done=int(ds["done"].sum()), spec_hash=key)
    _remember(key, ds)
    return ds.copy(deep=True)


def _remember(key: str, ds: xr.Dataset) -> None:
    _memory[key] = ds.copy(deep=True)
    _memory.move_to_end(key)
    while len(_memory) > MEMORY_CACHE_SIZE:
        _memory.popitem(last=False)


def compute_stored(
    model: nn.Module,
    loss_fn: Callable | None = None,
    data=None,
    grid: Grid | None = None,
    directions: Sequence[torch.Tensor] | None = None,
    *,
    root: str | Path | None = None,
    cache_key: str | None = None,
    seed: int = 0,
    normalization: str = "filter",
    bias_bn: str = "ignore",
    theta: torch.Tensor | None = None,
    on_chunk: Callable[[xr.Dataset, Chunk], None] | None = None,
    strategy: str = "auto",
    chunk_size: int | None = None,
    order: str = "coarse_to_fine",
    cancel=None,
    progress: bool = False,
    backend=None,
    flush_every: float = 1.0,
    **objective_kwargs,
) -> xr.Dataset:
    """:func:`~landscape_widgets.core.landscape.compute_landscape`, saved as it goes and resumed.

    The run's store is ``store_path(spec_hash(...), root)``. Points already in the
    store are not computed again; a finished run is returned from :func:`load_cached`
    without any evaluation. When a callable of the specification cannot be hashed
    faithfully (see :func:`spec_hash`) and no ``cache_key`` is given, the landscape is
    computed without a store (with a warning), never taken from another run's.

    Parameters
    ----------
    model, loss_fn, data, grid, directions, seed, normalization, bias_bn, theta, on_chunk,
    strategy, chunk_size, order, cancel, progress, backend, **objective_kwargs
        As for :func:`~landscape_widgets.core.landscape.compute_landscape`.
    root : str or Path, optional
        Directory of the stores (default :func:`store_root`).
    cache_key : str, optional
        See :func:`spec_hash`.
    flush_every : float
        Seconds between writes of finished points (see :class:`StoreWriter`): a killed
        run loses at most about this much finished work.

    Returns
    -------
    xr.Dataset
        The result, with ``attrs["spec_hash"]`` and ``attrs["store"]`` when stored.
    """
    if grid is None:
        grid = default_grid(len(directions) if directions is not None else 2)
    draw = {"seed": seed, "normalization": normalization, "bias_bn": bias_bn}
    run = {"strategy": strategy, "chunk_size": chunk_size, "order": order, "cancel": cancel,
           "progress": progress, **({} if backend is None else {"backend": backend})}
    try:
        key = spec_hash(model, loss_fn, data, grid, directions, theta=theta, cache_key=cache_key, **draw,
                        **objective_kwargs)
    except UncacheableError as err:
        warnings.warn(f"not stored or cached: {err}; pass cache_key='...' to store this run", stacklevel=2)
        return compute_landscape(model, loss_fn, data, grid, directions, theta=theta, on_chunk=on_chunk, **draw,
                                 **run, **objective_kwargs)
    cached = load_cached(key, root)
    if cached is not None:
        return cached
    path = store_path(key, root)
    partial = open_partial(path, grid)

    writer = StoreWriter(path, grid, flush_every)

    def save(ds: xr.Dataset, chunk: Chunk) -> None:
        writer.add(ds, chunk)
        if on_chunk is not None:
            on_chunk(ds, chunk)

    try:
        ds = compute_landscape(
            model, loss_fn, data, grid, directions, theta=theta, resume=partial,
            on_chunk=save, **draw, **run, **objective_kwargs,
        )
    finally:  # also on Ctrl-C or an error: what was finished is kept
        writer.flush()
    ds.attrs.update(spec_hash=key, store=str(path))
    if ds.attrs.get("complete"):
        _remember(key, ds)
    return ds
