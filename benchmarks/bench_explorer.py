"""The demo explorer against the bare computation of the same grid: does drawing keep up?

    python benchmarks/bench_explorer.py [--threads 2] [--sizes 2d:51 2d:101 3d:15 3d:41] [--browser]

For each grid (view:points per axis; ``3d:41`` is the largest 3-D grid the controls
offer), measured side by side in one process:

* ``bare_s``: ``compute_landscape`` of the explorer's own objective and directions on
  the grid (exact points, no drawing), in the explorer's worker thread (the thread its
  runs use, with the same torch thread pool);
* ``explorer_s``: the explorer without a page, from the control change (no debounce) to
  its last redraw, as a notebook kernel with no browser attached does it: the coarse
  previews from data samples, the redraws, the caching (medians over ``--repeats``
  direction seeds, each alternated with its bare run, after a warm-up run of both);
* with ``--browser``: the app served by Voila in headless Chromium (the explorer alone,
  on the grid): after its first run, the direction seed moved on the page (seed 1, as
  the first headless repeat), from the key press to the page showing every point
  computed, less the debounce; the kernel-side time of the same run (``done in``) is
  printed beside it.

The ratio ``explorer_s / bare_s`` (and ``browser_s / bare_s``) is what drawing costs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch


def _settings(size: str) -> tuple[str, int]:
    view, num = size.split(":")
    return view, int(num)


def _run(ex) -> None:
    """Wait for the explorer's run, pressing Start when it asks (a run over two minutes)."""
    ex.wait()
    if ex.start_button.layout.display is None:
        ex.start_button.click()
        ex.wait()


def headless(view: str, num: int, repeats: int) -> dict:
    """Bare computation and the explorer, alternated ``repeats`` times on direction seeds
    1, 2, ...; both warmed up first (a 5-point-per-axis run), medians reported."""
    from landscape_widgets import compute_landscape
    from landscape_widgets.widgets.builtin_demo import demo

    ex = demo(view=view, grids={view: (1.0, 5)}, autostart=False, debounce=0.0)
    ex.refresh()
    ex.wait()  # warm-up: first draws, imports
    ex.num.value = num
    _run(ex)
    bare, explorer, redraws = [], [], []
    for seed in range(1, repeats + 1):
        settings = replace(ex.settings, seed=seed)
        directions, _ = ex.plane(settings)
        objective = ex.objective(settings.params)
        timed: list[float] = []

        def compute(cancel, objective=objective, grid=settings.grid, directions=directions, timed=timed):
            t = time.perf_counter()
            compute_landscape(objective, grid=grid, directions=directions)
            timed.append(time.perf_counter() - t)
            yield None

        ex.runner.start(compute, lambda _: None)  # in the explorer's worker thread, as its runs
        ex.wait()
        bare.append(timed[0])
        draws = ex.runner.n_draws
        t = time.perf_counter()
        ex.seed.value = seed  # the explorer's run of the same settings
        _run(ex)
        explorer.append(time.perf_counter() - t)
        redraws.append(ex.runner.n_draws - draws)
    b, e = statistics.median(bare), statistics.median(explorer)
    return {"size": f"{view}:{num}", "points": ex.settings.grid.size, "bare_s": round(b, 2),
            "explorer_s": round(e, 2), "explorer_ratio": round(e / b, 3), "redraws": statistics.median(redraws),
            "ratios": [round(x / y, 3) for x, y in zip(explorer, bare)]}


def in_browser(view: str, num: int, repeats: int) -> dict:
    """The app in headless Chromium: after its first run, the direction seed is moved on the
    page (its slider's arrow key, seeds 1, 2, ... as the headless repeats) and the time is
    taken from that key press to the page showing every point of the new run (less the
    explorer's debounce; Start pressed where the explorer asks for it); medians reported."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from browser_helpers import chromium_page, voila

    from landscape_widgets.app.serve import explorer_notebook, write_notebook

    import tempfile

    debounce = 0.3  # the explorer's default
    total = num ** (("1d", "2d", "3d").index(view) + 1)
    done = re.compile(rf"{total:,}/{total:,} points · .* done in ([0-9.]+) s")

    def finished(page, previous: str = "") -> str:
        start, asked = time.perf_counter(), None
        while time.perf_counter() - start < 1800:
            text = page.inner_text(".landscape-progress")
            if text != previous and done.search(text):
                return text
            if "press Start" in text and text != asked:
                page.locator(".landscape-start-button").click()
                asked = text
            time.sleep(0.05)
        raise TimeoutError(text)

    browser, kernel = [], []
    with tempfile.TemporaryDirectory() as tmp:
        nb = write_notebook(explorer_notebook(grids={view: (1.0, num)}, view=view), Path(tmp) / "bench.ipynb")
        with voila(nb) as url, chromium_page(1300, 1800) as page:
            page.goto(url, timeout=300_000)
            page.wait_for_selector(".landscape-progress", timeout=300_000)
            text = finished(page)
            for _ in range(repeats):
                time.sleep(2.0)
                page.locator(".landscape-seed .noUi-handle").first.focus()
                start = time.perf_counter()
                page.keyboard.press("ArrowRight")  # direction seed +1
                text = finished(page, text)
                browser.append(time.perf_counter() - start - debounce)
                kernel.append(float(done.search(text).group(1)))
    return {"size": f"{view}:{num}", "browser_s": round(statistics.median(browser), 2),
            "kernel_done_in_s": statistics.median(kernel), "browser_runs": [round(b, 2) for b in browser]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", nargs="+", default=["2d:51", "2d:101", "3d:15", "3d:41"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--browser", action="store_true", help="also time the app in headless Chromium")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))  # Voila's kernel
    rows = []
    for size in args.sizes:
        row = headless(*_settings(size), args.repeats)
        if args.browser:
            row.update(in_browser(*_settings(size), args.repeats))
            row["browser_ratio"] = round(row["browser_s"] / row["bare_s"], 3)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(json.dumps({"threads": args.threads, "load_average": os.getloadavg(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
