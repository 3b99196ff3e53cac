"""Export round trips: files read back with the library that wrote them hold the grid's values."""

import json

import meshio
import numpy as np
import pytest
import trimesh
from scipy.interpolate import RegularGridInterpolator

from landscape_widgets.core.grids import line, plane, volume
from landscape_widgets.core.results import empty_landscape, fill_chunk
from landscape_widgets.runs.export import export_landscape


def landscape(grid):
    ds = empty_landscape(grid, ("loss", "accuracy"), {"seed": 3, "normalization": "filter", "n_params": 67,
                                                      "n_samples": 64, "directions": "random"})
    c = grid.coords(np.arange(grid.size))
    fill_chunk(ds, np.arange(grid.size), {"loss": 0.2 + (c**2 * np.arange(1, grid.ndim + 1)).sum(1),
                                          "accuracy": 1 - 0.1 * np.abs(c).sum(1)})
    return ds


@pytest.mark.parametrize("suffix", [".vtk", ".vtu"])
@pytest.mark.parametrize("grid", [plane(num=(5, 4)), volume(num=(4, 3, 5))], ids=["2d", "3d"])
def test_vtk_holds_every_metric_at_the_grid_points(tmp_path, grid, suffix):
    ds = landscape(grid)
    path = export_landscape(ds, tmp_path / f"r{suffix}")
    mesh = meshio.read(path)
    names = grid.names
    coords = np.stack(np.meshgrid(*[ds[n].values for n in names], indexing="ij"), -1).reshape(-1, grid.ndim)
    np.testing.assert_allclose(mesh.points[:, : grid.ndim], coords)
    for m in ("loss", "accuracy"):
        np.testing.assert_allclose(mesh.point_data[m], ds[m].values.ravel())
    if grid.ndim == 2:
        np.testing.assert_allclose(mesh.points[:, 2], ds["loss"].values.ravel())  # the surface's height
        assert mesh.cells[0].type == "triangle" and len(mesh.cells[0].data) == 2 * 4 * 3
    else:
        assert mesh.cells[0].type == "hexahedron" and len(mesh.cells[0].data) == 3 * 2 * 4
    manifest = json.loads(path.with_name(path.name + ".json").read_text())
    assert manifest["seed"] == 3 and manifest["normalization"] == "filter" and manifest["n_params"] == 67
    assert manifest["grid"][names[0]] == [-1.0, 1.0, grid.shape[0]] and manifest["landscape_widgets"]


@pytest.mark.parametrize("suffix", [".stl", ".obj", ".ply", ".glb"])
def test_surface_mesh_vertices_are_the_grid_and_its_values(tmp_path, suffix):
    ds = landscape(plane(num=(6, 5)))
    path = export_landscape(ds, tmp_path / f"s{suffix}")
    mesh = trimesh.load(path, force="mesh")
    a, b = np.meshgrid(ds["alpha"].values, ds["beta"].values, indexing="ij")
    expected = {(round(x, 5), round(y, 5)): z for x, y, z in zip(a.ravel(), b.ravel(), ds["loss"].values.ravel())}
    got = {(round(x, 5), round(y, 5)): z for x, y, z in mesh.vertices}
    assert got.keys() == expected.keys()
    for key, z in expected.items():
        assert got[key] == pytest.approx(z, rel=1e-6)
    assert len(mesh.faces) == 2 * 5 * 4


def test_isosurfaces_of_a_volume_lie_on_their_levels(tmp_path):
    grid = volume(num=15)
    ds = landscape(grid)
    levels = [0.6, 1.2]
    path = export_landscape(ds, tmp_path / "iso.obj", levels=levels)
    mesh = trimesh.load(path, force="mesh")
    field = RegularGridInterpolator([ds[n].values for n in grid.names], ds["loss"].values)
    on = field(mesh.vertices)
    # every vertex lies on one of the levels (to the trilinear interpolation's accuracy)
    gap = np.min(np.abs(on[:, None] - np.array(levels)[None]), axis=1)
    assert gap.max() < 0.02 and len(mesh.vertices) > 100
    manifest = json.loads((tmp_path / "iso.obj.json").read_text())
    assert manifest["levels"] == levels and manifest["metric"] == "loss"


def test_bad_exports_are_refused(tmp_path):
    ds = landscape(plane(num=3))
    with pytest.raises(ValueError, match="export to"):
        export_landscape(ds, tmp_path / "x.png")
    with pytest.raises(ValueError, match="no surface or volume"):
        export_landscape(landscape(line(num=5)), tmp_path / "x.vtk")
    partial = ds.copy(deep=True)
    partial["done"][0, 0] = False
    with pytest.raises(ValueError, match="not complete"):
        export_landscape(partial, tmp_path / "x.stl")
    with pytest.raises(ValueError, match="outside the metric's range"):
        export_landscape(landscape(volume(num=4)), tmp_path / "x.stl", levels=[100.0])
