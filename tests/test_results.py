"""Landscape datasets: layout, filling, netCDF and zarr round trips."""

import numpy as np
import pytest
import xarray as xr

from landscape_widgets.core.grids import line, plane, volume
from landscape_widgets.core.results import (
    done_indices,
    empty_landscape,
    fill_chunk,
    grid_of,
    load_landscape,
    save_landscape,
)


def _partial(grid, accuracy=True):
    ds = empty_landscape(grid, ("loss", "accuracy") if accuracy else ("loss",), attrs={"seed": 3, "grid": grid.to_dict(), "gone": None, "flag": True})
    idx = np.array([0, 5, grid.size - 1])
    loss = np.array([1.5, np.nan, 0.25])
    fill_chunk(ds, idx, {"loss": loss, "accuracy": np.array([0.1, 0.2, 0.3])} if accuracy else {"loss": loss})
    return ds, idx, loss


def test_empty_and_fill():
    grid = plane((-1, 1), (0, 2), num=(4, 3))
    ds, idx, loss = _partial(grid)
    assert ds["loss"].dims == ("alpha", "beta") and ds["loss"].shape == (4, 3)
    np.testing.assert_allclose(ds["beta"].values, [0, 1, 2])
    np.testing.assert_array_equal(done_indices(ds), idx)
    np.testing.assert_array_equal(ds["loss"].values.reshape(-1)[idx], loss)
    assert np.isnan(ds["loss"].values).sum() == grid.size - 2  # NaN at the gaps and at index 5
    assert ds.attrs["seed"] == 3 and ds.attrs["flag"] == 1 and "gone" not in ds.attrs
    assert grid_of(ds) == grid
    assert "units" in ds["loss"].attrs and "long_name" in ds["alpha"].attrs


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
@pytest.mark.parametrize("grid, accuracy", [(line((-2, 2), num=7), False), (plane(num=5), True), (volume(num=3), True)])
def test_round_trip(tmp_path, suffix, grid, accuracy):
    ds, _, _ = _partial(grid, accuracy)
    path = save_landscape(ds, tmp_path / f"result{suffix}")
    back = load_landscape(path)
    xr.testing.assert_identical(back[["loss"] + (["accuracy"] if accuracy else [])],
                                ds[["loss"] + (["accuracy"] if accuracy else [])])
    assert back["done"].dtype == bool
    np.testing.assert_array_equal(back["done"].values, ds["done"].values)
    assert grid_of(back) == grid
    assert back.attrs["seed"] == 3
    assert back.attrs["grid"] == ds.attrs["grid"]


def test_bad_paths(tmp_path):
    ds, _, _ = _partial(line(num=7))
    with pytest.raises(ValueError, match=".nc or .zarr"):
        save_landscape(ds, tmp_path / "result.csv")
    with pytest.raises(FileNotFoundError):
        load_landscape(tmp_path / "missing.nc")
    xr.Dataset({"x": ("t", [1.0])}).to_netcdf(tmp_path / "other.nc")
    with pytest.raises(ValueError, match="not a landscape"):
        load_landscape(tmp_path / "other.nc")
