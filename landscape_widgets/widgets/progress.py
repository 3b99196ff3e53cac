"""Progress of a streaming computation: points done/total, points per second, time left, device."""

from __future__ import annotations

import math


def points_done(n_done: int, total: int) -> str:
    """``'1,200/2,601 points'``: how the widgets write a count of points done."""
    return f"{n_done:,}/{total:,} points"


def format_progress(n_done: int, total: int, elapsed: float, device: str, state: str = "",
                    source: str = "") -> str:
    """One line such as ``'1,200/2,601 points · 850 pt/s · 2 s left · device cpu'``, or
    for a result not computed now, the ``source`` it came from instead of a rate and a
    time: ``'2,601/2,601 points · from the run store'``."""
    if source:
        return " · ".join([points_done(n_done, total), source, *filter(None, [state])])
    rate = n_done / elapsed if elapsed > 0 else 0.0
    left = (total - n_done) / rate if rate > 0 else math.inf
    parts = [points_done(n_done, total), f"{rate:.0f} pt/s" if rate else "-- pt/s"]
    if n_done < total:
        parts.append(f"{left:.0f} s left" if math.isfinite(left) else "time left: --")
    else:
        parts.append(f"done in {elapsed:.2f} s")
    parts.append(f"device {device}")
    if state:
        parts.append(state)
    return " · ".join(parts)


class ProgressView:
    """An ipywidgets progress bar with a text line (see :func:`format_progress`)."""

    def __init__(self) -> None:
        import ipywidgets as w

        self.bar = w.IntProgress(value=0, min=0, max=1, description="points", bar_style="info",
                                 layout={"width": "320px"})
        self.text = w.HTML(value="idle")
        self.text.add_class("landscape-progress")
        self.widget = w.HBox([self.bar, self.text])

    def update(self, n_done: int, total: int, elapsed: float, device: str, state: str = "",
               source: str = "") -> None:
        """Show ``n_done`` of ``total`` points after ``elapsed`` seconds on ``device``
        (see :func:`format_progress`)."""
        with self.bar.hold_sync():
            self.bar.max = max(1, total)
            self.bar.value = n_done
            self.bar.bar_style = "success" if n_done >= total else "info"
        self.text.value = format_progress(n_done, total, elapsed, device, state, source)

    def show(self, snap, state: str = "") -> None:
        """Show a :class:`~landscape_widgets.widgets.runner.Snapshot`'s progress."""
        self.update(snap.n_done, snap.total, snap.elapsed, snap.device, state,
                    "from the run store" if snap.stored else "")

    def message(self, text: str, style: str = "", reset: bool = False) -> None:
        """Show a status message (e.g. ``'stopped'`` or an error) next to the bar;
        ``reset`` empties the bar (nothing of the coming run is done yet)."""
        with self.bar.hold_sync():
            self.bar.bar_style = style
            if reset:
                self.bar.value = 0
        self.text.value = text

    def error(self, exc: BaseException) -> None:
        """Show a worker's exception (a :class:`Runner`'s ``on_error``)."""
        self.message(f"error: {exc}", "danger")
