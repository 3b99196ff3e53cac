"""The teaching app: every lesson page builds and draws its first picture from the caches
that ``prepare`` fills, without training or evaluating anything; pages are built when
their tab is first shown; the decision-boundary page shows the network at the point."""

import os

import numpy as np
import pytest
import torch

from landscape_widgets.app import lessons
from landscape_widgets.runs import memo
from landscape_widgets.app.teaching_app import TeachingApp
from landscape_widgets.builtin.training import trained

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prepared():
    lessons.prepare(log=lambda _line: None)


def _forbid_computing(monkeypatch):
    """No landscape grid, training run or Lanczos run (a checkpoint's loss may be computed)."""
    import landscape_widgets.analysis.curvature as curvature
    import landscape_widgets.builtin.training as training
    import landscape_widgets.widgets.runner as runner

    def refuse(*args, **kwargs):
        raise AssertionError("a page computed what prepare had cached")

    monkeypatch.setattr(runner, "refining_chunks", refuse)
    monkeypatch.setattr(training, "train", refuse)
    monkeypatch.setattr(curvature, "batched_lanczos_ritz", refuse)  # every Lanczos run goes through it


def _complete(page) -> bool:
    """Every landscape the page computes is complete."""
    results = []
    for item in page.running:
        if hasattr(item, "results"):  # a comparison: every model's
            if set(item.results) != set(item.models):
                return False
            results += list(item.results.values())
        else:
            results.append(item.result)
    return all(ds is not None and bool(ds["done"].values.all()) for ds in results)


def test_every_page_draws_its_first_picture_from_the_caches(prepared, monkeypatch):
    _forbid_computing(monkeypatch)
    app = TeachingApp()
    assert list(app.pages) == ["explorer"]  # only the page shown is built
    for index, item in enumerate(lessons.LESSONS):
        app.widget.selected_index = index
        page = app.pages[item.key]
        assert page.wait(30), item.key
        assert _complete(page), item.key
        assert "could not be built" not in str(app._boxes[index].children[0].value)
    # every model of the explorer's menu, too
    menu = app.pages["explorer"].menu
    for label in lessons.EXPLORER_MODELS:
        menu.value = label
        page = app.pages["explorer"]
        assert page.wait(30) and _complete(page), label
    menu.value = next(iter(lessons.EXPLORER_MODELS))  # back: its finished picture, not "stopped"
    assert "stopped" not in page.running[0].progress.text.value


def test_each_lesson_says_what_to_look_at():
    keys = [item.key for item in lessons.LESSONS]
    assert len(set(keys)) == len(keys)
    for item in lessons.LESSONS:
        sentences = [s for s in item.text.split(". ") if s.strip()]
        assert 2 <= len(sentences) <= 4, (item.key, sentences)
    with pytest.raises(ValueError, match="no lesson"):
        lessons.lesson("nonsense")


def test_the_boundary_page_shows_the_network_at_the_hovered_point(prepared):
    import torch.nn.functional as F

    from landscape_widgets.core.params import flatten_params
    from landscape_widgets.widgets.decision_boundary import BoundaryExplorer
    from landscape_widgets.widgets.explorer import LandscapeExplorer

    result, data = trained("mlp", "moons")
    explorer = LandscapeExplorer(result.model, F.cross_entropy, data.train, grids={"2d": (1.0, 11)},
                                 autostart=False)
    page = BoundaryExplorer(explorer, *data.train)
    # the boundary sits beside the map (the explorer keeps its full width), in the 2-D view only
    beside = explorer.plots.children
    assert beside[0] is explorer.views_of("2d")[0].widget and page.boundary.widget in beside[-1].children
    explorer.view.value = "1d"
    assert all(page.boundary.widget not in getattr(c, "children", ()) for c in explorer.plots.children)
    explorer.view.value = "2d"
    assert explorer.plots.children == beside
    explorer.refresh()
    assert explorer.wait(60)
    assert len(page.targets.x) == 121  # the map's cursor targets: one per grid point
    d1, d2 = explorer.plane(explorer.settings)[0]
    net = page.network_at(0.5, -1.0)
    expected = flatten_params(result.model) + 0.5 * d1 - 1.0 * d2
    torch.testing.assert_close(flatten_params(net), expected)
    page.show(0.0, 0.0)
    with torch.inference_mode():
        centre = result.model(page.boundary.plane_inputs).argmax(1).numpy()
    np.testing.assert_array_equal(page.boundary.region.color.T.ravel(), centre)
    np.testing.assert_array_equal(page.boundary.underlay.color, page.boundary.region.color)  # its copy under it
    page.show(1.0, 1.0)
    far = page.boundary.region.color.T.ravel()
    assert (far != centre).mean() > 0.01  # far out the network predicts otherwise
    assert "alpha = 1.00, beta = 1.00" in page.boundary.widget.title
    explorer.num.value = 7  # a new grid: the targets follow
    assert explorer.wait(60)
    assert len(page.targets.x) == 49
    # a fine grid: at most MAX_TARGETS per axis, symmetric, the trained network among them
    from landscape_widgets.widgets.decision_boundary import MAX_POINTS
    from landscape_widgets.widgets.views import MAX_TARGETS

    explorer.num.value = 31
    assert explorer.wait(60)
    axis = np.unique(np.round(page.targets.x, 9))
    assert len(axis) <= MAX_TARGETS and 0.0 in axis and len(page.targets.x) == len(axis) ** 2
    np.testing.assert_allclose(axis, -axis[::-1])
    assert set(axis) <= set(np.round(np.linspace(-1, 1, 31), 9)) and axis[-1] > 0.9
    assert len(page.boundary.points.x) == MAX_POINTS < len(data.train[0])


