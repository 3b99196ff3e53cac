"""The command line, side by side in one run: the cost of the resumable store, and start-up.

* ``landscape-widgets compute --demo mlp-digits --num N`` with and without ``--no-store``,
  each in a fresh process, ``--pairs`` pairs interleaved in ABBA order (store, no store,
  no store, store, ...) so that a drift of the machine's load falls on both alike. A
  fresh store directory every run, so every run computes. The store's overhead is given
  from the best runs (``min(store) / min(no store) - 1``) and as the median of the
  pairs' ratios; also without the process's start-up (imports, the cached demo model and
  data, one point: ``compute --dims 1 --num 1 --no-store``, best of ``--repeats``), the
  share of the computation itself.
* the same in one process, after a warm-up: ``compute_stored`` (a fresh store root each
  time) against ``compute_landscape``, interleaved, best of ``--pairs // 2``; and the time
  spent in the store's own code, timed inside each stored run (spec hash, lookups,
  creation, writes, final flush): the store's cost free of the load's noise, which on a
  shared 2-core machine (torch's threads descheduled) can double a run.
* start-up: ``landscape-widgets --help``, ``info`` and ``plot`` of a small result, each in
  a fresh process, best of ``--repeats``.

Run it on a quiet machine (the load average is printed)::

    python benchmarks/bench_cli.py [--num 41] [--pairs 6] [--repeats 3]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
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


def _time_store_code(store) -> list[float]:
    """Wrap the store's own steps in ``compute_stored`` (spec hash, cache and store lookups,
    the writer's batching, creation, writes and final flush, the in-memory copy); the
    returned list accumulates their seconds (outermost calls only)."""
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
    return spent


def in_process(num: int, pairs: int, root: Path) -> tuple[list[float], list[float], list[float]]:
    """compute_stored against compute_landscape in this process, as ``compute`` calls them,
    and the seconds of each stored run spent in the store's own code."""
    import torch.nn.functional as F

    import landscape_widgets.runs.store as store
    from landscape_widgets.builtin.training import trained
    from landscape_widgets.builtin.zoo import load_dataset
    from landscape_widgets.core.grids import make_grid
    from landscape_widgets.core.landscape import compute_landscape

    result, _ = trained("mlp", "digits")
    data = load_dataset("digits").train
    grid = make_grid([(-1.0, 1.0)] * 2, num)
    options = dict(seed=0, normalization="filter", bias_bn="ignore", strategy="auto", device="auto")
    compute_landscape(result.model, F.cross_entropy, data, grid, **options)  # warm-up
    spent = _time_store_code(store)
    with_store, without, own = [], [], []
    for i in range(pairs):
        for stored in ((True, False) if i % 2 == 0 else (False, True)):
            store._memory.clear()  # the in-memory cache would serve the finished result
            start = time.perf_counter()
            if stored:
                spent[0] = 0.0
                store.compute_stored(result.model, F.cross_entropy, data, grid, root=root / f"inproc{i}", **options)
                with_store.append(time.perf_counter() - start)
                own.append(spent[0])
            else:
                compute_landscape(result.model, F.cross_entropy, data, grid, **options)
                without.append(time.perf_counter() - start)
    return with_store, without, own


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
            with_store, without, own = in_process(args.num, max(2, args.pairs // 2), tmp)
            print(f"  in one process ({load()}): compute_stored {min(with_store):.2f} s, compute_landscape "
                  f"{min(without):.2f} s (all: {[round(t, 2) for t in with_store]}, "
                  f"{[round(t, 2) for t in without]}); store overhead {_overhead(with_store, without)}")
            print(f"  time in the store's own code (spec hash, lookups, creation, writes, final flush), "
                  f"timed inside each stored run: {1e3 * min(own):.0f} ms best, {1e3 * max(own):.0f} ms worst "
                  f"= {100 * min(own) / min(without):.1f}% / {100 * max(own) / min(without):.1f}% of the best "
                  f"computation, {100 * max(own) / min(plain):.1f}% of the best command", flush=True)
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
