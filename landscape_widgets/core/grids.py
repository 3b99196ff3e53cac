"""Grid specifications (line, plane, volume) and their coarse-to-fine point order."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

AXIS_NAMES: tuple[str, ...] = ("alpha", "beta", "gamma")


@dataclass(frozen=True)
class Axis:
    """One grid axis: ``num`` evenly spaced coordinates from ``start`` to ``stop``."""

    name: str
    start: float
    stop: float
    num: int

    def __post_init__(self) -> None:
        if isinstance(self.num, bool) or not isinstance(self.num, (int, np.integer)):
            raise TypeError(f"axis {self.name!r}: num must be an integer, got {self.num!r}")
        if self.num < 1:
            raise ValueError(
                f"axis {self.name!r} has {self.num} points: a grid needs at least 1 point "
                "per axis (use num >= 2 to see a range)"
            )
        for label, v in (("start", self.start), ("stop", self.stop)):
            if not math.isfinite(v):
                raise ValueError(f"axis {self.name!r}: {label} must be finite, got {v}")
        if self.num > 1 and self.start == self.stop:
            raise ValueError(
                f"axis {self.name!r}: start and stop are both {self.start}; give a range "
                "with start != stop, or num=1"
            )

    @property
    def values(self) -> np.ndarray:
        """The coordinates along the axis."""
        return np.linspace(self.start, self.stop, self.num)


@dataclass(frozen=True)
class Grid:
    """A 1-, 2- or 3-D grid of coefficients along the directions."""

    axes: tuple[Axis, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.axes) <= 3:
            raise ValueError(f"a grid has 1, 2 or 3 axes, got {len(self.axes)}")

    @property
    def ndim(self) -> int:
        return len(self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(a.num for a in self.axes)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.axes)

    def coords(self, flat_indices: np.ndarray) -> np.ndarray:
        """Coefficients ``[k, ndim]`` of the points with the given flat indices."""
        idx = np.unravel_index(np.asarray(flat_indices, dtype=np.int64), self.shape)
        return np.stack([a.values[i] for a, i in zip(self.axes, idx)], axis=-1)

    def scaled(self, factor: float) -> Grid:
        """The same grid with every axis range multiplied by ``factor`` (> 0)."""
        if not factor > 0:
            raise ValueError(f"a grid's scale factor must be > 0, got {factor}")
        return Grid(tuple(Axis(a.name, a.start * factor, a.stop * factor, a.num) for a in self.axes))

    def to_dict(self) -> dict:
        """Plain description, e.g. for result attributes and cache keys."""
        return {a.name: [float(a.start), float(a.stop), int(a.num)] for a in self.axes}


def _range(r: tuple[float, float], which: str) -> tuple[float, float]:
    try:
        start, stop = r
    except (TypeError, ValueError):
        raise ValueError(f"{which} must be a (start, stop) pair, got {r!r}") from None
    return float(start), float(stop)


def make_grid(
    ranges: list[tuple[float, float]] | tuple[tuple[float, float], ...],
    num: int | list[int] | tuple[int, ...],
) -> Grid:
    """A grid with one ``(start, stop)`` range and one number of points per axis.

    ``num`` may be one integer for all axes.
    """
    ranges = list(ranges)
    if not 1 <= len(ranges) <= 3:
        raise ValueError(f"give 1, 2 or 3 axis ranges, got {len(ranges)}")
    if isinstance(num, (int, np.integer)):
        nums = [num] * len(ranges)
    elif isinstance(num, (list, tuple, np.ndarray)):
        nums = list(num)
    else:
        raise TypeError(f"num must be an integer, or one integer per axis, got {num!r}")
    if len(nums) != len(ranges):
        raise ValueError(f"{len(ranges)} ranges but {len(nums)} point counts")
    return Grid(
        tuple(
            Axis(name, *_range(r, f"range of {name}"), n)
            for name, r, n in zip(AXIS_NAMES, ranges, nums)
        )
    )


def line(alpha: tuple[float, float] = (-1.0, 1.0), num: int = 51) -> Grid:
    """A 1-D grid along one direction (coordinate ``alpha``), e.g. ``line((-1, 1), num=51)``."""
    return make_grid([alpha], num)


def plane(
    alpha: tuple[float, float] = (-1.0, 1.0),
    beta: tuple[float, float] | None = None,
    num: int | tuple[int, int] = 51,
) -> Grid:
    """A 2-D grid (``alpha`` x ``beta``); ``beta`` defaults to ``alpha``'s range."""
    return make_grid([alpha, alpha if beta is None else beta], num)


