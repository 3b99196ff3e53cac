"""Isosurfaces of a 3-D landscape: triangle meshes where the metric crosses chosen levels.

Headless (numpy and scikit-image), shared by the live 3-D view and the mesh export.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def nested_levels(lo: float, outer: float, count: int) -> np.ndarray:
    """``count`` levels evenly spaced from ``lo`` up to ``outer`` (its last): surfaces
    nested one inside the next around the region where the metric is below ``outer``."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    return lo + (outer - lo) * np.arange(1, count + 1) / count


def isosurfaces(axes: Sequence[np.ndarray], values: np.ndarray,
                levels: Sequence[float]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Marching-cubes meshes of ``values[len(a), len(b), len(c)]`` at each level.

    Parameters
    ----------
    axes : sequence of three 1-D arrays
        The evenly spaced coordinates of the grid's axes.
    values : np.ndarray
        The metric at the grid's points. Non-finite values count as above every level
        (outside every surface).
    levels : sequence of float
        Each strictly inside the range of the finite values.

    Returns
    -------
    list of (vertices, faces)
        Per level, ``[n, 3]`` float vertices in the axes' coordinates and ``[m, 3]``
        integer triangles.
    """
    from skimage.measure import marching_cubes

    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    if values.ndim != 3 or min(values.shape) < 2 or finite.size == 0:
        raise ValueError(f"isosurfaces need a 3-D grid of at least 2 points per axis with finite values, "
                         f"got shape {values.shape}")
    field = np.where(np.isfinite(values), values, finite.max())
    spacing = [float(ax[1] - ax[0]) for ax in axes]
    origin = np.array([float(ax[0]) for ax in axes])
    meshes = []
    for level in levels:
        if not field.min() < level < field.max():
            raise ValueError(f"level {level:g} is outside the metric's range [{field.min():.4g}, {field.max():.4g}]")
        verts, faces, _, _ = marching_cubes(field, level=float(level), spacing=spacing)
        meshes.append((verts + origin, faces))
    return meshes
