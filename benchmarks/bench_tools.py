"""Side-by-side speed of landscape tools on one model and data set, in one run.

Model and data: the built-in digits MLP (64-128-128-10, trained) on all 1797 digits.
Grid: 51 x 51 points over [-1, 1]^2 (filter-normalized random directions).

Measured, in this order, in one process:

* **landscape-widgets** ``compute_landscape(strategy="auto")``: points/s, time to the
  complete picture and time to the first coarse picture (end of the first
  coarse-to-fine level, when the explorer first draws the whole plane); also with the
  data streamed (``data_budget=1``: read again for every chunk of points) although it
  fits, against the default resident data;
* **paper loop**: the reference code of Li et al. (2018): for every point set the
  weights tensor by tensor, then ``eval_loss`` over a ``DataLoader`` with batch 128;
* **loss-landscapes 3.0.6** ``random_plane`` with its ``Loss`` metric on one fixed batch
  holding all the data (its grid is off-centre, so only its speed is comparable). It
  is reported as unavailable if it cannot be imported
  (``pip install --no-deps loss-landscapes==3.0.6``);
* **Dask**: the same grid on a ``LocalCluster`` of 1 and 2 single-threaded workers
  (cluster start-up timed separately);
* **GPU** (``--device cuda``, when available): this package on the GPU, with the
  achieved forward-pass FLOP/s as a fraction of the device's measured dense fp32 matmul
  rate (same for the CPU run).

Run it on a quiet machine (the load average is printed)::

    python benchmarks/bench_tools.py            # CPU, all tools
    python benchmarks/bench_tools.py --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from common import best_of_interleaved, forward_flops, matmul_peak, paired_ratio

from landscape_widgets import compute_landscape, plane, random_directions
from landscape_widgets.core.grids import coarse_to_fine_order
from landscape_widgets.core.params import param_layout
from landscape_widgets.builtin.training import trained


def digits_problem() -> tuple[torch.nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """The trained digits MLP and all 1797 samples (train + test)."""
    result, dataset = trained("mlp", "digits")
    x = torch.cat([dataset.train[0], dataset.test[0]])
    y = torch.cat([dataset.train[1], dataset.test[1]])
    return result.model.eval(), (x, y)


def bench_package(model, data, grid, directions, device: str = "cpu", strategy: str = "auto",
                  accuracy: bool = True, data_budget: int | None = None) -> dict:
    """This package: complete grid and first coarse picture (``accuracy=False``: the loss
    only, like the other two tools; ``data_budget=1``: the data streamed, read again for
    every chunk of points, although it fits)."""
    first_level = int(coarse_to_fine_order(grid.shape)[1][0])
    marks: dict[str, float] = {}
    start = time.perf_counter()

    def on_chunk(ds, chunk):
        if "first" not in marks and int(ds["done"].sum()) >= first_level:
            marks["first"] = time.perf_counter() - start

    ds = compute_landscape(model, F.cross_entropy, data, grid, directions, device=device,
                           strategy=strategy, accuracy=accuracy, on_chunk=on_chunk, data_budget=data_budget)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "points_per_s": grid.size / seconds, "first_picture_s": marks["first"],
            "first_picture_points": first_level, "strategy": ds.attrs["strategy"],
            "loss": ds["loss"].values}


def _set_weights(net, weights, directions, step) -> None:
    """``net_plotter.set_weights`` of the paper's code: p = w + a d0 + b d1, per tensor."""
    changes = [d0 * step[0] + d1 * step[1] for d0, d1 in zip(*directions)]
    for p, w, d in zip(net.parameters(), weights, changes):
        p.data = w + d.type_as(w)


def _eval_loss(net, criterion, loader) -> tuple[float, float]:
    """``evaluation.eval_loss`` of the paper's code (cross-entropy branch)."""
    correct, total_loss, total = 0, 0.0, 0
    net.eval()
    with torch.no_grad():
        for inputs, targets in loader:
            batch_size = inputs.size(0)
            total += batch_size
            outputs = net(inputs)
            loss = criterion(outputs, targets)
            total_loss += loss.item() * batch_size
            _, predicted = torch.max(outputs.data, 1)
            correct += predicted.eq(targets).sum().item()
    return total_loss / total, 100.0 * correct / total


