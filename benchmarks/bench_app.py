"""Time to the first picture of every page of the teaching app, in headless Chromium.

After ``landscape-widgets prepare`` (run here first), the app notebook is served by
Voila as ``landscape-widgets app`` serves it (one pre-heated kernel, the loading screen
with the first page's picture), and opened ``--repeats`` times in a fresh browser:

* **cold**: the page opened as soon as the server listens (its pooled kernel is still
  running the notebook);
* **warm**: the server idle for ``--settle`` seconds first (the pool is ready, the
  other pages built ahead), then every tab pressed in turn.

Times are taken in the page (from navigation, or from the press on a tab): the loading
screen's picture, the first tab's live map, and each tab's picture. Prints each one's
median and worst over the repeats, and the load average.

    python benchmarks/bench_app.py [--repeats 3] [--settle 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from browser_helpers import chromium_page, open_lessons, voila  # noqa: E402

from landscape_widgets.app.lessons import LESSONS, prepare  # noqa: E402
from landscape_widgets.app.serve import app_notebook, write_notebook  # noqa: E402


def one_run(notebook: Path, settle: float) -> dict[str, float]:
    with voila(notebook, pool_size=1, still=True) as url, chromium_page(height=1300) as page:
        time.sleep(settle)
        return open_lessons(page, url, LESSONS if settle else LESSONS[:1])


def _print(what: str, times: list[float]) -> None:
    print(f"  {what:<22} median {statistics.median(times):5.2f} s, worst {max(times):5.2f} s")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--settle", type=float, default=20.0, help="seconds the warm server idles first")
    args = parser.parse_args(argv)
    prepare(log=lambda line: print("prepare:", line))
    with tempfile.TemporaryDirectory() as tmp:
        notebook = write_notebook(app_notebook(), Path(tmp) / "explorer_app.ipynb")
        print(f"load average {os.getloadavg()[0]:.2f}")
        cold = [one_run(notebook, 0.0) for _ in range(args.repeats)]
        warm = [one_run(notebook, args.settle) for _ in range(args.repeats)]
    print("\ncold server, first page:")
    _print("loading screen", [run["still"] for run in cold])
    _print(f"{LESSONS[0].title} (live)", [run[LESSONS[0].key] for run in cold])
    print("warm server (from navigation: the loading screen and the first page; the others from their tab's press):")
    _print("loading screen", [run["still"] for run in warm])
    for item in LESSONS:
        _print(item.title + (" (live)" if item is LESSONS[0] else ""), [run[item.key] for run in warm])
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
