"""Points per second of the ``loop``, ``batched`` and ``auto`` evaluation strategies.

In one run: the machine's float32 matrix-multiply peak, then a 2-D 21x21 landscape of the
digits MLP 64-128-128-10 (full batch, all 1797 digits) and of a small CNN (16 channels,
2 blocks; full batch of the first 512 digit images, ``--cnn-samples``), with each
strategy (a fresh evaluator per run, so auto's trials and vmap's set-up are counted).
``plain`` is the loop without the input-layer cache (every layer of every point computed).
Prints points/s, the achieved GFLOP/s (torch's FLOP counter: 2 x multiply-accumulates
of the matrix products and convolutions of one forward, per point) as a fraction of the
peak, auto / best, and on CUDA batched / loop. For ``plain`` and ``batched`` that is the arithmetic done; the cached loop
skips the first layer's product, so its figure is the forward-equivalent rate.

    python benchmarks/bench_strategies.py                 # CPU
    python benchmarks/bench_strategies.py --device cuda   # GPU
    python benchmarks/bench_strategies.py --threads 1     # steadier on a busy machine
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F

from common import add_device_arguments, apply_threads, best_of_interleaved, forward_flops, matmul_peak, sync

from landscape_widgets.builtin import zoo
from landscape_widgets.core.directions import random_directions
from landscape_widgets.core.evaluation import PointEvaluator
from landscape_widgets.core.objective import resolve_device
from landscape_widgets.core.grids import plane
from landscape_widgets.core.streaming import iter_chunks

#: ``plain``: the loop without the input-layer cache, every layer of every point computed
#: (its GFLOP/s are the arithmetic actually done; the others count the same forward
#: FLOPs per point, whether computed or cached).
STRATEGIES = ("plain", "loop", "batched", "auto")


def all_digits(image: bool, samples: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1797 digits (train + test), or the first ``samples`` of them."""
    ds = zoo.digits(image=image)
    x, y = torch.cat([ds.train[0], ds.test[0]]), torch.cat([ds.train[1], ds.test[1]])
    return x[:samples], y[:samples]


def run_strategy(model, data, dirs, grid, strategy, device) -> dict:
    """Seconds for the whole grid (fresh evaluator: auto's trials and vmap's warm-up
    are included) and the strategy the chunks used."""
    ev = PointEvaluator(model, F.cross_entropy, data, dirs, device=device,
                        cache_input_layer=strategy != "plain")
    sync(ev.device)
    t = time.perf_counter()
    used = [c.strategy for c in iter_chunks(ev, grid, "loop" if strategy == "plain" else strategy)]
    sync(ev.device)
    return {"seconds": time.perf_counter() - t, "uses": used[-1]}


def bench_model(name, model, data, grid, device, repeats) -> list[dict]:
    """Best of ``repeats`` interleaved runs of each strategy."""
    torch.manual_seed(0)
    dirs = random_directions(model, 2, seed=0)
    flops_per_point = forward_flops(model, data[0])
    best = best_of_interleaved(repeats, {
        s: lambda s=s: run_strategy(model, data, dirs, grid, s, device) for s in STRATEGIES
    })
    rows = []
    for strategy, run in best.items():
        pts = grid.size / run["seconds"]
        rows.append(dict(model=name, strategy=strategy, chosen=run["uses"], pts=pts,
                         gflops=pts * flops_per_point / 1e9))
        print(f"  {name} {strategy}: {pts:.1f} points/s", flush=True)
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_arguments(parser)
    parser.add_argument("--num", type=int, default=21, help="grid points per axis (default 21)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="runs per strategy, interleaved, best kept (default 5)")
    parser.add_argument("--models", default="mlp,cnn", help="comma-separated: mlp, cnn")
    parser.add_argument("--cnn-samples", type=int, default=512,
                        help="digits images per CNN forward (default 512; 1797 = all)")
    args = parser.parse_args(argv)
    apply_threads(args)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    grid = plane((-1, 1), num=args.num)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads, "
          f"load average {load:.2f}, grid {args.num}x{args.num}, CNN on {args.cnn_samples} images")
    peak = matmul_peak(device) / 1e9
    print(f"float32 matmul peak: {peak:.1f} GFLOP/s", flush=True)
    models = {
        "mlp 64-128-128-10": lambda: (zoo.mlp(), all_digits(image=False)),
        "cnn 16ch depth 2": lambda: (
            zoo.cnn(channels=16, depth=2), all_digits(image=True, samples=args.cnn_samples)
        ),
    }
    wanted = [k for k in models if k.split()[0] in args.models.split(",")]
    rows = []
    for name in wanted:
        model, data = models[name]()
        rows += bench_model(name, model, data, grid, device, args.repeats)
    peak = max(peak, matmul_peak(device) / 1e9)  # again at the end: the higher one is the bar
    print(f"float32 matmul peak, best of start and end: {peak:.1f} GFLOP/s")
    print(f"\n{'model':<19} {'strategy':<8} {'uses':<8} {'points/s':>9} {'GFLOP/s':>8} {'of peak':>8}")
    for r in rows:
        print(f"{r['model']:<19} {r['strategy']:<8} {r['chosen']:<8} {r['pts']:9.1f} "
              f"{r['gflops']:8.1f} {r['gflops'] / peak:8.1%}")
    print()
    for name in wanted:
        by = {r["strategy"]: r["pts"] for r in rows if r["model"] == name}
        best = max(by["loop"], by["batched"])
        print(f"{name}: auto / best = {by['auto'] / best:.2f}, "
              f"batched / loop = {by['batched'] / by['loop']:.2f}, "
              f"loop / plain = {by['loop'] / by['plain']:.2f}")


if __name__ == "__main__":
    main()