def bench_paper_loop(model, data, grid, directions) -> dict:
    """Per point: set the weights, then iterate a DataLoader with batch 128."""
    import copy

    net = copy.deepcopy(model)
    layout = param_layout(net)
    weights = [p.data.clone() for p in net.parameters()]
    per_tensor = [[t.reshape(s) for t, s in zip(torch.split(d, layout.numels), layout.shapes)]
                  for d in directions]
    loader = DataLoader(TensorDataset(*data), batch_size=128, shuffle=False)
    criterion = torch.nn.CrossEntropyLoss()
    coords = grid.coords(np.arange(grid.size))
    loss = np.empty(grid.size)
    start = time.perf_counter()
    for i, step in enumerate(coords):
        _set_weights(net, weights, per_tensor, step)
        loss[i] = _eval_loss(net, criterion, loader)[0]
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "points_per_s": grid.size / seconds, "first_picture_s": seconds,
            "loss": loss.reshape(grid.shape)}


def bench_loss_landscapes(model, data, steps: int) -> dict:
    """``loss_landscapes.random_plane`` on one fixed batch of all the data."""
    import copy

    try:
        import loss_landscapes
        from loss_landscapes.metrics import Loss
    except ImportError as err:
        return {"available": False, "reason": f"not importable ({err})"}
    metric = Loss(torch.nn.CrossEntropyLoss(), *data)
    start = time.perf_counter()
    loss_landscapes.random_plane(copy.deepcopy(model), metric, distance=1, steps=steps,
                                 normalization="filter", deepcopy_model=True)
    seconds = time.perf_counter() - start
    return {"available": True, "version": getattr(loss_landscapes, "__version__", "3.0.6"),
            "seconds": seconds, "points_per_s": steps * steps / seconds, "first_picture_s": seconds}


