"""How soon the shown picture is close to the complete one: data-sample estimates first,
then the exact coarse-to-fine levels, each picture filled in as the live views fill it.

In one run, side by side (the levels' estimates corrected by the exact coarser
levels, :data:`~landscape_widgets.core.sampled.FRACTIONS`, against both levels on a
sixteenth and against the first level estimated only), for the demo digits MLP (51x51 plane, its 1348 training digits) and the demo
CNN (``trained("cnn", "digits")``; 51x51 plane on the first ``--cnn-samples`` training
images), a filter-normalized random plane (seed 0) over [-1, 1]^2 computed with
``compute_landscape(..., backend=refining_chunks)``:

* the time of every chunk's arrival (the clock runs from the call, set-up included) and
  the picture shown then: :func:`~landscape_widgets.plotting.fields.preview_field` of
  the known cells (estimated or exact), as the 2-D map draws it; also the nearest-cell
  fill alone, the picture before cubic previews;
* each picture's relative RMS distance from the complete map,
  ``||shown - final|| / ||final||`` over all cells;
* the time until the shown picture is within 1% (and 5%), against the time of the
  complete grid, and the same for the exact values alone;
* the data-sample estimates' error against their standard errors;
* a sample's group values per point computed each way (a loop of forwards, vmapped
  forwards, ``auto``'s choice), side by side.

Each model's measured run follows a 5x5 warm-up run in the same process (as in a
notebook after its first picture); the warm-up's time to its first chunk, the one-off
cost of the process's first landscape, is printed too.

    python benchmarks/bench_previews.py [--threads 2] [--cnn-samples 256]
"""

from __future__ import annotations

import argparse
import importlib
import os
import time
from functools import partial

import numpy as np
import torch.nn.functional as F

from common import apply_threads

from landscape_widgets.builtin.training import trained
from landscape_widgets.core.grids import plane
from landscape_widgets.core.landscape import compute_landscape, prepare_evaluator
from landscape_widgets.core.results import known_cells
from landscape_widgets.core.sampled import FRACTIONS, refining_chunks, sample_values, sampled_evaluator
from landscape_widgets.plotting.fields import fill_nearest, preview_field


def relative_rms(shown: np.ndarray, final: np.ndarray) -> float:
    """``||shown - final|| / ||final||`` (NaN cells count as missing: inf)."""
    if not np.isfinite(shown).all():
        return float("inf")
    return float(np.sqrt(np.mean((shown - final) ** 2)) / np.sqrt(np.mean(final**2)))


def run(model, data, num: int, fractions=FRACTIONS) -> dict:
    """The timed run: arrival times and snapshots of (loss, known, done, loss_se)."""
    grid = plane((-1, 1), num=num)
    snapshots = []
    start = time.perf_counter()

    def on_chunk(ds, chunk):
        at = time.perf_counter() - start
        snapshots.append((at, ds["loss"].values.copy(), known_cells(ds), ds["done"].values.copy(),
                          ds["loss_se"].values.copy() if "loss_se" in ds else None, chunk.final))

    ds = compute_landscape(model, F.cross_entropy, data, grid, backend=partial(refining_chunks, fractions=fractions),
                           on_chunk=on_chunk)
    total = time.perf_counter() - start
    return {"ds": ds, "snapshots": snapshots, "total": total, "coords": (ds["alpha"].values, ds["beta"].values),
            "fractions": tuple(fractions)}


def first_chunk_seconds(model, data) -> float:
    """Seconds until the first chunk of a 5x5 plane (the warm-up run). Imports scipy's
    interpolation too, as drawing the first cubic preview does in the live views."""
    importlib.import_module("scipy.interpolate")

    start, arrivals = time.perf_counter(), []
    compute_landscape(model, F.cross_entropy, data, plane((-1, 1), num=5), backend=refining_chunks,
                      on_chunk=lambda ds, chunk: arrivals.append(time.perf_counter() - start))
    return arrivals[0]


