"""How often a live view may redraw: drawing keeps to a share of the wall time.

A redraw costs time twice: in the kernel (the views' ``update``: interpolation, contours,
meshes) and in the page (applying the messages, painting). A page that falls behind
queues the updates and replays them long after the kernel sent them, so that Stop, sent
after them, shows late. :class:`Pace` measures both costs and lets the next partial
picture be drawn only when drawing has taken at most :data:`DRAW_SHARE` of the time.

The page's part is measured by a round trip that needs no front-end code of its own: the
kernel bumps a counter after each redraw, a ``jsdlink`` in the browser copies it into a
second widget, and that widget's change comes back to the kernel once the page has
applied the messages before it.
"""

from __future__ import annotations

import threading
import time

#: Most share of the wall time spent drawing partial pictures (kernel and page together):
#: a run with a page takes at most about 1 / (1 - DRAW_SHARE) times its computation.
DRAW_SHARE = 0.1
#: Seconds to wait for a page that has acknowledged redraws before, then draw anyway
#: (a closed or reloaded page); also the longest pause a slow page's answer can ask for.
ACK_TIMEOUT = 5.0


class Pace:
    """When the next partial picture may be drawn.

    Parameters
    ----------
    max_rate : float
        Most redraws per second, however cheap they are.
    page : bool
        Measure the page's part too (builds :attr:`widget`: put it in the layout). Without
        it only the kernel's drawing time counts.
    """

    def __init__(self, max_rate: float = 10.0, page: bool = False) -> None:
        if max_rate <= 0:
            raise ValueError(f"max_rate must be positive, got {max_rate}")
        self.period = 1.0 / max_rate
        #: Seconds of the latest redraw, from its start to the page having it (or to the
        #: end of the kernel's part, before the page answers).
        self.cost = 0.0
        self._lock = threading.Lock()
        self._next = -float("inf")
        self._sent: dict[int, float] = {}  # redraw number -> when it started
        self._count = 0
        self._answered = False  # the page has acknowledged a redraw
        self.widget = None
        if page:
            import ipywidgets as w

            self._counter = w.IntText(0)
            self._echo = w.IntText(0)
            self._link = w.jsdlink((self._counter, "value"), (self._echo, "value"))
            self._echo.observe(lambda change: self.seen(int(change["new"])), "value")
            self.widget = w.Box([self._counter, self._echo], layout={"display": "none"})

    def ready(self, now: float | None = None) -> bool:
        """May a partial picture be drawn now?"""
        now = time.monotonic() if now is None else now
        with self._lock:
            if now < self._next:
                return False
            waiting = [t for n, t in self._sent.items() if now - t < ACK_TIMEOUT]
            return not (self._answered and waiting)

    def drawn(self, start: float, end: float) -> int:
        """Record a redraw that ran in the kernel from ``start`` to ``end``
        (``time.monotonic()``); returns its number."""
        with self._lock:
            self._count += 1
            number = self._count
            self.cost = end - start
            self._next = end + max(self.period, self.cost * (1.0 / DRAW_SHARE - 1.0))
            self._sent = {n: t for n, t in self._sent.items() if end - t < ACK_TIMEOUT}
            self._sent[number] = start
        if self.widget is not None:
            self._counter.value = number  # sent after the redraw's own messages
        return number

    def seen(self, number: int, now: float | None = None) -> None:
        """The page has applied redraw ``number`` (and those before it)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            start = self._sent.get(number)
            self._sent = {n: t for n, t in self._sent.items() if n > number}
            first, self._answered = not self._answered, True
            if start is None or first:
                return  # the first answer comes when the page loads: not a redraw's cost
            self.cost = now - start
            wait = max(self.period, self.cost / DRAW_SHARE)
            self._next = max(self._next, min(start + wait, now + ACK_TIMEOUT))
