"""Grid specs, their validation, and the coarse-to-fine order."""

import math

import numpy as np
import pytest

from landscape_widgets.core.grids import Axis, Grid, coarse_to_fine_order, line, make_grid, plane, volume


def test_line_plane_volume_shapes_and_coords():
    g = plane((-1, 1), (0, 2), num=(3, 5))
    assert g.shape == (3, 5) and g.size == 15 and g.names == ("alpha", "beta")
    np.testing.assert_allclose(g.coords([0, 14, 7]), [[-1, 0], [1, 2], [0, 1]])
    assert line(0, 1, 11).ndim == 1
    assert volume(num=3).shape == (3, 3, 3)
    assert g.to_dict() == {"alpha": [-1.0, 1.0, 3], "beta": [0.0, 2.0, 5]}


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: line(-1, 1, 0), "at least 1 point"),
        (lambda: plane((-1, 1), num=(5, 0)), "at least 1 point"),
        (lambda: line(float("nan"), 1, 5), "finite"),
        (lambda: plane((-1, math.inf), num=5), "finite"),
        (lambda: line(1, 1, 5), "start != stop"),
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


def test_coarse_to_fine_levels_refine():
    order, ends = coarse_to_fine_order((33, 33))
    starts = np.concatenate([[0], ends[:-1]])
    steps = []
    for s, e in zip(starts, ends):
        i, j = np.unravel_index(order[s:e], (33, 33))
        inner = (i > 0) & (i < 32) & (j > 0) & (j < 32)
        steps.append(np.gcd.reduce(np.concatenate([i[inner] - 16, j[inner] - 16])))
    assert steps[0] > steps[-1] == 1
    with pytest.raises(ValueError, match="no points"):
        coarse_to_fine_order((0, 3))
