"""The teaching app as one widget: a tab per lesson, each page built when first shown."""

from __future__ import annotations

import html
import os

import ipywidgets as w

from .lessons import LESSONS, Lesson, Page, prepared_lessons


class TeachingApp:
    """Tabs of :data:`~landscape_widgets.app.lessons.LESSONS`; display ``.widget``.

    A page is built (and its first picture drawn, from the caches :func:`prepare`
    fills) when its tab is first selected, or before by :meth:`build_ahead`; a page
    built ahead is put into its tab when the tab is first selected, so the browser
    draws only the pages a student opens.

    Attributes
    ----------
    widget : ipywidgets.Tab
    pages : dict of key -> Page
        The pages built so far.
    """

    def __init__(self, lessons: tuple[Lesson, ...] = LESSONS, first: int = 0) -> None:
        self.lessons = lessons
        self.pages: dict[str, Page] = {}
        # every tab says it is being built until it is, also while the kernel is still busy
        # building another one (it then handles the tab's selection late)
        self._boxes = [w.VBox([_intro(item), w.HTML(BUILDING)], layout={"padding": "6px"}) for item in lessons]
        for item, box in zip(lessons, self._boxes):
            box.add_class(f"lesson-{item.key}")
        self.widget = w.Tab(children=self._boxes, titles=[item.title for item in lessons])
        self.widget.add_class("teaching-app")
        self.widget.observe(lambda change: self.show(change["new"]), "selected_index")
        self.widget.selected_index = first
        self.show(first)

    def show(self, index: int | None) -> Page | None:
        """Build page ``index`` if it is not yet, and put it into its tab (the tab's
        ``selected_index``)."""
        if index is None:
            return None
        item = self.lessons[index]
        try:
            page = self.build(item.key)
        except Exception as err:  # say so on the page instead of a blank tab
            self._boxes[index].children = [_intro(item), w.HTML(
                f"<p style='color:#b00'>This page could not be built: {html.escape(type(err).__name__)}: "
                f"{html.escape(str(err))}</p>")]
            raise
        if page.widget not in self._boxes[index].children:
            self._boxes[index].children = [_intro(item), page.widget]
        return page

    def build(self, key: str) -> Page:
        """Page ``key``, built if it is not yet (not put into its tab)."""
        if key not in self.pages:
            self.pages[key] = next(item for item in self.lessons if item.key == key).build()
        return self.pages[key]

    def build_ahead(self, keys) -> None:
        """Build the pages ``keys`` now, before their tabs are selected."""
        for key in keys:
            self.build(key)


#: What a tab shows while its page is built.
BUILDING = "<p><i>Building this page: it appears here once its first picture is computed...</i></p>"


def _intro(item: Lesson) -> w.HTML:
    return w.HTML(f"<h3 style='margin:4px 0'>{html.escape(item.title)}</h3>"
                  f"<p style='max-width:62em;margin:0 0 8px 0'>{html.escape(item.text)}</p>")


#: Most seconds a pre-heated kernel waits for the pages it builds ahead to draw.
AHEAD_TIMEOUT = 120.0


def teaching_app(first: int = 0) -> w.Tab:
    """The app's widget: :class:`TeachingApp` on every lesson, ``first`` shown first.

    In one of Voila's pre-heated kernels (``VOILA_PREHEAT``; no browser has the page
    yet), every other page whose caches :func:`~landscape_widgets.app.lessons.prepare`
    filled with this code (:func:`~landscape_widgets.app.lessons.prepared_lessons`) is
    built ahead and every page's first picture drawn before the cell ends, so a tab shows
    its picture as soon as it is selected. Elsewhere pages are built when first selected:
    widgets made or drawn while a browser loads the page's widget state can reach it
    stale (a map stayed empty).
    """
    app = TeachingApp(first=first)
    if os.environ.get("VOILA_PREHEAT") == "True":
        app.build_ahead([item.key for item in app.lessons if item.key in prepared_lessons()])
        for page in app.pages.values():
            page.wait(AHEAD_TIMEOUT)
    return app.widget
