"""Measurement helpers shared by the benchmark scripts (run them from any directory:
each script's own folder is on ``sys.path``)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode


def sync(device: str | torch.device) -> None:
    """Wait for queued CUDA work, so that a timer reads the device's time."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak(device: str | torch.device, sizes=(2048, 4096), repeats: int = 5) -> float:
    """Best dense float32 matmul rate in FLOP/s over a few square sizes (the practical
    FLOP limit of ``device``)."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
        c = a @ b  # warm-up
        for _ in range(repeats):
            sync(device)
            t = time.perf_counter()
            torch.matmul(a, b, out=c)
            sync(device)
            best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best


def forward_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward pass over ``x`` (torch's FLOP counter: 2 x the
    multiply-accumulates of the matrix products and convolutions)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return int(counter.get_total_flops())


def best_of_interleaved(repeats: int, benches: dict[str, Callable[[], dict]],
                        rotate: bool = False) -> dict[str, dict]:
    """The fastest (least ``"seconds"``) of ``repeats`` runs of each ``benches[name]()``,
    run in turn (a, b, a, b, ...) so that a slow spell of a shared machine falls on every
    contender alike. ``rotate``: each round starts one contender later (a, b, c; b, c, a;
    ...), so that none always runs right after the same other one."""
    runs: dict[str, list[dict]] = {name: [] for name in benches}
    names = list(benches)
    for r in range(repeats):
        shift = r % len(names) if rotate else 0
        for name in names[shift:] + names[:shift]:
            runs[name].append(benches[name]())
    best = {name: dict(min(r, key=lambda x: x.get("seconds", np.inf))) for name, r in runs.items()}
    for name, r in runs.items():
        best[name]["all_seconds"] = [x.get("seconds", np.nan) for x in r]
    return best


def paired_ratio(a: dict, b: dict) -> float:
    """Median over the rounds of ``b``'s time / ``a``'s time, each pair run back to back
    (from :func:`best_of_interleaved`'s ``all_seconds``): how much faster ``a`` is,
    robust to the machine's speed drifting between rounds."""
    return float(np.median(np.array(b["all_seconds"]) / np.array(a["all_seconds"])))


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--threads``, shared by the benchmark scripts."""
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice, one per core)")


def apply_threads(args: argparse.Namespace) -> None:
    """Set torch's CPU threads from ``--threads`` (when given)."""
    if args.threads:
        torch.set_num_threads(args.threads)
