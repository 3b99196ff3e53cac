"""Points per second of the convexity map |λ_min / λ_max| (Li et al. 2018): the plain
algorithm against the fast path, side by side in one run.

The demo model: the digits MLP 64-128-128-10 of ``trained("mlp", "digits")`` with its
training digits in one batch; a ``--num`` x ``--num`` plane over [-1, 1]^2 (filter-normalized
random directions, seed 0), ``steps=20`` (at most 40 Lanczos iterations per point).

* ``before``: ``tol=None, warm_start=False, keep_graph=False, point_batch=1``: point by
  point, 40 Lanczos iterations from the seeded random start, each Hessian-vector product a
  full double backward (forward, gradient graph, backward of it): the algorithm before
  the speedups;
* ``after``: the defaults: each point's gradient graph built once, its Lanczos run started
  from the nearest done point's extreme Ritz vectors (plus the random one) and stopped once
  both extreme residuals are within ``tol * |λ_max|``; off the CPU, 16 points at a time
  in lockstep, their products through one vmapped double backward (``point_batch``);
* ``after, K points together`` (with ``--point-batch K``): the defaults with that batch;
* ``after, N samples`` (with ``--samples N``): the same on the first N training digits;
* with ``--products``: first, the milliseconds of one Hessian-vector product at theta on
  all the training digits, by the fast path's reverse-over-reverse product (the gradient's
  graph kept, :func:`~landscape_widgets.analysis.curvature.hvp_operator`) and by
  forward-over-reverse (``torch.func.jvp`` of the gradient), against one forward: how
  far a product is from the cheapest it could be.

Prints each one's seconds, points/s and mean Lanczos iterations per point, after / before
in points/s, the largest absolute difference of each map from ``before`` (ratio, λ_min,
λ_max), and the load average before and after.

    python benchmarks/bench_convexity.py
    python benchmarks/bench_convexity.py --threads 1 --repeats 2   # steadier on a busy machine
    python benchmarks/bench_convexity.py --samples 337             # also a quarter of the data
    python benchmarks/bench_convexity.py --products                # also one product's cost
    python benchmarks/bench_convexity.py --device cuda --point-batch 64
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from common import add_device_arguments, apply_threads, best_of_interleaved, sync

from landscape_widgets.analysis.curvature import convexity_map, hvp_operator
from landscape_widgets.builtin.training import trained
from landscape_widgets.core.grids import plane
from landscape_widgets.core.objective import as_objective, resolve_device

PLAIN = {"tol": None, "warm_start": False, "keep_graph": False, "point_batch": 1}


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (``nan`` where the OS has none)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return ", ".join(f"{x:.2f}" for x in load)


def run_map(model, data, grid, device, steps, options) -> dict:
    """Seconds for the whole map (a fresh objective, as a user's call makes) and the map."""
    sync(device)
    t = time.perf_counter()
    ds = convexity_map(model, F.cross_entropy, data, grid=grid, steps=steps, device=device, **options)
    sync(device)
    return {"seconds": time.perf_counter() - t, "ds": ds}


def product_milliseconds(model, data, device, calls: int = 30) -> dict[str, float]:
    """Milliseconds per call (best of three rounds of ``calls``, after 3 warm-up calls) of
    one Hessian-vector product at theta by each path, and of one forward."""
    ob = as_objective(model, F.cross_entropy, data, device=device)
    (batch,) = list(ob.data)
    v = torch.randn(ob.layout.size, generator=torch.Generator().manual_seed(0)).to(ob.device, ob.theta.dtype)
    gradient = torch.func.grad(lambda t: ob.point_loss(t, batch))
    paths = {
        "reverse-over-reverse, graph kept": hvp_operator(ob, keep_graph=True),
        "forward-over-reverse (jvp of grad)": lambda u: torch.func.jvp(gradient, (ob.theta,), (u,))[1],
        "one forward": lambda u: ob.point_loss(ob.theta, batch),
    }
    times = {}
    for name, call in paths.items():
        rounds = []
        for r in range(4):
            sync(device)
            t = time.perf_counter()
            for _ in range(3 if r == 0 else calls):
                call(v)
            sync(device)
            rounds.append((time.perf_counter() - t) / (3 if r == 0 else calls))
        times[name] = 1e3 * min(rounds[1:])
    return times


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_arguments(parser)
    parser.add_argument("--num", type=int, default=9, help="grid points per axis (default 9)")
    parser.add_argument("--steps", type=int, default=20, help="convexity_map steps (default 20)")
    parser.add_argument("--tol", type=float, default=1e-3, help="the fast path's tol (default 1e-3)")
    parser.add_argument("--samples", type=int, default=None,
                        help="also the fast path on the first SAMPLES training digits (max_samples)")
    parser.add_argument("--point-batch", type=int, default=None,
                        help="also the fast path with this many points together (point_batch)")
    parser.add_argument("--products", action="store_true",
                        help="also time one Hessian-vector product by each path, and one forward")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each, interleaved, best kept (default 1)")
    args = parser.parse_args(argv)
    apply_threads(args)
    device = resolve_device(args.device)
    result, dataset = trained("mlp", "digits")
    model, data = result.model, dataset.train
    grid = plane((-1, 1), num=args.num)
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads, "
          f"load average {load_average()}, grid {args.num}x{args.num}, steps {args.steps}, "
          f"{len(data[0])} training digits, {sum(p.numel() for p in model.parameters())} parameters", flush=True)
    if args.products:
        times = product_milliseconds(model, data, device)
        for name, ms in times.items():
            print(f"{name:<36} {ms:7.2f} ms  ({ms / times['one forward']:.1f} forwards)")
    configs = {"before": PLAIN, "after": {"tol": args.tol}}
    if args.point_batch:
        configs[f"after, {args.point_batch} together"] = {"tol": args.tol, "point_batch": args.point_batch}
    if args.samples:
        configs[f"after, {args.samples} samples"] = {"tol": args.tol, "max_samples": args.samples}
    best = best_of_interleaved(args.repeats, {
        name: lambda o=options: run_map(model, data, grid, device, args.steps, o) for name, options in configs.items()
    })
    before = best["before"]["ds"]
    print(f"\n{'':<22} {'seconds':>8} {'points/s':>9} {'iter/point':>10} {'max|Δ ratio|':>13} "
          f"{'max|Δ λmin|':>12} {'max|Δ λmax|':>12}")
    for name, run in best.items():
        ds = run["ds"]
        diff = {v: float(np.abs(ds[v].values - before[v].values).max()) for v in ("convexity", "lambda_min",
                                                                              "lambda_max")}
        print(f"{name:<22} {run['seconds']:8.1f} {grid.size / run['seconds']:9.2f} "
              f"{float(ds['iterations'].mean()):10.1f} {diff['convexity']:13.2e} {diff['lambda_min']:12.2e} "
              f"{diff['lambda_max']:12.2e}")
    ratio = best["before"]["seconds"] / best["after"]["seconds"]
    print(f"\nafter / before: {ratio:.2f}x points/s; ratio map of before in "
          f"[{float(before['convexity'].min()):.4f}, {float(before['convexity'].max()):.4f}]")
    print(f"load average at the end: {load_average()}")


if __name__ == "__main__":
    main()
