"""The command line, side by side in one run: the cost of the resumable store, and start-up.

* ``landscape-widgets compute --demo mlp-digits --num N`` with and without ``--no-store``,
  each in a fresh process, ``--pairs`` pairs interleaved in ABBA order (store, no store,
  no store, store, ...) so that a drift of the machine's load falls on both alike. A
  fresh store directory every run, so every run computes. The store's overhead is given
  from the best runs (``min(store) / min(no store) - 1``) and as the median of the
  pairs' ratios; also without the process's start-up (imports, the cached demo model and
  data, one point: ``compute --dims 1 --num 1 --no-store``, best of ``--repeats``), the
  share of the computation itself.
* the time spent in the store's own code, timed inside ``--repeats`` more stored
  commands (spec hash, lookups, creation, writes, final flush): the store's cost free of
  the load's noise, which on a shared 2-core machine (torch's threads descheduled) can
  double a run.
* start-up: ``landscape-widgets --help``, ``info`` and ``plot`` of a small result, each in
  a fresh process, best of ``--repeats``.

Run it on a quiet machine (the load average is printed)::

    python benchmarks/bench_cli.py [--num 41] [--pairs 6] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _overhead(store: list[float], plain: list[float], base: float = 0.0) -> str:
    best = 100 * ((min(store) - base) / (min(plain) - base) - 1)
    pairs = statistics.median(100 * ((s - base) / (p - base) - 1) for s, p in zip(store, plain))
    return f"{best:+.1f}% (best runs), {pairs:+.1f}% (median of the pairs)"


#: ``python -c`` this: the ``compute`` command with the store's own steps in
#: ``compute_stored`` timed from inside (spec hash, cache and store lookups, the writer's
#: batching, store creation, writes and final flush, the in-memory copy; outermost calls
#: only); prints ``STORE_SECONDS <seconds>``.
INSTRUMENTED = """
import functools, sys, time
import landscape_widgets.runs.store as store

spent, depth = [0.0], [0]

def wrap(owner, name):
    inner = getattr(owner, name)

    @functools.wraps(inner)
    def timed_step(*args, **kwargs):
        if depth[0]:
            return inner(*args, **kwargs)
        depth[0] += 1
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - start
            depth[0] -= 1

    setattr(owner, name, timed_step)

for name in ("spec_hash", "load_cached", "open_partial", "_remember"):
    wrap(store, name)
for name in ("add", "flush"):
    wrap(store.StoreWriter, name)
from landscape_widgets.app.cli import main
rc = main(sys.argv[1:])
print("STORE_SECONDS", spent[0])
sys.exit(rc)
"""


def store_seconds(args: list[str], env: dict) -> float:
    out = subprocess.run([sys.executable, "-c", INSTRUMENTED, *args], check=True, capture_output=True, text=True,
                         env=env)
    return float(out.stdout.split("STORE_SECONDS", 1)[1].split()[0])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num", type=int, default=41, help="points per axis of the compute runs (default 41)")
    parser.add_argument("--pairs", type=int, default=6, help="interleaved store / no-store pairs (default 6)")
    parser.add_argument("--repeats", type=int, default=3, help="start-up runs, best kept (default 3)")
    parser.add_argument("--skip-compute", action="store_true", help="start-up times only")
    args = parser.parse_args(argv)
    print(f"{load()} (before)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {**os.environ, "LANDSCAPE_WIDGETS_CACHE": str(tmp / "cache")}
        cache = Path(os.environ.get("LANDSCAPE_WIDGETS_CACHE") or Path.home() / ".cache" / "landscape_widgets")
        (tmp / "cache").mkdir()
        for model in cache.glob("*.pt"):  # the trained demo models: no training in the timed runs
            (tmp / "cache" / model.name).symlink_to(model)
        base = ["landscape-widgets", "compute", "--demo", "mlp-digits", "--num", str(args.num), "--quiet"]
        subprocess.run(base + ["--out", str(tmp / "warm.nc"), "--no-store"], check=True, env=env)  # trains if needed
        if not args.skip_compute:
            store, plain = [], []
            for i in range(args.pairs):
                runs = {
                    "store": lambda: store.append(timed(base + ["--out", str(tmp / f"s{i}.nc"),
                                                                "--store", str(tmp / f"runs{i}")], env)),
                    "plain": lambda: plain.append(timed(base + ["--out", str(tmp / f"n{i}.nc"), "--no-store"], env)),
                }
                for name in (("store", "plain") if i % 2 == 0 else ("plain", "store")):
                    runs[name]()
            startup = min(timed(["landscape-widgets", "compute", "--demo", "mlp-digits", "--dims", "1", "--num", "1",
                                 "--quiet", "--no-store", "--out", str(tmp / f"one{i}.nc")], env)
                          for i in range(args.repeats))
            print(f"compute {args.num}x{args.num} ({load()}): store {min(store):.2f} s, no store {min(plain):.2f} s, "
                  f"best of {args.pairs} interleaved pairs (all runs: store {[round(t, 2) for t in store]}, "
                  f"no store {[round(t, 2) for t in plain]})")
            print(f"  store overhead of the command: {_overhead(store, plain)}")
            print(f"  start-up (compute --dims 1 --num 1 --no-store) {startup:.2f} s; "
                  f"store overhead without it: {_overhead(store, plain, startup)}", flush=True)
            own = [store_seconds(base[1:] + ["--out", str(tmp / f"i{i}.nc"), "--store", str(tmp / f"iruns{i}")], env)
                   for i in range(args.repeats)]
            compute = min(plain) - startup
            print(f"  the store's own code (spec hash, lookups, creation, writes, final flush), timed inside "
                  f"{args.repeats} more stored commands: {1e3 * min(own):.0f}-{1e3 * max(own):.0f} ms = "
                  f"{100 * max(own) / min(plain):.1f}% of the best command at most, "
                  f"{100 * max(own) / compute:.1f}% of its computation (best command - start-up) "
                  f"({load()})", flush=True)
        small = tmp / "small.nc"
        subprocess.run(base[:4] + ["--num", "5", "--quiet", "--no-store", "--out", str(small)], check=True, env=env)
        for name, cmd in (("--help", ["landscape-widgets", "--help"]),
                          ("info", ["landscape-widgets", "info", str(small)]),
                          ("plot", ["landscape-widgets", "plot", str(small), "--out", str(tmp / "p.png")])):
            best = min(timed(cmd, env) for _ in range(args.repeats))
            print(f"start-up: landscape-widgets {name}: {best:.2f} s (best of {args.repeats}, {load()})", flush=True)
    print(f"{load()} (after)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
