"""Serve a notebook (Voila, JupyterLab, Notebook 7) on a free localhost port and open it
in headless Chromium (Playwright)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def require_chromium() -> str:
    """Chromium's path; skip the test without it, unless ``CI`` is set (then fail)."""
    path = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing on CI: apt-get install -y chromium")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return path


def wait_until(check, timeout: float, what: str):
    """``check()``'s first true value, polled until ``timeout`` seconds (then AssertionError)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def voila(notebook: Path, timeout: float = 60.0, pool_size: int = 0, still: bool = False) -> Iterator[str]:
    """Serve ``notebook`` with Voila (``pool_size`` pre-heated kernels: none by default,
    so a page's kernel starts when it opens; ``still``: the app's loading screen); yields
    its URL; stops the server afterwards."""
    from landscape_widgets.app.serve import voila_command, voila_env

    port = free_port()
    with _served(voila_command(notebook, port, open_browser=False, pool_size=pool_size, still=still), port,
                 notebook, "voila", timeout, env=voila_env(still)) as url:
        yield url


@contextlib.contextmanager
def jupyter(app: str, notebook: Path, timeout: float = 60.0) -> Iterator[str]:
    """Serve ``notebook``'s folder with JupyterLab (``app="lab"``) or Notebook 7
    (``"notebook"``), no token (nor XSRF check), the front-end app exposed as
    ``window.jupyterapp``, the notebook's kernel started; yields the notebook's URL."""
    port = free_port()
    expose = {"lab": "LabApp", "notebook": "JupyterNotebookApp"}[app]
    cmd = [sys.executable, "-m", "jupyter", app, "--no-browser", "--allow-root",
           f"--port={port}", "--IdentityProvider.token=", "--ServerApp.password=",
           f"--ServerApp.root_dir={notebook.parent}", f"--{expose}.expose_app_in_browser=True",
           "--ServerApp.disable_check_xsrf=True"]
    with _served(cmd, port, notebook, f"jupyter-{app}", timeout) as url:
        # Start the notebook's kernel before the page opens: when the page creates the
        # session itself, its first kernel websocket often fails with a 500
        # (jupyter_server issue 1265) and the cells never run.
        session = {"path": notebook.name, "type": "notebook", "name": notebook.name,
                   "kernel": {"name": "python3"}}
        urllib.request.urlopen(urllib.request.Request(
            url + "api/sessions", data=json.dumps(session).encode(), method="POST",
            headers={"Content-Type": "application/json"}), timeout=30)
        yield url + ("lab/tree/" if app == "lab" else "notebooks/") + notebook.name


@contextlib.contextmanager
def _served(cmd: list[str], port: int, notebook: Path, server: str, timeout: float,
            env: dict[str, str] | None = None) -> Iterator[str]:
    """Run a notebook server (in ``env``) until it answers on ``port``; its log goes to
    ``test-artifacts/<notebook>.<server>.log``."""
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / f"{notebook.stem}.{server}.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=notebook.parent, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{server} exited with {proc.returncode}; see {log.name}")
            try:  # any HTTP answer (Voila refuses this path with 403) means the server is up
                urllib.request.urlopen(url + "api/status", timeout=2)
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{server} did not answer on {url} within {timeout} s") from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@contextlib.contextmanager
def chromium_page(width: int = 1300, height: int = 1100):
    """A Playwright page in headless Chromium (Debian's binary)."""
    from playwright.sync_api import sync_playwright

    executable = require_chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(120_000)
            yield page
        finally:
            browser.close()


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot under ``test-artifacts/``."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


#: JavaScript: the texts under ``selector`` (SVG text of bqplot figures, HTML of keys and
#: titles) that stick out of their figure or widget box, i.e. are clipped.
CLIPPED_JS = """(selector) => {
    const out = [];
    for (const root of document.querySelectorAll(selector)) {
        for (const svg of root.querySelectorAll('svg.svg-figure')) {
            const box = svg.getBoundingClientRect();
            for (const t of svg.querySelectorAll('text')) {
                const r = t.getBoundingClientRect();
                if (r.width && (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1
                                || r.bottom > box.bottom + 1)) out.push(t.textContent);
            }
        }
        for (const el of root.querySelectorAll('.widget-html-content')) {
            if (el.scrollWidth > el.clientWidth + 1) out.push(el.innerText);
        }
    }
    return out;
}"""


#: JavaScript: the tick labels of every bqplot axis under ``selector``, one list per axis.
AXIS_TICKS_JS = ("(selector) => [...document.querySelectorAll(selector + ' g.axis')]"
                 ".map(a => [...a.querySelectorAll('g.tick text')].map(t => t.textContent))")


def misread_axes(axes: list[list[str]]) -> list[list[str]]:
    """The axes (lists of tick labels) whose labels do not read as distinct, evenly spaced
    numbers: round ticks written in too few decimals ("-0.1 0.0 0.1 0.1" for steps of 0.05)."""
    bad = []
    for labels in axes:
        values = [float(t.replace("\u2212", "-").replace(",", "")) for t in labels if t.strip()]
        steps = np.diff(values)
        if len(values) > 2 and not (np.all(steps != 0) and np.allclose(steps, steps[0], rtol=1e-6)):
            bad.append(labels)
    return bad


#: What shows that a lesson page has drawn its picture: (selector, how many); each heat
#: map is drawn twice, over a copy of itself (``seamless_heatmap``).
LESSON_PICTURES = {
    "explorer": ("image.heatmap[href^='data:image']", 2),
    "boundary": ("image.heatmap[href^='data:image']", 4),
    "trajectory": ("image.heatmap[href^='data:image']", 2),
    "interpolation": ("path.line", 4),
    "comparison": ("image.heatmap[href^='data:image']", 8),
    "connectivity": ("image.heatmap[href^='data:image']", 2),
    "curvature": ("image.heatmap[href^='data:image']", 2),
}


#: JavaScript: how many of the elements ``selector`` finds are shown (bqplot hides a mark
#: by its group's ``display``, e.g. a map not drawn yet).
SHOWN_JS = ("(selector) => [...document.querySelectorAll(selector)]"
            ".filter(el => getComputedStyle(el.parentNode).display !== 'none').length")


def lesson_drawn_js(key: str) -> str:
    """A JavaScript predicate: the lesson page ``key`` has drawn its picture."""
    selector, count = LESSON_PICTURES[key]
    return f"() => ({SHOWN_JS})({repr(f'.lesson-{key} ' + selector)}) >= {count}"


def lesson_drawn(page, key: str) -> bool:
    return bool(page.evaluate(lesson_drawn_js(key)))


#: Notes in ``window.lessonMarks`` when (ms after navigation) each tab is pressed and
#: each lesson's picture is drawn (``LESSON_PICTURES``), timed in the page itself.
LESSON_MARKS = """
window.lessonMarks = {pressed: {}, drawn: {}};
document.addEventListener('pointerdown', (event) => {
  const tab = event.target.closest && event.target.closest('.lm-TabBar-tab');
  if (tab) window.lessonMarks.pressed[tab.textContent.trim()] = performance.now();
}, true);
const lessonsDrawn = () => {
  for (const [key, [selector, count]] of Object.entries(%s))
    if (!(key in window.lessonMarks.drawn) && (%s)('.lesson-' + key + ' ' + selector) >= count)
      window.lessonMarks.drawn[key] = performance.now();
};
new MutationObserver(lessonsDrawn).observe(document, {subtree: true, childList: true, attributes: true});
setInterval(lessonsDrawn, 20);
"""


#: Notes in ``window.stillMarks`` when (ms after navigation) the loading screen's picture
#: is shown (loaded, visible), when a heat map of the live page is drawn and when the
#: picture is gone.
STILL_MARKS = """
window.stillMarks = {};
const check = () => {
  const m = window.stillMarks, now = performance.now(), img = document.querySelector('#landscape-still img');
  if (!('still' in m) && img && img.complete && img.naturalWidth > 0 && img.getBoundingClientRect().height > 0
      && getComputedStyle(img).visibility === 'visible') { m.still = now; m.width = img.naturalWidth; }
  if (!('live' in m) && document.querySelector(
      "#rendered_cells g:not([style*='display: none']) > image.heatmap[href^='data:image']")) m.live = now;
  const still = document.querySelector('#landscape-still');
  if (!('gone' in m) && 'still' in m && (!still || getComputedStyle(still).display === 'none')) m.gone = now;
};
new MutationObserver(check).observe(document, {subtree: true, childList: true, attributes: true});
setInterval(check, 20);
"""


def open_lessons(page, url: str, lessons) -> dict[str, float]:
    """Open the app and every tab in turn: seconds from the page's navigation (the first
    tab) or the press on the tab (the others) until its picture is drawn, timed in the
    page (Playwright's own round trips left out); ``"still"``: seconds from navigation
    until the loading screen's picture showed, when it did (``STILL_MARKS``)."""
    page.add_init_script(LESSON_MARKS % (json.dumps(LESSON_PICTURES), SHOWN_JS))
    page.add_init_script(STILL_MARKS)
    for i, item in enumerate(lessons):
        if i == 0:
            page.goto(url, timeout=120_000)
        else:
            page.locator(".lm-TabBar-tab", has_text=item.title).click()
        page.wait_for_function(lesson_drawn_js(item.key), timeout=120_000)
        time.sleep(0.5)
        screenshot(page, f"30_lesson_{i}_{item.key}")
    marks, still = page.evaluate("[window.lessonMarks, window.stillMarks]")
    seconds = {item.key: (marks["drawn"][item.key] - (marks["pressed"][item.title] if i else 0.0)) / 1000
               for i, item in enumerate(lessons)}
    return {**seconds, **({"still": still["still"] / 1000} if "still" in still else {})}