def volume(
    alpha: tuple[float, float] = (-1.0, 1.0),
    beta: tuple[float, float] | None = None,
    gamma: tuple[float, float] | None = None,
    num: int | tuple[int, int, int] = 21,
) -> Grid:
    """A 3-D grid (``alpha`` x ``beta`` x ``gamma``); missing ranges copy ``alpha``."""
    return make_grid([alpha, beta or alpha, gamma or alpha], num)


def default_grid(n_directions: int = 2) -> Grid:
    """The grid used when none is given: 51 points on [-1, 1] for a line or a plane
    (the paper's figures), 21 per axis for a volume."""
    return {1: line, 2: plane, 3: volume}[n_directions]()


#: Points per axis of the first coarse-to-fine level (evenly spread, both ends and the
#: centre included): on smooth landscapes a cubic interpolation of this sub-grid is
#: already close to the complete picture.
FIRST_LEVEL_POINTS = 7


def axis_levels(n: int, first: int = FIRST_LEVEL_POINTS) -> np.ndarray:
    """Per-index level of one axis of ``n`` points (0 the coarsest).

    Level 0 holds ``first`` evenly spread indices (both ends and the centre
    ``(n - 1) // 2`` included); each further level adds the midpoint of every gap left,
    so every level halves the spacing and the indices of levels ``<= k`` are a sub-grid.
    """
    if n < 1:
        raise ValueError(f"an axis needs at least one point, got {n}")
    level = np.full(n, -1, dtype=np.int64)
    # sorted sets, not np.union1d / np.unique, which import numpy.ma (16-27 ms in a fresh process)
    spread = np.round(np.linspace(0, n - 1, min(n, first))).astype(np.int64)
    known = np.array(sorted({*spread.tolist(), (n - 1) // 2}), dtype=np.int64)
    level[known] = 0
    k = 0
    while (level < 0).any():
        k += 1
        gaps = np.diff(known) > 1
        new = (known[:-1][gaps] + known[1:][gaps]) // 2
        level[new] = k
        known = np.array(sorted({*known.tolist(), *new.tolist()}), dtype=np.int64)
    return level


def point_levels(shape: tuple[int, ...], flat: np.ndarray | None = None) -> np.ndarray:
    """The coarse-to-fine level of grid points (flat indices; default every point): the
    finest of their axes' levels (:func:`axis_levels`)."""
    flat = np.arange(int(np.prod(shape))) if flat is None else np.asarray(flat)
    where = np.unravel_index(flat, shape)
    return np.maximum.reduce([axis_levels(n)[i] for n, i in zip(shape, where)])


def level_axes(shape: tuple[int, ...], level: int) -> list[np.ndarray]:
    """Per-axis indices of the points of levels ``<= level``: their sub-grid is the outer
    product of these index sets."""
    return [np.flatnonzero(axis_levels(n) <= level) for n in shape]


def coarse_to_fine_order(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices of a grid ordered coarse to fine, and where each level ends.

    A point belongs to the finest of its axes' levels (:func:`axis_levels`), so the
    first level is a sub-grid of :data:`FIRST_LEVEL_POINTS` evenly spread points per
    axis spanning the whole range, and the points of the first ``k`` levels always form
    a sub-grid (the outer product of per-axis index sets). Within a level, points nearer
    the centre come first. Every index appears exactly once.

    Returns
    -------
    order : np.ndarray
        Permutation of ``range(prod(shape))``.
    level_ends : np.ndarray
        Positions in ``order`` where each level ends (the last equals the grid size).
    """
    if not shape or min(shape) < 1:
        raise ValueError(f"grid shape {shape} has no points")
    level = point_levels(shape)
    centre = [((n - 1) // 2) for n in shape]
    idx = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    dist = sum(((i.reshape(-1) - c) / max(n, 1)) ** 2 for i, c, n in zip(idx, centre, shape))
    order = np.lexsort((dist, level))
    return order.astype(np.int64), np.cumsum(np.bincount(level))


def grid_triangles(n: int, m: int) -> np.ndarray:
    """Triangles ``[2 (n-1)(m-1), 3]`` of an ``n x m`` vertex grid (row-major vertices)."""
    i, j = np.meshgrid(np.arange(n - 1), np.arange(m - 1), indexing="ij")
    a = (i * m + j).ravel()
    b, c = a + 1, a + m
    return np.concatenate([np.stack([a, b, c + 1], 1), np.stack([a, c + 1, c], 1)]).astype(np.uint32)
