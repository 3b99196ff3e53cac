"""Round tick values and colour levels: one rule for every plot, static or live.

Ticks and contour boundaries are 1, 2, 2.5 or 5 times a power of ten
(:data:`ROUND_STEPS`), so axes and colour bars read 0, 0.5, 1 rather than 0.45, 0.9, 1.35.
"""

from __future__ import annotations

import numpy as np

#: Round tick steps: 1, 2, 2.5 or 5 times a power of ten.
ROUND_STEPS = [1, 2, 2.5, 5, 10]


def _tick_values(lo: float, hi: float, nbins: int) -> np.ndarray:
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(nbins=nbins, steps=ROUND_STEPS).tick_values(lo, hi)


def round_ticks(lo: float, hi: float, nbins: int) -> np.ndarray:
    """Round tick values in ``[lo, hi]``, about ``nbins`` intervals apart."""
    ticks = _tick_values(lo, hi, nbins)
    eps = 1e-9 * max(1.0, abs(hi - lo))
    return ticks[(ticks >= lo - eps) & (ticks <= hi + eps)]


def covering_ticks(lo: float, hi: float, nbins: int) -> np.ndarray:
    """Round values about ``nbins`` intervals apart from the last at or below ``lo`` to
    the first at or above ``hi``: an axis's domain, or a colour bar's contour boundaries
    (a range of one value is widened around it)."""
    if hi <= lo:
        lo, hi = lo - 0.5 * max(abs(lo), 1.0), hi + 0.5 * max(abs(hi), 1.0)
    ticks = _tick_values(lo, hi, nbins)
    eps = 1e-9 * (hi - lo)
    below, above = np.flatnonzero(ticks <= lo + eps), np.flatnonzero(ticks >= hi - eps)
    return ticks[below[-1]: above[0] + 1]


def round_levels(values, n: int) -> np.ndarray:
    """About ``n`` round contour boundaries covering the finite ``values`` (for a
    colour bar with round ticks)."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ValueError("there are no finite values to draw")
    return covering_ticks(float(finite.min()), float(finite.max()), n)


def set_round_ticks(ax, nbins: int = 5) -> None:
    """At most ``nbins`` round ticks on both axes of a matplotlib ``ax``, so their labels
    never run into each other."""
    from matplotlib.ticker import MaxNLocator

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(MaxNLocator(nbins=nbins, steps=ROUND_STEPS))


def round_colour_bar(fig, mappable, ax, label: str, levels: np.ndarray, nbins: int = 6):
    """A colour bar of ``mappable`` (drawn at contour ``levels``) beside ``ax``, with about
    ``nbins`` round ticks whatever the number of levels."""
    bar = fig.colorbar(mappable, ax=ax, label=label)
    bar.set_ticks(round_ticks(float(levels[0]), float(levels[-1]), nbins))
    return bar