def test_the_loading_screen_is_the_first_pages_picture_made_by_this_code(prepared, monkeypatch):
    """prepare draws the first page's first picture, from the very result its live map
    starts from, for the app's loading screen; `landscape-widgets app` shows it while it
    was made by this package's code, and serves with Voila's own template otherwise."""
    import base64
    import io
    import re

    from landscape_widgets.app import serve, still
    from landscape_widgets.plotting.figures import landscape_figure

    path = still.still_path()
    assert path is not None
    html = path.read_text()
    png = base64.b64decode(re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html).group(1))
    first = lessons.LESSONS[0]
    page = first.build()
    assert page.wait(60)
    buf = io.BytesIO()
    landscape_figure(page.running[0].result).savefig(buf, format="png", dpi=100)
    assert png == buf.getvalue()
    assert serve.APP_TITLE in html and first.title in html and first.text in html

    served = []
    monkeypatch.setattr(serve, "run_until_signalled", lambda cmd, env=None: served.append((cmd, env)) or 0)
    serve.serve(open_browser=False)
    monkeypatch.setattr(memo, "code_digest", lambda: "other code")
    assert still.still_path() is None
    serve.serve(open_browser=False)
    (cmd, env), (plain_cmd, plain_env) = served
    assert f"--template={still.TEMPLATE}" in cmd
    assert env["JUPYTER_PATH"].split(os.pathsep)[:2] == [str(still.TEMPLATE_ROOT), str(still.still_root())]
    assert (still.TEMPLATE_ROOT / "voila" / "templates" / still.TEMPLATE / "conf.json").is_file()
    assert not any(arg.startswith("--template") for arg in plain_cmd)
    assert plain_env.get("JUPYTER_PATH") == os.environ.get("JUPYTER_PATH")


def test_prepared_pages_are_built_ahead_and_shown_when_selected(prepared, monkeypatch):
    """In a pre-heated Voila kernel the app builds, before its cell ends, the pages
    prepare made caches for and draws them; a page built ahead enters its tab only when
    the tab is selected (the browser draws only what a student opens). Elsewhere (a
    browser may be loading the widgets' state: a map drawn then can reach it stale), or
    with other code, pages are built when selected."""
    from landscape_widgets.app import teaching_app as ta
    from landscape_widgets.app.teaching_app import BUILDING

    _forbid_computing(monkeypatch)
    assert lessons.prepared_lessons() == {item.key for item in lessons.LESSONS}
    built, original = [], ta.TeachingApp.build_ahead

    def recorded(self, keys):
        built.append(self)
        original(self, keys)

    monkeypatch.setattr(ta.TeachingApp, "build_ahead", recorded)
    monkeypatch.delenv("VOILA_PREHEAT", raising=False)
    ta.teaching_app()
    assert built == []  # not in a pre-heated kernel
    monkeypatch.setenv("VOILA_PREHEAT", "True")
    tab = ta.teaching_app()
    (app,) = built
    assert list(app.pages) == [item.key for item in lessons.LESSONS]
    assert all(_complete(page) for page in app.pages.values())  # drawn before the cell ends
    assert all(box.children[-1].value == BUILDING for box in app._boxes[1:])  # in no tab yet
    boundary = app.pages["boundary"]
    tab.selected_index = 1
    assert app.pages["boundary"] is boundary and app._boxes[1].children[1] is boundary.widget

    monkeypatch.setattr(memo, "code_digest", lambda: "other code")
    assert lessons.prepared_lessons() == set()
    built.clear()
    ta.teaching_app()
    assert list(built[0].pages) == ["explorer"]


def test_a_tab_says_its_page_is_being_built_until_it_is():
    """A tab whose page is not built yet shows a message from the start, then the page."""
    import ipywidgets as w

    from landscape_widgets.app.teaching_app import BUILDING

    seen = []

    def build_first():
        return lessons.Page(w.HTML("first page"))

    def build_second():
        seen.append([getattr(c, "value", "") for c in app.widget.children[1].children])
        return lessons.Page(w.HTML("second page"))

    pages = (lessons.Lesson("a", "A", "the first", build_first), lessons.Lesson("b", "B", "the second", build_second))
    app = TeachingApp(pages)
    # before its selection reaches the kernel (busy building another page), too
    assert app.widget.children[1].children[-1].value == BUILDING
    app.widget.selected_index = 1
    assert seen and seen[0][-1] == BUILDING  # while building
    assert app.widget.children[1].children[-1].value == "second page"
    app.widget.selected_index = 0
    app.widget.selected_index = 1  # built: straight to the page, no message
    assert len(seen) == 1 and app.widget.children[1].children[-1].value == "second page"
