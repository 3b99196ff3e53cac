"""The picture of a partly computed grid: the values shown in the cells not computed yet.

Headless (numpy and scipy only), shared by the live views and the benchmarks that
measure how close a partial picture is to the complete one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from ..core.grids import axis_levels, level_axes


def fill_nearest(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Copy each unknown cell from its nearest known cell (coarse pass shown full-size).

    Known cells keep their value (a known NaN stays NaN: a real non-finite loss is shown
    as missing). With no known cell at all, everything stays NaN.
    """
    known = np.asarray(known, dtype=bool)
    if known.all() or not known.any():
        return np.where(known, values, np.nan)
    _, nearest = ndimage.distance_transform_edt(~known, return_indices=True)
    return values[tuple(nearest)]


def interpolate_linear(x: np.ndarray, y: np.ndarray, values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill the unknown cells of ``values[len(x), len(y)]`` by linear interpolation.

    Used for the contour lines of a partial picture, so they are smooth from the first
    coarse pass on. Cells outside the known points' hull, or next to a known NaN, stay NaN.
    """
    from scipy.interpolate import griddata
    from scipy.spatial import QhullError

    known = np.asarray(known, dtype=bool) & np.isfinite(values)
    if known.all() or known.sum() < 3:
        return np.where(known, values, np.nan)
    X, Y = np.meshgrid(x, y, indexing="ij")
    try:
        return griddata((X[known], Y[known]), values[known], (X, Y), method="linear")
    except (QhullError, ValueError):  # degenerate (e.g. collinear) points: no contours yet
        return np.where(known, values, np.nan)


def complete_subgrid(known: np.ndarray) -> list[np.ndarray]:
    """Per-axis indices of the finest coarse-to-fine sub-grid whose every point is known
    (see :func:`~landscape_widgets.core.grids.coarse_to_fine_order`); empty lists when
    not even the first level is."""
    best: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * known.ndim
    for k in range(max(int(axis_levels(n).max()) for n in known.shape) + 1):
        axes = level_axes(known.shape, k)
        if not known[np.ix_(*axes)].all():
            break
        best = axes
    return best


def preview_field(values: np.ndarray, known: np.ndarray, coords: Sequence[np.ndarray]) -> np.ndarray:
    """What to show in every cell of a partly computed grid: :func:`level_interpolation`,
    or before it has a complete level, the nearest known cell's value (:func:`fill_nearest`).

    Parameters
    ----------
    values : np.ndarray
        Values of the known cells (anything elsewhere).
    known : np.ndarray of bool
        Cells with a value (exact or estimated).
    coords : sequence of np.ndarray
        Each axis's coordinates.
    """
    field = level_interpolation(values, known, coords)
    return fill_nearest(values, known) if field is None else field


def level_interpolation(values: np.ndarray, known: np.ndarray, coords: Sequence[np.ndarray]) -> np.ndarray | None:
    """Known cells with their values, the others with a cubic interpolation (linear along
    an axis of fewer than 4 points) of the finest complete coarse-to-fine sub-grid
    (:func:`complete_subgrid`), which on a smooth landscape is already close to the
    complete picture. None before the first level is complete, or where that sub-grid
    holds a non-finite value. Arguments as :func:`preview_field`.
    """
    known = np.asarray(known, dtype=bool)
    if known.all():
        return np.asarray(values)
    if not known.any():
        return None
    from scipy.interpolate import RegularGridInterpolator

    axes = complete_subgrid(known)
    nodes = values[np.ix_(*axes)] if all(len(a) for a in axes) else np.zeros(0)
    if nodes.size == 0 or min(nodes.shape) < 2 or not np.isfinite(nodes).all():
        return None
    method = "cubic" if min(nodes.shape) >= 4 else "linear"
    points = np.stack(np.meshgrid(*coords, indexing="ij"), axis=-1)
    field = RegularGridInterpolator([np.asarray(c)[a] for c, a in zip(coords, axes)], nodes, method=method)(points)
    return np.where(known, values, field)
