"""The teaching app as one widget: a tab per lesson, each page built when first shown."""

from __future__ import annotations

import html

import ipywidgets as w

from .lessons import LESSONS, Lesson, Page


class TeachingApp:
    """Tabs of :data:`~landscape_widgets.app.lessons.LESSONS`; display ``.widget``.

    A page is built (and its first picture drawn, from the caches :func:`prepare`
    fills) when its tab is first selected; the others cost nothing until then.

    Attributes
    ----------
    widget : ipywidgets.Tab
    pages : dict of key -> Page
        The pages built so far.
    """

    def __init__(self, lessons: tuple[Lesson, ...] = LESSONS, first: int = 0) -> None:
        self.lessons = lessons
        self.pages: dict[str, Page] = {}
        self._boxes = [w.VBox([_intro(item)], layout={"padding": "6px"}) for item in lessons]
        for item, box in zip(lessons, self._boxes):
            box.add_class(f"lesson-{item.key}")
        self.widget = w.Tab(children=self._boxes, titles=[item.title for item in lessons])
        self.widget.add_class("teaching-app")
        self.widget.observe(lambda change: self.show(change["new"]), "selected_index")
        self.widget.selected_index = first
        self.show(first)

    def show(self, index: int | None) -> Page | None:
        """Build page ``index`` if it is not yet (the tab's ``selected_index``)."""
        if index is None:
            return None
        item = self.lessons[index]
        if item.key not in self.pages:
            try:
                self.pages[item.key] = page = item.build()
            except Exception as err:  # say so on the page instead of a blank tab
                self._boxes[index].children = [_intro(item), w.HTML(
                    f"<p style='color:#b00'>This page could not be built: {html.escape(type(err).__name__)}: "
                    f"{html.escape(str(err))}</p>")]
                raise
            self._boxes[index].children = [_intro(item), page.widget]
        return self.pages[item.key]


def _intro(item: Lesson) -> w.HTML:
    return w.HTML(f"<h3 style='margin:4px 0'>{html.escape(item.title)}</h3>"
                  f"<p style='max-width:62em;margin:0 0 8px 0'>{html.escape(item.text)}</p>")


def teaching_app(first: int = 0) -> w.Tab:
    """The app's widget: :class:`TeachingApp` on every lesson, ``first`` shown first."""
    return TeachingApp(first=first).widget