def report(name: str, result: dict) -> dict:
    final = result["ds"]["loss"].values
    total, coords = result["total"], result["coords"]
    first: dict = {}
    sample_z = []
    for at, loss, known, done, se, is_final in result["snapshots"]:
        shown = preview_field(np.where(known, loss, np.nan), known, coords)
        nearest = fill_nearest(np.where(known, loss, np.nan), known)
        exact = preview_field(np.where(done, loss, np.nan), done, coords) if done.any() else None
        for key, err, n in (("shown", relative_rms(shown, final), int(known.sum())),
                            ("nearest", relative_rms(nearest, final), int(known.sum())),
                            ("exact only", relative_rms(exact, final) if exact is not None else np.inf,
                             int(done.sum()))):
            for tol in (0.05, 0.01):
                if err <= tol and (key, tol) not in first:
                    first[key, tol] = (at, n)
        if not is_final and se is not None:
            est = known & ~done
            sample_z.append(((loss[est] - final[est]) / se[est], relative_rms(shown, final), at))
    print(f"\n{name}: complete {final.size} points in {total:.2f} s "
          f"({final.size / total:.0f} points/s); loss {final.min():.3g}..{final.max():.3g}")
    if sample_z:
        z = np.concatenate([s[0] for s in sample_z])
        print(f"  data-sample estimates (fractions {', '.join(f'{f:.4g}' for f in result['fractions'])}): first picture after "
              f"{sample_z[0][2] * 1e3:.0f} ms, {100 * sample_z[0][1]:.1f}% relative RMS from the complete map, "
              f"the last {100 * sample_z[-1][1]:.1f}%; "
              f"|error| / standard error: median {np.median(np.abs(z)):.2f}, 90th percentile "
              f"{np.percentile(np.abs(z), 90):.2f}")
    for tol in (0.05, 0.01):
        for key in ("shown", "exact only", "nearest"):
            if (key, tol) in first:
                at, n = first[key, tol]
                print(f"  within {tol:.0%} ({key:<10}): after {at:.3f} s, {n:5d} points known: "
                      f"{total / at:5.1f}x sooner than the complete grid")
            else:
                print(f"  within {tol:.0%} ({key:<10}): only when complete")
    return first


def sample_forwards(name: str, model, data, points: int = 64, repeats: int = 3) -> None:
    """Milliseconds per point of a sample's group values, each way side by side (best of
    ``repeats``), for the samples of :data:`FRACTIONS`."""
    evaluator, _ = prepare_evaluator(model, F.cross_entropy, data)
    coeffs = np.random.default_rng(0).uniform(-1, 1, (points, 2))
    for fraction in sorted(set(FRACTIONS)):
        sample = sampled_evaluator(evaluator, fraction)
        ms = {}
        for strategy in ("loop", "batched", "auto"):
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                sample_values(sample, coeffs, strategy)
                times.append(time.perf_counter() - start)
            ms[strategy] = 1e3 * min(times) / points
        print(f"  sample of {fraction:.4g} ({sample.objective.data.n_samples} samples), ms per point: "
              + ", ".join(f"{k} {v:.3f}" for k, v in ms.items()) + f"; loop / batched {ms['loop'] / ms['batched']:.2f}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--num", type=int, default=51, help="points per axis (default 51)")
    parser.add_argument("--cnn-samples", type=int, default=256, help="training images of the CNN run (default 256)")
    args = parser.parse_args(argv)
    apply_threads(args)
    mlp, digits = trained("mlp", "digits")
    cnn, images = trained("cnn", "digits")
    x, y = images.train
    print(f"load average {os.getloadavg()[0]:.2f}; {args.num}x{args.num} planes")
    cnn_data = (x[: args.cnn_samples], y[: args.cnn_samples])
    for name, model, data in (("digits MLP", mlp.model, digits.train),
                              (f"CNN on {args.cnn_samples} images", cnn.model, cnn_data)):
        cold = first_chunk_seconds(model, data)
        print(f"\n{name}: warm-up 5x5 run, first chunk after {cold:.3f} s")
        sooner = {}
        for label, fractions in (("level 0 estimated only", FRACTIONS[:1]),
                                 ("levels 0-1 estimated on a sixteenth", (1 / 16, 1 / 16)),
                                 (f"levels 0-{len(FRACTIONS) - 1} estimated (the default)", FRACTIONS)):
            result = run(model, data, args.num, fractions)
            at, _ = report(f"{name}, {label}", result).get(("shown", 0.01), (result["total"], 0))
            sooner[label] = result["total"] / at
        print(f"\n{name}: within 1% " + ", ".join(f"{v:.1f}x sooner ({k})" for k, v in sooner.items()))
        sample_forwards(name, model, data)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
