"""Grid specs, their validation, and the coarse-to-fine order."""

import math

import numpy as np
import pytest

from landscape_widgets.core.grids import (
    FIRST_LEVEL_POINTS, Axis, Grid, axis_levels, coarse_to_fine_order, level_axes, line, make_grid, plane,
    point_levels, volume,
)


def test_line_plane_volume_shapes_and_coords():
    g = plane((-1, 1), (0, 2), num=(3, 5))
    assert g.shape == (3, 5) and g.size == 15 and g.names == ("alpha", "beta")
    np.testing.assert_allclose(g.coords([0, 14, 7]), [[-1, 0], [1, 2], [0, 1]])
    assert line((0, 1), num=11).ndim == 1
    assert volume(num=3).shape == (3, 3, 3)
    assert g.to_dict() == {"alpha": [-1.0, 1.0, 3], "beta": [0.0, 2.0, 5]}


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: line((-1, 1), num=0), "at least 1 point"),
        (lambda: plane((-1, 1), num=(5, 0)), "at least 1 point"),
        (lambda: line((float("nan"), 1), num=5), "finite"),
        (lambda: plane((-1, math.inf), num=5), "finite"),
        (lambda: line((1, 1), num=5), "start != stop"),
        (lambda: make_grid([(0, 1)] * 4, 3), "1, 2 or 3"),
        (lambda: make_grid([], 3), "1, 2 or 3"),
        (lambda: make_grid([(0, 1), (0, 1)], [3, 3, 3]), "point counts"),
        (lambda: make_grid([(0, 1, 2)], 3), "start, stop"),
        (lambda: Grid(()), "1, 2 or 3"),
    ],
)
def test_bad_specs_are_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_non_integer_resolution():
    with pytest.raises(TypeError, match="integer"):
        Axis("alpha", 0, 1, 2.5)
    for make in (lambda: line(num=5.5), lambda: plane(num=None)):
        with pytest.raises(TypeError, match="num must be an integer, or one integer per axis"):
            make()


def test_line_takes_its_range_as_plane_and_volume_do():
    g = line((-2, 2), num=5)
    assert g == make_grid([(-2, 2)], 5) and g.axes[0] == plane((-2, 2), num=5).axes[0]
    np.testing.assert_allclose(g.coords([0, 4]), [[-2], [2]])
    with pytest.raises(ValueError, match=r"must be a \(start, stop\) pair, got -1"):
        line(-1, 5)


@pytest.mark.parametrize("shape", [(1,), (2,), (21,), (51,), (21, 21), (51, 51), (7, 30), (11, 11, 11)])
def test_coarse_to_fine_is_a_permutation(shape):
    order, ends = coarse_to_fine_order(shape)
    size = int(np.prod(shape))
    assert np.array_equal(np.sort(order), np.arange(size))
    assert ends[-1] == size and np.all(np.diff(ends) > 0)


@pytest.mark.parametrize("shape, at_most", [((51, 51), 0.05), ((21, 21), 0.12), ((21, 21, 21), 0.05), ((101,), 0.15)])
def test_first_level_is_a_small_spanning_subgrid(shape, at_most):
    order, ends = coarse_to_fine_order(shape)
    first = order[: ends[0]]
    assert ends[0] / np.prod(shape) <= at_most
    idx = np.unravel_index(first, shape)
    for axis, n in zip(idx, shape):  # the first picture covers the whole range of every axis
        assert axis.min() == 0 and axis.max() == n - 1
    # the centre point is computed first
    assert np.unravel_index(order[0], shape) == tuple((n - 1) // 2 for n in shape)


@pytest.mark.parametrize("shape", [(33, 33), (51, 51), (30, 7), (21, 21, 21)])
def test_coarse_to_fine_levels_are_sub_grids_that_refine(shape):
    order, ends = coarse_to_fine_order(shape)
    gaps = []
    for end in ends:
        done = np.zeros(int(np.prod(shape)), dtype=bool)
        done[order[:end]] = True
        done = done.reshape(shape)
        axes = [np.flatnonzero(done.any(axis=tuple(j for j in range(len(shape)) if j != i)))
                for i in range(len(shape))]
        # the points of the first levels are exactly the outer product of per-axis indices
        assert done[np.ix_(*axes)].all() and done.sum() == np.prod([len(a) for a in axes])
        gaps.append(max(int(np.diff(a).max(initial=1)) for a in axes))
    first_axes = [np.flatnonzero(axis_levels(n) == 0) for n in shape]
    assert all(len(a) == min(n, FIRST_LEVEL_POINTS) for a, n in zip(first_axes, shape))
    assert gaps[-1] == 1 and all(b <= (a + 1) // 2 + 1 for a, b in zip(gaps, gaps[1:]))


def test_coarse_to_fine_rejects_an_empty_grid():
    with pytest.raises(ValueError, match="no points"):
        coarse_to_fine_order((0, 3))


@pytest.mark.parametrize("shape", [(51,), (15, 9), (13, 1), (9, 5, 7)])
def test_point_levels_follow_the_order_and_level_axes_span_their_points(shape):
    order, ends = coarse_to_fine_order(shape)
    levels = point_levels(shape, order)
    assert np.all(np.diff(levels) >= 0) and np.array_equal(np.flatnonzero(np.diff(levels)) + 1, ends[:-1])
    assert np.array_equal(point_levels(shape), point_levels(shape, np.arange(int(np.prod(shape)))))
    for k in range(int(levels.max()) + 1):
        inside = np.ravel_multi_index(np.meshgrid(*level_axes(shape, k), indexing="ij"), shape).reshape(-1)
        assert np.array_equal(np.sort(inside), np.sort(order[: ends[k]]))  # the first k + 1 levels
