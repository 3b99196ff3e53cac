"""The ipyvolume 3-D views: isosurfaces that lie on their levels, a level slider that moves
them, colours and keys that match the slices, and a byte budget for partial redraws."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import colormaps

from landscape_widgets.core.grids import volume
from landscape_widgets.core.results import empty_landscape, fill_chunk
from landscape_widgets.plotting.isosurfaces import isosurfaces, nested_levels
from landscape_widgets.widgets import volume_views
from landscape_widgets.widgets.volume_views import IsosurfaceView, SurfaceView, colour_key

#: f = 1 + a^2 + 2 b^2 + 3 c^2 on [-1, 1]^3: its level sets are ellipsoids.
WEIGHTS = np.array([1.0, 2.0, 3.0])


def bowl(num: int = 21, done: np.ndarray | None = None):
    grid = volume(num=num)
    ds = empty_landscape(grid, ("loss",), {"normalization": "filter", "directions": "random"})
    index = np.arange(grid.size) if done is None else np.flatnonzero(done)
    c = grid.coords(index)
    fill_chunk(ds, index, {"loss": 1.0 + (c**2 * WEIGHTS).sum(1)})
    return ds


def on_level(vertices: np.ndarray) -> np.ndarray:
    return 1.0 + (vertices**2 * WEIGHTS).sum(1)


def test_nested_levels_end_at_the_outer_one():
    np.testing.assert_allclose(nested_levels(1.0, 4.0, 3), [2.0, 3.0, 4.0])
    np.testing.assert_allclose(nested_levels(1.0, 4.0, 1), [4.0])
    with pytest.raises(ValueError, match="at least 1"):
        nested_levels(1.0, 4.0, 0)


def test_isosurfaces_of_an_ellipsoid_field_lie_on_their_levels():
    ds = bowl(41)
    axes = [ds[n].values for n in ("alpha", "beta", "gamma")]
    (verts, faces), = isosurfaces(axes, ds["loss"].values, [2.5])
    # marching cubes interpolates linearly between grid points: within a cell's curvature error
    np.testing.assert_allclose(on_level(verts), 2.5, atol=0.02)
    assert faces.max() < len(verts) and len(faces) > 500
    with pytest.raises(ValueError, match="outside the metric's range"):
        isosurfaces(axes, ds["loss"].values, [9.0])


def test_isosurface_view_draws_nested_surfaces_coloured_as_the_slices():
    view = IsosurfaceView()
    ds = bowl(21)
    view.update(ds)
    lo, hi = 1.0, 7.0
    choices = np.linspace(lo, hi, volume_views.N_LEVEL_CHOICES + 2)[1:-1]
    outer = choices[volume_views.DEFAULT_LEVEL_INDEX]
    np.testing.assert_allclose(view.levels, nested_levels(lo, outer, 3))
    for mesh, level, opacity in zip(view.meshes, view.levels, volume_views.OPACITIES[3]):
        verts = np.stack([mesh.x, mesh.y, mesh.z], 1)
        assert len(verts) > 50
        np.testing.assert_allclose(on_level(verts), level, atol=0.05)
        expected = colormaps["viridis"]((level - lo) / (hi - lo))[:3]
        np.testing.assert_allclose(mesh.color[0], [*expected, opacity], atol=1e-6)
    # inner surfaces lie inside the outer ones: a smaller ellipsoid
    radii = [np.abs(m.z).max() for m in view.meshes]  # along gamma: all inside the box
    assert radii[0] < radii[1] < radii[2]
    assert "isosurfaces of loss" in view.title.value and "21x21x21 grid, 9,261/9,261 points" in view.title.value
    assert view.level.options[0][0] == f"{choices[0]:.3g}"  # the slider's labels are loss values
    assert "α = alpha (direction 1, filter-normalized units), -1 to 1" in view.key.value
    assert "▼" in view.key.value and "surfaces (▼) at" in view.key.value

    # moving the level slider moves the surfaces; one surface leaves the others empty
    before = np.array(view.meshes[2].x)
    view.level.value = 12
    np.testing.assert_allclose(view.levels[-1], choices[12])
    assert len(view.meshes[2].x) != len(before) or not np.allclose(view.meshes[2].x, before)
    view.count.value = 1
    np.testing.assert_allclose(view.levels, [choices[12]])
    assert len(view.meshes[0].x) > 50 and len(view.meshes[1].x) == len(view.meshes[2].x) == 3
    np.testing.assert_allclose(on_level(np.stack([view.meshes[0].x, view.meshes[0].y, view.meshes[0].z], 1)),
                               choices[12], atol=0.05)


def test_partial_isosurface_redraws_keep_to_the_byte_budget(monkeypatch):
    view = IsosurfaceView()
    done = np.zeros(21**3, bool)
    done[::2] = True
    view.update(bowl(21, done))
    first = np.array(view.meshes[2].x)
    t, sent = view._sent
    assert sent > 1000
    monkeypatch.setattr(volume_views, "MAX_BYTES_PER_SECOND", sent / 3600)  # the next hour is spent
    done[1::4] = True
    view.update(bowl(21, done))
    np.testing.assert_array_equal(view.meshes[2].x, first)  # skipped: within the budget
    assert "/9,261 points" in view.title.value and f"{int(done.sum()):,}" in view.title.value  # the status still moves
    view.update(bowl(21))  # the complete result is always drawn
    assert view._sent[0] > t and not np.array_equal(view.meshes[2].x, first)


def test_surface_view_shows_the_centre_plane_coloured_over_the_volume():
    view = SurfaceView()
    ds = bowl(11)
    view.update(ds)
    plane = ds["loss"].values[:, :, 5]
    np.testing.assert_allclose(np.asarray(view.mesh.y), plane.ravel())
    expected = colormaps["viridis"]((plane.ravel() - 1.0) / 6.0)[:, :3]  # the volume's range, 1 to 7
    np.testing.assert_allclose(view.mesh.color, expected, atol=1e-6)
    assert "the γ = 0 plane as a height surface: height and colour = loss" in view.title.value
    # the box is labelled with single letters (ipyvolume's sprites clip longer names), spelt out in the key
    assert (view.figure.xlabel, view.figure.ylabel, view.figure.zlabel) == ("α", "h", "β")
    assert "h = height = loss" in view.key.value


def test_non_finite_points_are_grey_in_3d_and_counted_in_the_keys():
    """NaN is never a colour of the map (it was the top colour, as if the loss were
    highest there): grey on the height surface, and counted under both views."""
    from matplotlib.colors import to_rgb

    from landscape_widgets.plotting.colours import MISSING_COLOUR

    rgb = volume_views.colours(np.array([np.nan, np.inf, -np.inf, 1.0, 0.0]), (0.0, 1.0))
    np.testing.assert_allclose(rgb[:3], [to_rgb(MISSING_COLOUR)] * 3, atol=1e-6)
    np.testing.assert_allclose(rgb[3:], colormaps["viridis"]([1.0, 0.0])[:, :3], atol=1e-6)
    ds = bowl(11)
    ds["loss"].values[0, 0, :] = np.nan  # computed, not finite: 11 points, one in the centre plane
    surface, iso = SurfaceView(), IsosurfaceView()
    surface.update(ds)
    iso.update(ds)
    colours = np.asarray(surface.mesh.color).reshape(11, 11, 3)
    np.testing.assert_allclose(colours[0, 0], to_rgb(MISSING_COLOUR), atol=1e-6)
    assert not np.allclose(colours[1:, 1:], to_rgb(MISSING_COLOUR), atol=0.05)
    assert "1 point without a finite value" in surface.key.value
    assert "11 points without a finite value" in iso.key.value and "outside the surfaces" in iso.key.value
    clean = SurfaceView()
    clean.update(bowl(11))
    assert "without a finite value" not in clean.key.value


def test_colour_key_has_round_ticks_inside_the_range():
    import re

    def ticks(limits):
        html = colour_key(limits, "loss")
        return [float(t) for t in re.findall(r"translateX\(-50%\)'>([-0-9.]+)</span>", html)]

    assert ticks((0.013, 7.46)) == [1, 2, 3, 4, 5, 6, 7]
    assert ticks((0.02, 0.11)) == [0.02, 0.04, 0.06, 0.08, 0.1]
    assert ticks((100, 1300)) == [200, 400, 600, 800, 1000, 1200]
    # four to nine labels on any range, inside it, a round step apart
    for lo, hi in ((0.8, 5.5), (1.2, 1.9), (0.3, 4.9), (3.1, 9.8), (0.55, 1.45), (10.0, 47.0)):
        t = np.array(ticks((lo, hi)))
        step = np.diff(t)
        mantissa = step[0] / 10 ** np.floor(np.log10(step[0]))
        assert 4 <= len(t) <= 9 and lo <= t.min() and t.max() <= hi, (lo, hi, t)
        assert np.allclose(step, step[0]) and any(np.isclose(mantissa, m) for m in (1, 2, 2.5, 5)), (lo, hi, t)
