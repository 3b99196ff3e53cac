"""The app's loading screen: the first page's picture, shown while the live page starts.

A browser needs a few seconds to start the widgets of a Voila page, and a busy or just
started server longer still. So that a student sees the landscape at once,
``landscape-widgets prepare`` draws the first lesson's first picture (the stored result
its live map starts from) with :func:`~landscape_widgets.plotting.figures.landscape_figure`
into the page's loading screen: :data:`TEMPLATE` (a Voila template on ``lab``) puts it
over the page until the live map is drawn, an error shows, or :data:`STILL_SECONDS`
have passed. :func:`still_path` finds it only while it was made by this very code, so a
changed package never shows an outdated picture.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from ..runs.memo import read_stamp, write_stamp
from ..runs.paths import cache_dir

#: The Voila template of the app (``--template``): Voila's ``lab`` with this loading screen.
TEMPLATE = "landscape"

#: Where the template's own files are: a Jupyter data directory (for ``JUPYTER_PATH``).
TEMPLATE_ROOT = Path(__file__).resolve().parent / "voila_data"

#: Most seconds the picture covers a page whose live map has not been drawn.
STILL_SECONDS = 120

#: The picture covers the page until a heat map is drawn in the page's cells (bqplot hides
#: a mark not drawn yet by its group's ``display``) or an error is shown there, or for
#: STILL_SECONDS at most; once the style has hidden it, :data:`_SCRIPT` removes it, so
#: that a view without a heat map (the 1-D one) does not bring it back.
_STYLE = """<style>
#landscape-still { position: fixed; inset: 0; z-index: 1000; overflow: auto; padding: 12px 32px;
  background: var(--jp-layout-color0, white); color: var(--jp-content-font-color1, black);
  font-family: var(--jp-content-font-family, sans-serif);
  animation: landscape-still-end 0s linear %(seconds)ds forwards; }
#landscape-still h1 { font-weight: 400; margin: 12px 0; }
#landscape-still p { max-width: 62em; }
#landscape-still img { display: block; max-width: 100%%; }
.landscape-still-note { font-style: italic; }
@keyframes landscape-still-end { to { visibility: hidden; } }
body:has(#rendered_cells g:not([style*='display: none']) > image.heatmap[href^='data:image']) #landscape-still,
body:has(#rendered_cells [data-mime-type='application/vnd.jupyter.stderr']) #landscape-still { display: none; }
</style>
"""
_SCRIPT = """<script>
(() => {
  const poll = setInterval(() => {
    const still = document.getElementById("landscape-still");
    if (still === null) { clearInterval(poll); return; }
    if (getComputedStyle(still).display === "none") { still.remove(); clearInterval(poll); }
  }, 200);
})();
</script>
"""


def still_root() -> Path:
    """The Jupyter data directory, in the package cache, where :func:`write_still`
    writes the picture (as the template's ``still.html``)."""
    return cache_dir() / "jupyter"


def _still_dir() -> Path:
    return still_root() / "voila" / "templates" / TEMPLATE


def write_still(ds, title: str, text: str, page_title: str, page_text: str) -> Path:
    """Write the loading screen: the app's ``title`` and ``text``, the first page's
    ``page_title`` and ``page_text``, and ``ds`` (a 2-D result) drawn by
    :func:`~landscape_widgets.plotting.figures.landscape_figure`; returns its path."""
    from ..plotting.figures import landscape_figure

    buf = io.BytesIO()
    landscape_figure(ds).savefig(buf, format="png", dpi=100)
    png = base64.b64encode(buf.getvalue()).decode()
    page = (_STYLE % {"seconds": STILL_SECONDS}
            + f'<div id="landscape-still">\n<h1>{html.escape(title)}</h1>\n<p>{html.escape(text)}</p>\n'
            f"<h3>{html.escape(page_title)}</h3>\n<p>{html.escape(page_text)}</p>\n"
            f'<img src="data:image/png;base64,{png}" alt="the loss landscape of the first page">\n'
            '<p class="landscape-still-note">The live page is starting: in a moment every control works.</p>\n'
            "</div>\n" + _SCRIPT)
    folder = _still_dir()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "still.html.tmp"
    tmp.write_text(page)
    tmp.replace(folder / "still.html")
    write_stamp(folder / "still.json")
    return folder / "still.html"


def still_path() -> Path | None:
    """The loading screen :func:`write_still` made with this package's code, or None
    (none made, or made by other code)."""
    folder = _still_dir()
    path = folder / "still.html"
    return path if read_stamp(folder / "still.json") is not None and path.is_file() else None
