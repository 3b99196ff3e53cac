"""Redraw pacing: drawing keeps to a fifth of the wall time, and a page that has answered
before is waited for (not flooded), up to a timeout."""

from __future__ import annotations

import time

import pytest

from landscape_widgets.widgets import pacing
from landscape_widgets.widgets.pacing import DRAW_SHARE, Pace
from landscape_widgets.widgets.runner import Runner


def test_cheap_draws_keep_to_max_rate_and_costly_ones_to_their_share():
    pace = Pace(max_rate=10.0)
    assert pace.ready(0.0)
    pace.drawn(0.0, 0.001)  # cheap: the rate limit decides
    assert not pace.ready(0.05) and pace.ready(0.101)
    pace.drawn(1.0, 1.5)  # half a second of drawing: wait four times as long after it
    assert not pace.ready(1.5 + 1.99) and pace.ready(1.5 + 0.5 * (1 / DRAW_SHARE - 1) + 1e-9)


def test_a_page_that_answers_is_waited_for_and_its_lag_counts():
    pace = Pace(max_rate=10.0)
    pace.drawn(-30.0, -29.99)
    pace.seen(1, now=-0.5)  # the page loads long after that redraw: its first answer measures nothing
    assert pace.cost == pytest.approx(0.01) and pace.ready(-0.4)
    pace.drawn(0.0, 0.01)
    pace.seen(2, now=0.05)  # the page applied it 50 ms after the start
    assert pace.cost == pytest.approx(0.05)
    assert not pace.ready(0.2) and pace.ready(0.05 / DRAW_SHARE + 1e-9)
    pace.drawn(1.0, 1.01)
    assert not pace.ready(2.0)  # not answered yet: the page is behind
    pace.seen(3, now=1.3)  # 0.3 s behind: the next draw waits 0.3 s / DRAW_SHARE from the start
    assert not pace.ready(1.0 + 0.3 / DRAW_SHARE - 0.01) and pace.ready(1.0 + 0.3 / DRAW_SHARE + 0.01)
    pace.drawn(5.0, 5.01)
    pace.seen(4, now=8.0)  # very slow: the wait is at most ACK_TIMEOUT from the answer
    assert not pace.ready(8.0 + pacing.ACK_TIMEOUT - 0.1) and pace.ready(8.0 + pacing.ACK_TIMEOUT)
    pace.drawn(20.0, 20.01)
    assert not pace.ready(20.0 + pacing.ACK_TIMEOUT - 0.1)
    assert pace.ready(20.0 + pacing.ACK_TIMEOUT + 0.1)  # a page gone for good is not waited for


def test_a_page_that_never_answered_is_not_waited_for():
    pace = Pace(max_rate=10.0)
    pace.drawn(0.0, 0.01)
    assert pace.ready(0.2)  # e.g. no browser at all: the kernel's time alone counts


def test_runner_draws_take_at_most_their_share_of_the_wall_time():
    drawing = []

    def work(cancel):
        for i in range(200):
            time.sleep(0.01)
            yield i

    def draw(i):
        t = time.monotonic()
        time.sleep(0.05)  # a costly redraw
        drawing.append(time.monotonic() - t)

    runner = Runner(max_rate=100.0, debounce=0.0)
    start = time.monotonic()
    runner.start(work, draw)
    assert runner.wait(60)
    wall = time.monotonic() - start
    assert 3 <= len(drawing) and sum(drawing) <= 1.3 * DRAW_SHARE * wall + 0.05  # the final draw comes extra
