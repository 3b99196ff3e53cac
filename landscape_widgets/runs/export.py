"""Landscapes as files for other tools: VTK for ParaView, STL/OBJ/PLY/glTF meshes.

- a 2-D result becomes its surface: the grid's points at height ``value``, two triangles
  per cell, the values as point data;
- a 3-D result becomes the volume itself (VTK, values at the grid's points) or its
  isosurfaces at chosen levels (meshes, marching cubes from scikit-image).

VTK files are written with meshio, meshes with trimesh (both read them back); next to every
file a JSON manifest says how the result was made (directions, normalization, seed,
grid, data size, parameter count, package version, and the metric and levels exported).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import xarray as xr

from ..core.grids import grid_triangles
from ..plotting.isosurfaces import isosurfaces

VTK_SUFFIXES = (".vtk", ".vtu")
MESH_SUFFIXES = (".stl", ".obj", ".ply", ".glb", ".gltf")
#: Result attributes copied into the manifest when present.
MANIFEST_ATTRS = ("directions", "seed", "normalization", "bias_bn", "params", "n_params", "n_params_fixed",
                  "n_samples", "model", "data", "device", "dtype", "strategy")


def export_landscape(ds: xr.Dataset, path: str | Path, metric: str = "loss",
                     levels: Sequence[float] | None = None) -> Path:
    """Write a 2-D or 3-D result for ParaView or a mesh viewer, and its manifest.

    Parameters
    ----------
    ds : xr.Dataset
        A complete landscape (every point ``done``).
    path : str or Path
        ``.vtk``/``.vtu`` (meshio) or ``.stl``/``.obj``/``.ply``/``.glb``/``.gltf``
        (trimesh).
    metric : str
        The data variable exported (``"loss"``, ``"accuracy"``, ...); a VTK file carries
        every metric as point data.
    levels : sequence of float, optional
        3-D meshes: the isosurface values (default the 25%, 50% and 75% quantiles of the
        metric). Ignored otherwise.

    Returns
    -------
    Path
        The file written; the manifest is ``path`` + ``.json``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VTK_SUFFIXES + MESH_SUFFIXES:
        raise ValueError(f"export to {', '.join(VTK_SUFFIXES + MESH_SUFFIXES)}; got {path.name!r}")
    if metric not in ds:
        raise ValueError(f"the result has no {metric!r}; it has {sorted(ds.data_vars)}")
    dims = ds[metric].dims
    if len(dims) not in (2, 3):
        raise ValueError(f"a {len(dims)}-D result has no surface or volume to export; plot it instead")
    if not bool(ds["done"].all()):
        raise ValueError("the result is not complete; finish it (e.g. resume the stored run) before exporting")
    axes = [ds[d].values.astype(np.float64) for d in dims]
    values = ds[metric].values.astype(np.float64)
    used_levels: list[float] = []
    if suffix in VTK_SUFFIXES:
        _write_vtk(ds, dims, axes, path)
    elif len(dims) == 2:
        _surface(axes, values).export(path)
    else:
        used_levels = list(levels) if levels is not None else _default_levels(values)
        _isosurfaces(axes, values, used_levels).export(path)
    manifest = _manifest(ds, dims, metric, used_levels, path)
    path.with_name(path.name + ".json").write_text(json.dumps(manifest, indent=2, default=str))
    return path


def _library(name: str):
    """Import an optional export library, or say how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ImportError(f"exporting needs {name.split('.')[0]}: pip install 'landscape-widgets[export]'") from err


def _surface(axes: list[np.ndarray], values: np.ndarray):
    trimesh = _library("trimesh")

    a, b = np.meshgrid(*axes, indexing="ij")
    if not np.isfinite(values).all():
        raise ValueError("the surface has non-finite values; a mesh cannot hold them (export VTK instead)")
    vertices = np.stack([a.ravel(), b.ravel(), values.ravel()], 1)
    return trimesh.Trimesh(vertices, grid_triangles(*values.shape), process=False)


def _default_levels(values: np.ndarray) -> list[float]:
    finite = values[np.isfinite(values)]
    return [float(q) for q in np.quantile(finite, [0.25, 0.5, 0.75])]


def _isosurfaces(axes: list[np.ndarray], values: np.ndarray, levels: Sequence[float]):
    trimesh = _library("trimesh")
    meshes = [trimesh.Trimesh(verts, faces, process=False) for verts, faces in isosurfaces(axes, values, levels)]
    return trimesh.util.concatenate(meshes)


def _write_vtk(ds: xr.Dataset, dims, axes: list[np.ndarray], path: Path) -> None:
    meshio = _library("meshio")

    grids = np.meshgrid(*axes, indexing="ij")
    metrics = [m for m, v in ds.data_vars.items() if v.dims == dims and m != "done"]
    point_data = {m: ds[m].values.astype(np.float64).ravel() for m in metrics}
    if len(dims) == 2:
        # the surface, lifted by the first metric, the values attached to its points
        lift = ds[metrics[0]].values.astype(np.float64).ravel()
        points = np.stack([grids[0].ravel(), grids[1].ravel(), np.nan_to_num(lift)], 1)
        cells = [("triangle", grid_triangles(*grids[0].shape))]
    else:
        points = np.stack([g.ravel() for g in grids], 1)
        cells = [("hexahedron", _hexahedra(grids[0].shape))]
    meshio.Mesh(points, cells, point_data=point_data).write(path)


def _hexahedra(shape: tuple[int, int, int]) -> np.ndarray:
    """VTK-ordered hexahedra over a 3-D grid's points numbered ``(i * n_b + j) * n_c + k``."""
    n_a, n_b, n_c = shape
    i, j, k = np.meshgrid(np.arange(n_a - 1), np.arange(n_b - 1), np.arange(n_c - 1), indexing="ij")

    def p(di, dj, dk):
        return (((i + di) * n_b + (j + dj)) * n_c + (k + dk)).ravel()

    return np.stack([p(0, 0, 0), p(1, 0, 0), p(1, 1, 0), p(0, 1, 0),
                     p(0, 0, 1), p(1, 0, 1), p(1, 1, 1), p(0, 1, 1)], 1)


def _manifest(ds: xr.Dataset, dims, metric: str, levels: list[float], path: Path) -> dict:
    try:
        package = version("landscape-widgets")
    except PackageNotFoundError:
        package = "unknown"
    return {
        "file": path.name,
        "metric": metric,
        "levels": levels,
        "grid": {d: [float(ds[d].values[0]), float(ds[d].values[-1]), int(ds.sizes[d])] for d in dims},
        "coordinates": "x, y(, z) are the grid's coefficients along the directions; on a surface z is the metric",
        **{k: ds.attrs[k] for k in MANIFEST_ATTRS if k in ds.attrs},
        "landscape_widgets": package,
    }
