"""The command line, side by side in one run: the cost of the resumable store, and start-up.

* ``landscape-widgets compute --demo mlp-digits --num N`` with and without ``--no-store``,
  interleaved (store, no store, store, ...), each in a fresh process, best kept; the
  store's overhead is ``store / no-store - 1``. A fresh store directory every run, so
  every run computes.
* start-up: ``landscape-widgets --help``, ``info`` and ``plot`` of a small result, each in
  a fresh process, best of the repeats.

Run it on a quiet machine (the load average is printed)::

    python benchmarks/bench_cli.py [--num 41] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num", type=int, default=41, help="points per axis of the compute runs (default 41)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved pairs / start-up runs (default 3)")
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "LANDSCAPE_WIDGETS_CACHE": str(tmp / "cache")}
        base = ["landscape-widgets", "compute", "--demo", "mlp-digits", "--num", str(args.num), "--quiet"]
        subprocess.run(base + ["--out", str(tmp / "warm.nc"), "--no-store"], check=True, env=env)  # trains once
        store, no_store = [], []
        for i in range(args.repeats):
            store.append(timed(base + ["--out", str(tmp / f"s{i}.nc"), "--store", str(tmp / f"runs{i}")], env))
            no_store.append(timed(base + ["--out", str(tmp / f"n{i}.nc"), "--no-store"], env))
        print(f"compute {args.num}x{args.num}: store {min(store):.2f} s, no store {min(no_store):.2f} s "
              f"(all runs: store {[round(t, 2) for t in store]}, no store {[round(t, 2) for t in no_store]}); "
              f"store overhead {100 * (min(store) / min(no_store) - 1):+.1f}%")
        small = tmp / "small.nc"
        subprocess.run(["landscape-widgets", "compute", "--demo", "mlp-digits", "--num", "5", "--quiet", "--no-store",
                        "--out", str(small)], check=True, env=env)
        for name, cmd in (("--help", ["landscape-widgets", "--help"]),
                          ("info", ["landscape-widgets", "info", str(small)]),
                          ("plot", ["landscape-widgets", "plot", str(small), "--out", str(tmp / "p.png")])):
            best = min(timed(cmd, env) for _ in range(args.repeats))
            print(f"start-up: landscape-widgets {name}: {best:.2f} s")
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
