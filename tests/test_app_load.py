"""Load test: a class of 8 headless Chromium pages against one app server on 2 cores."""

import json

import pytest
from browser_helpers import ARTIFACTS
from class_session import class_session, report

from landscape_widgets.app.lessons import prepare

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_class_of_eight_gets_pictures_and_leaves_nothing_behind():
    prepare(keys=["explorer"], log=lambda _line: None)
    figures = class_session(n_pages=8, cull_idle=30)
    (ARTIFACTS / "class_session.json").write_text(json.dumps(figures, indent=1))
    print(report(figures))
    assert not figures["errors"], figures["errors"]
    assert len(figures["seconds"]) == 8  # every page reached its complete picture
    assert len(figures["still_seconds"]) == 8  # and showed the loading screen's picture before
    assert figures["kernels_while_open"] >= 8
    assert figures["refused_without_token"] and figures["served_with_token"]
    # the pages' kernels are gone within the cull interval (checked every cull/2 s) and some slack
    assert figures["culled_after"] <= figures["cull_idle"] * 1.5 + 30
    assert figures["after_bytes"] <= 1.10 * figures["idle_bytes"], (figures["after_bytes"], figures["idle_bytes"])
    assert figures["left_after_sigterm"] == []
