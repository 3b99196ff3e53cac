"""A class on one server: ``--pages`` headless Chromium pages (a browser context each)
open the teaching app at once against one ``landscape-widgets app`` (a token, one
pre-heated kernel, idle cull ``--cull-idle``), then close; then SIGTERM.

Prints the time to each page's complete first picture (median and worst, from
navigation), the server's memory (idle, peak, after the pages closed) and per kernel,
how long the closed pages' kernels lived on, and the load average. The same session is
asserted on by ``tests/test_app_load.py``.

    python benchmarks/bench_class.py [--pages 8] [--cull-idle 30]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from class_session import class_session, report  # noqa: E402

from landscape_widgets.app.lessons import prepare  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=8)
    parser.add_argument("--cull-idle", type=int, default=30)
    args = parser.parse_args(argv)
    prepare(keys=["explorer"], log=lambda line: print("prepare:", line))
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")
    print(report(class_session(args.pages, args.cull_idle)))
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