def bench_dask(model, data, grid, directions, workers: tuple[int, ...] = (1, 2)) -> dict:
    """The same grid on a LocalCluster of 1 and 2 single-threaded worker processes."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:
        return {"available": False, "reason": f"dask.distributed not importable ({err})"}
    from landscape_widgets.runs.distributed import compute_landscape_dask

    out = {"available": True}
    for n in workers:
        start = time.perf_counter()
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            client.wait_for_workers(n)
            startup = time.perf_counter() - start
            start = time.perf_counter()
            compute_landscape_dask(model, F.cross_entropy, data, grid, directions, client=client,
                                   strategy="auto")
            seconds = time.perf_counter() - start
        out[f"{n}_workers"] = {"startup_s": startup, "seconds": seconds,
                               "points_per_s": grid.size / seconds}
    return out


def run(num: int = 51, device: str = "cpu", dask: bool = True, others: bool = True, repeats: int = 3) -> dict:
    """All measurements; returns a JSON-ready dict."""
    model, data = digits_problem()
    grid = plane(num=num)
    directions = random_directions(model, 2, seed=0)
    flops_point = forward_flops(model, data[0])
    report = {
        "device": device if device == "cpu" else torch.cuda.get_device_name(device),
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "grid": list(grid.shape), "samples": len(data[0]), "forward_flops_per_point": flops_point,
        "load_average_before": os.getloadavg(),
    }
    data_dev = tuple(t.to(device) for t in data)
    # The first run in a process also pays one-off imports and set-up (xarray loads
    # dask.array on its first Dataset, torch initializes its kernels): reported as
    # "cold", then every tool is timed warm, best of `repeats` interleaved runs.
    cold = bench_package(model, data_dev, grid, directions, device=device)
    report["landscape_widgets_cold"] = {k: cold[k] for k in ("seconds", "first_picture_s")}
    benches = {
        "landscape_widgets": lambda: bench_package(model, data_dev, grid, directions, device=device),
        "landscape_widgets_loss_only": lambda: bench_package(
            model, data_dev, grid, directions, device=device, accuracy=False),
        "landscape_widgets_streamed": lambda: bench_package(
            model, data_dev, grid, directions, device=device, data_budget=1),
    }
    if others and device == "cpu":
        bench_loss_landscapes(model, data, 5)  # warm-up, like ours
        benches["loss_landscapes"] = lambda: bench_loss_landscapes(model, data, num)
    peak = matmul_peak(device)
    report.update(best_of_interleaved(repeats, benches))
    peak = max(peak, matmul_peak(device))  # again at the end: the higher one is the bar
    ours = report["landscape_widgets"]
    ours["forward_flops_per_s"] = ours["points_per_s"] * flops_point
    ours["fraction_of_matmul_peak"] = ours["forward_flops_per_s"] / peak
    report["matmul_fp32_flops_per_s"] = peak
    if others and device == "cpu":
        paper = bench_paper_loop(model, data, grid, directions)
        paper["max_abs_diff_vs_landscape_widgets"] = float(np.nanmax(np.abs(paper["loss"] - ours["loss"])))
        report["paper_loop"] = paper
    if dask and device == "cpu":
        report["dask"] = bench_dask(model, data, grid, directions)
    report["load_average_after"] = os.getloadavg()
    for entry in report.values():
        if isinstance(entry, dict):
            entry.pop("loss", None)
    return report


def summary(report: dict) -> str:
    """A Markdown table of the main figures."""
    rows = ["| tool | points/s | complete picture (s) | first picture (s) |", "|---|---:|---:|---:|"]
    for key, name in (("landscape_widgets", "landscape-widgets (auto, loss + accuracy)"),
                      ("landscape_widgets_loss_only", "landscape-widgets (auto, loss only)"),
                      ("paper_loop", "paper loop, batch 128"),
                      ("loss_landscapes", "loss-landscapes 3.0.6")):
        r = report.get(key)
        if r is None:
            continue
        if r.get("available") is False:
            rows.append(f"| {name} | unavailable: {r['reason']} | | |")
            continue
        rows.append(f"| {name} | {r['points_per_s']:.1f} | {r['seconds']:.2f} | {r['first_picture_s']:.2f} |")
    lines = [f"device: {report['device']} ({report['cores']} cores, {report['torch_threads']} torch threads), "
             f"grid {report['grid']}, {report['samples']} samples, "
             f"load average before {report['load_average_before']}, after {report['load_average_after']}",
             "", *rows, ""]
    ours = report["landscape_widgets"]
    best_other = max([report[k]["points_per_s"] for k in ("paper_loop", "loss_landscapes")
                      if report.get(k, {}).get("points_per_s")] or [np.nan])
    cold = report["landscape_widgets_cold"]
    lines.append(f"cold (first run in the process): first picture {cold['first_picture_s']:.2f} s, "
                 f"complete {cold['seconds']:.2f} s")
    lean = report["landscape_widgets_loss_only"]
    if "all_seconds" in report.get("loss_landscapes", {}):
        other = report["loss_landscapes"]
        lines.append(f"paired rounds (median of loss-landscapes' time / ours, run back to back): "
                     f"{paired_ratio(ours, other):.2f}x with accuracy, {paired_ratio(lean, other):.2f}x loss only")
    lines.append(f"first picture {ours['seconds'] / ours['first_picture_s']:.1f}x sooner than the complete run "
                 f"({ours['first_picture_points']} points); throughput {ours['points_per_s'] / best_other:.2f}x "
                 f"the best other tool (loss only, like for like: {lean['points_per_s'] / best_other:.2f}x)")
    streamed = report["landscape_widgets_streamed"]
    lines.append(f"streamed data (read again for every chunk, although it fits): {streamed['points_per_s']:.1f} "
                 f"points/s, streamed / resident time = {streamed['seconds'] / ours['seconds']:.2f}")
    lines.append(f"forward-equivalent rate (a plain forward's FLOPs per point; the loop computes the "
                 f"input layer once per direction): {ours['forward_flops_per_s'] / 1e9:.1f} GFLOP/s = "
                 f"{100 * ours['fraction_of_matmul_peak']:.0f}% of the measured fp32 matmul rate "
                 f"({report['matmul_fp32_flops_per_s'] / 1e9:.1f} GFLOP/s)")
    dask = report.get("dask")
    if dask and dask.get("available"):
        for key, r in dask.items():
            if key != "available":
                lines.append(f"dask {key.replace('_', ' ')}: {r['points_per_s']:.1f} points/s "
                             f"({r['seconds']:.2f} s, cluster start {r['startup_s']:.1f} s)")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num", type=int, default=51, help="points per axis (default 51)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask scaling runs")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved runs of each fast tool, best kept (default 3)")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: the GPU benchmark was not run")
        return 0
    report = run(args.num, args.device, dask=not args.no_dask, repeats=args.repeats)
    print(summary(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2, default=float)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
