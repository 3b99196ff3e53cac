"""``auto`` against the other strategies, warm and cold, on three models and two grid sizes.

In one run, side by side, for the demo digits MLP (``trained("mlp", "digits")`` on its
1347 training digits), a small CNN (16 channels, depth 2, on 512 digit images, as in
``bench_strategies.py``) and a tiny GPT-2 language model (``transformers.GPT2Config``,
2 layers, width 64, 8 sequences of 32 tokens, the model's own loss; nothing is
downloaded), each on a 9x9 plane (81 points) and a 51x51 plane (2601 points):

warm
    in this process, after one warm-up run of each strategy (5x5 points); every run
    builds a fresh :class:`PointEvaluator` and evaluates every point with
    ``iter_chunks`` (auto then knows the speeds measured earlier in the process, see
    ``streaming._SPEEDS``). The order of the strategies rotates from round to round.
    Printed: ``auto / min(loop, batched)`` (target <= 1.10).
cold
    each run in a fresh Python process (``--cold-case``), after the common part (torch,
    the model and its data from a file, the directions): the time of

    - ``plain``: a perturb-and-forward loop (``vector_to_parameters(theta + a d1 + b d2)``,
      a forward under ``torch.inference_mode()``, the loss, and the accuracy for the
      classifiers);
    - ``auto``: importing the package's evaluation modules, ``PointEvaluator`` and
      ``iter_chunks(..., "auto")`` over the grid (set-up and trials included);
    - ``compute``: ``import landscape_widgets; lw.compute_landscape(...)`` with the same
      directions (which also imports xarray for the returned Dataset).

    Interleaved repeats (plain, auto, compute, plain, ...), best kept (``compute`` only on
    the grids of ``--compute-sizes``, default the 9x9 one). Printed:
    ``auto / plain`` (target <= 1.2) and ``compute / plain``, and the heavy modules the
    cold auto run imported (sympy, xarray, pandas, dask).

    flock /tmp/bench.lock python benchmarks/bench_auto.py
    flock /tmp/bench.lock python benchmarks/bench_auto.py --threads 1 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

MODELS = ("mlp", "cnn", "gpt2")
SIZES = (9, 51)
COLD_KINDS = ("plain", "auto", "compute")
#: Modules whose import by a cold auto run is reported (none of them is needed).
HEAVY = ("sympy", "xarray", "pandas", "dask", "scipy", "sklearn", "tqdm")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


# -- models ------------------------------------------------------------------------------
def build(name: str):
    """``(model, loss_fn, data)``: the model in eval mode, its loss (None: the model's
    own), one resident batch."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    if name == "mlp":
        from landscape_widgets.builtin.training import trained

        result, ds = trained("mlp", "digits")
        return result.model.eval(), F.cross_entropy, ds.train
    if name == "cnn":
        from landscape_widgets.builtin import zoo

        ds = zoo.digits(image=True)
        x, y = torch.cat([ds.train[0], ds.test[0]]), torch.cat([ds.train[1], ds.test[1]])
        return zoo.cnn(channels=16, depth=2).eval(), F.cross_entropy, (x[:512], y[:512])
    if name == "gpt2":
        import transformers

        transformers.logging.set_verbosity_error()
        warnings.filterwarnings("ignore", message="There is a performance drop")  # vmap of SDPA
        config = transformers.GPT2Config(vocab_size=256, n_positions=32, n_embd=64, n_layer=2, n_head=4,
                                         resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        model = transformers.GPT2LMHeadModel(config).eval()
        tokens = torch.randint(0, 256, (8, 32), generator=torch.Generator().manual_seed(0))
        return model, None, {"input_ids": tokens, "labels": tokens}
    raise ValueError(name)


def prepare(name: str, folder: Path) -> Path:
    """Save the model, loss, data and two filter-normalized directions for the cold runs."""
    from landscape_widgets.core.directions import random_directions

    model, loss_fn, data = build(name)
    dirs = random_directions(model, 2, seed=0)
    path = folder / f"{name}.pt"
    torch.save({"model": model, "loss": "ce" if loss_fn is not None else None, "data": data,
                "dirs": torch.stack(dirs)}, path)
    return path


# -- one cold case (in a fresh process) ----------------------------------------------------
def plain_loop(model, loss_fn, data, dirs, coords) -> np.ndarray:
    """The reference: write the point with ``vector_to_parameters``, forward, loss (and
    accuracy for a classifier)."""
    from torch.nn.utils import parameters_to_vector, vector_to_parameters

    params = list(model.parameters())
    theta = parameters_to_vector(params).detach().clone()
    d1, d2 = dirs[0], dirs[1]
    out = []
    for a, b in coords:
        with torch.no_grad():
            vector_to_parameters(theta + float(a) * d1 + float(b) * d2, params)
        with torch.inference_mode():
            if isinstance(data, dict):
                loss = model(**data).loss
                out.append((loss.item(),))
            else:
                x, y = data
                logits = model(x)
                loss = loss_fn(logits, y)
                out.append((loss.item(), (logits.argmax(1) == y).float().mean().item()))
    vector_to_parameters(theta, params)
    return np.array(out)


def cold_case(path: str, num: int, kind: str) -> dict:
    import torch.nn.functional as F

    saved = torch.load(path, weights_only=False)
    model, data, dirs = saved["model"], saved["data"], saved["dirs"]
    loss_fn = F.cross_entropy if saved["loss"] == "ce" else None
    before = set(sys.modules)
    grid_1d = np.linspace(-1, 1, num)
    t = time.perf_counter()
    if kind == "plain":
        a, b = np.meshgrid(grid_1d, grid_1d, indexing="ij")
        values = plain_loop(model, loss_fn, data, dirs, np.stack([a.ravel(), b.ravel()], 1))
        uses = "plain"
    elif kind == "auto":
        from landscape_widgets.core.evaluation import PointEvaluator
        from landscape_widgets.core.grids import plane
        from landscape_widgets.core.streaming import iter_chunks

        grid = plane((-1, 1), num=num)
        ev = PointEvaluator(model, loss_fn, data, list(dirs))
        loss = np.full(grid.size, np.nan)
        uses = []
        for chunk in iter_chunks(ev, grid, "auto"):
            loss[chunk.indices] = chunk.loss
            uses.append(chunk.strategy)
        values = loss
        uses = "+".join(sorted(set(uses)))
    elif kind == "compute":
        import landscape_widgets as lw

        ds = lw.compute_landscape(model, loss_fn, data, lw.plane((-1, 1), num=num), directions=list(dirs))
        values = ds.loss.values
        uses = ds.attrs["strategy"]
    else:
        raise ValueError(kind)
    seconds = time.perf_counter() - t
    new = set(sys.modules) - before
    heavy = sorted(h for h in HEAVY if h in new)
    return {"seconds": seconds, "uses": uses, "imported": heavy, "first": float(np.ravel(values)[0])}


def run_cold(path: Path, num: int, kind: str, threads: int | None) -> dict:
    cmd = [sys.executable, __file__, "--cold-case", str(path), str(num), kind]
    if threads:
        cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# -- warm (this process) -------------------------------------------------------------------
def warm_run(model, loss_fn, data, dirs, grid, strategy) -> dict:
    from landscape_widgets.core.evaluation import PointEvaluator
    from landscape_widgets.core.streaming import iter_chunks

    t = time.perf_counter()
    ev = PointEvaluator(model, loss_fn, data, dirs)
    uses = [c.strategy for c in iter_chunks(ev, grid, strategy)]
    return {"seconds": time.perf_counter() - t, "uses": "+".join(sorted(set(uses)))}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default torch's)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per case, best kept")
    parser.add_argument("--large-repeats", type=int, default=2,
                        help="the same for grids of more than 1000 points (default 2)")
    parser.add_argument("--compute-sizes", default="9", help="grids (points per axis) with a compute_landscape run")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="points per axis")
    parser.add_argument("--skip", default="", help="comma-separated: warm, cold, compute")
    parser.add_argument("--cold-case", nargs=3, metavar=("PATH", "NUM", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.cold_case:
        path, num, kind = args.cold_case
        print(json.dumps(cold_case(path, int(num), kind)))
        return

    from common import best_of_interleaved

    from landscape_widgets.core.grids import plane

    models = args.models.split(",")
    compute_sizes = {int(s) for s in args.compute_sizes.split(",") if s}

    def repeats(num: int) -> int:
        return args.large_repeats if num * num > 1000 else args.repeats

    sizes = [int(s) for s in args.sizes.split(",")]
    skip = set(args.skip.split(","))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load()}, "
          f"repeats {args.repeats}", flush=True)
    warm: dict[tuple[str, int], dict] = {}
    cold: dict[tuple[str, int], dict] = {}
    if "warm" not in skip:
        for name in models:
            model, loss_fn, data = build(name)
            from landscape_widgets.core.directions import random_directions

            dirs = random_directions(model, 2, seed=0)
            for num in sizes:
                grid = plane((-1, 1), num=num)
                for s in ("loop", "batched", "auto"):  # warm-up: vmap, allocator, caches
                    warm_run(model, loss_fn, data, dirs, plane((-1, 1), num=5), s)
                best = best_of_interleaved(repeats(num), {
                    s: lambda s=s: warm_run(model, loss_fn, data, dirs, grid, s) for s in ("loop", "batched", "auto")
                }, rotate=True)
                warm[name, num] = best
                faster = min(best["loop"]["seconds"], best["batched"]["seconds"])
                print(f"warm {name} {num}x{num}: loop {best['loop']['seconds']:.3f} s, batched "
                      f"{best['batched']['seconds']:.3f} s, auto {best['auto']['seconds']:.3f} s "
                      f"(uses {best['auto']['uses']}): auto / faster = {best['auto']['seconds'] / faster:.2f}"
                      f"  [load {load()}]", flush=True)
    if "cold" not in skip:
        kinds = [k for k in COLD_KINDS if k not in skip]
        with tempfile.TemporaryDirectory() as folder:
            paths = {name: prepare(name, Path(folder)) for name in models}
            runs: dict[tuple[str, int, str], list[dict]] = {}
            for r in range(args.repeats):
                for name in models:
                    for num in sizes:
                        if r >= repeats(num):
                            continue
                        for kind in kinds:
                            if kind == "compute" and num not in compute_sizes:
                                continue
                            runs.setdefault((name, num, kind), []).append(
                                run_cold(paths[name], num, kind, args.threads))
            for name in models:
                for num in sizes:
                    best = {k: min(runs[name, num, k], key=lambda r: r["seconds"])
                            for k in kinds if (name, num, k) in runs}
                    cold[name, num] = best
                    line = (f"cold {name} {num}x{num}: plain {best['plain']['seconds']:.3f} s, auto "
                            f"{best['auto']['seconds']:.3f} s (uses {best['auto']['uses']}, imported "
                            f"{best['auto']['imported'] or 'nothing heavy'}): auto / plain = "
                            f"{best['auto']['seconds'] / best['plain']['seconds']:.2f}")
                    if "compute" in best:
                        line += (f"; compute_landscape {best['compute']['seconds']:.3f} s: / plain = "
                                 f"{best['compute']['seconds'] / best['plain']['seconds']:.2f}")
                    print(line + f"  [load {load()}]", flush=True)
    print(f"\nsummary (load average {load()}):")
    print(f"{'model':<6} {'points':>6} {'warm auto/faster':>17} {'cold auto/plain':>16} {'cold compute/plain':>19}")
    for name in models:
        for num in sizes:
            w = warm.get((name, num))
            c = cold.get((name, num))
            wr = (w["auto"]["seconds"] / min(w["loop"]["seconds"], w["batched"]["seconds"])) if w else np.nan
            cr = c["auto"]["seconds"] / c["plain"]["seconds"] if c else np.nan
            cc = c["compute"]["seconds"] / c["plain"]["seconds"] if c and "compute" in c else np.nan
            print(f"{name:<6} {num * num:>6} {wr:17.2f} {cr:16.2f} {cc:19.2f}")


if __name__ == "__main__":
    main()
