"""Time the demo explorer on a 51x51 filter-normalized plane: first coarse picture and full map.

    python benchmarks/bench_explorer.py [--threads 2] [--num 51] [--repeats 3]

"First picture" is the time from starting the run (directions drawn, evaluator built,
as the explorer does on every control change) to the first redraw that shows the
whole plane from computed points (the coarsest level of the coarse-to-fine order,
upsampled); "complete" is the time to the last redraw.
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def measure(num: int, seed: int) -> dict:
    from landscape_widgets.widgets.builtin_demo import demo
    from landscape_widgets.core.grids import coarse_to_fine_order

    level_ends = coarse_to_fine_order((num, num))[1]
    ex = demo(view="2d", seed=seed, grids={"2d": (1.0, num)}, autostart=False)
    marks: dict[str, float] = {}
    original = ex._draw

    def draw(snap):
        original(snap)
        if "first_picture_s" not in marks and snap.n_done >= level_ends[0]:
            marks["first_picture_s"] = time.perf_counter() - t0
            marks["first_picture_points"] = snap.n_done

    ex._draw = draw
    t0 = time.perf_counter()
    ex.refresh()
    ex.wait()
    total = time.perf_counter() - t0 - ex.runner.debounce
    marks["first_picture_s"] -= ex.runner.debounce
    n = int(ex.result["done"].values.sum())
    return {**marks, "complete_s": total, "points": n, "points_per_s": n / total,
            "redraws": ex.runner.n_draws, "device": str(ex.result.attrs["device"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--num", type=int, default=51)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runs = [measure(args.num, seed) for seed in range(args.repeats)]
    print(json.dumps({"threads": args.threads, "num": args.num, "runs": runs}, indent=1))


if __name__ == "__main__":
    main()
