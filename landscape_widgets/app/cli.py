"""The ``landscape-widgets`` command: ``app``, ``prepare``, ``compute``, ``plot`` and ``info``.

Examples
--------
::

    landscape-widgets prepare          # train the app's models, compute its first pictures
    landscape-widgets prepare --notebooks   # ... and the lesson notebooks' experiments
    landscape-widgets app --port 8866
    landscape-widgets app --ip 0.0.0.0 --token --max-kernels 30   # a class on the network
    landscape-widgets compute --demo mlp-digits --dims 2 --num 51 --out plane.nc
    landscape-widgets compute --model mypkg.models:resnet --weights model.pt \\
        --data mypkg.data:validation --dims 2 --range -0.5 0.5 --out plane.zarr
    landscape-widgets plot plane.nc --out plane.png --log
    landscape-widgets info plane.nc
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

# Nothing heavy is imported here: each command imports what it needs (``--help``, ``info``
# and ``plot`` start without torch, xarray or dask).

PROG = "landscape-widgets"
DEMOS: dict[str, tuple[str, str]] = {"mlp-digits": ("mlp", "digits"), "cnn-digits": ("cnn", "digits")}
RESULT_SUFFIXES = (".nc", ".zarr")
PLOT_SUFFIXES = (".png", ".svg", ".pdf")


class CLIError(Exception):
    """Bad input: the message says what to fix."""


# -- helpers ------------------------------------------------------------------------------


def import_object(spec: str, what: str):
    """``"package.module:name"`` -> the object (a factory, a data function...)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CLIError(f"{what} must look like 'package.module:name', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise CLIError(f"cannot import module {module_name!r} for {what} ({err})") from None
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise CLIError(f"module {module_name!r} has no {attr!r} (for {what})") from None
    if not callable(obj):
        raise CLIError(f"{spec} is not callable (for {what})")
    return obj


def load_weights(model, path: str) -> None:
    """Load a ``state_dict`` file into ``model`` with ``torch.load(weights_only=True)``."""
    import torch

    file = Path(path)
    if not file.is_file():
        raise CLIError(f"weights file {path} does not exist")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a corrupt or unsafe file
        raise CLIError(f"cannot read weights from {path}: {type(err).__name__}: {err}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CLIError(f"{path} holds a {type(state).__name__}, not a state_dict (save model.state_dict())")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CLIError(f"the weights in {path} do not fit the model: {err}") from None


def load_data(spec: str, split: str, image: bool):
    """A built-in dataset's split, or ``package.module:function`` returning data."""
    from ..builtin.zoo import DATASETS, load_dataset

    if spec in DATASETS:
        kwargs = {"image": True} if image and spec == "digits" else {}
        return getattr(load_dataset(spec, **kwargs), split)
    data = import_object(spec, "--data")()
    if isinstance(data, (str, bytes)) or not hasattr(data, "__iter__"):
        raise CLIError(f"--data {spec}() returned a value of type {type(data).__name__}, not data: return an "
                       "(inputs, targets) pair of tensors, a dict of tensors, or a DataLoader (or list) of such batches")
    return data


def build_model(args):
    """The model of ``--demo`` or ``--model/--weights``, and the default data's shape."""
    if args.demo:
        from ..builtin.training import trained

        if args.weights:
            raise CLIError(f"--weights goes with --model: --demo {args.demo} is trained and has its own weights")
        kind, dataset = DEMOS[args.demo]
        result, _ = trained(kind, dataset)
        return result.model, kind == "cnn"
    if not args.weights:
        raise CLIError("--model needs --weights FILE (a state_dict saved with torch.save)")
    factory = import_object(args.model, "--model")
    try:
        model = factory()
    except Exception as err:
        raise CLIError(f"{args.model}() failed: {type(err).__name__}: {err}") from None
    import torch

    if not isinstance(model, torch.nn.Module):
        raise CLIError(f"{args.model}() returned a {type(model).__name__}, not a torch.nn.Module")
    load_weights(model, args.weights)
    return model, False


def make_grid_from_args(args):
    from ..core.grids import make_grid

    try:
        return make_grid([tuple(args.range)] * args.dims, args.num)
    except (ValueError, TypeError) as err:
        raise CLIError(f"bad grid: {err}") from None


def check_suffix(path: str, allowed: tuple[str, ...], flag: str) -> Path:
    out = Path(path)
    if out.suffix not in allowed:
        raise CLIError(f"{flag} must end in one of {', '.join(allowed)}, got {path!r}")
    return out


# -- subcommands --------------------------------------------------------------------------


def cmd_app(args) -> int:
    from .serve import serve

    try:
        return int(serve(port=args.port, open_browser=not args.no_browser, notebook=args.notebook, ip=args.ip,
                         base_url=args.base_url, token=args.token, cull_idle=args.cull_idle,
                         pool_size=args.pool_size, max_kernels=args.max_kernels,
                         connect_grace=args.connect_grace, close_grace=args.close_grace) or 0)
    except (ValueError, FileNotFoundError) as err:
        raise CLIError(str(err)) from None


def cmd_prepare(args) -> int:
    from .lessons import LESSONS, prepare

    keys = args.pages or None
    unknown = sorted(set(keys or ()) - {item.key for item in LESSONS})
    if unknown:
        raise CLIError(f"unknown pages {unknown}; the app has {[item.key for item in LESSONS]}")
    prepare(keys)
    if args.notebooks:
        from .lessons import prepare_notebooks

        prepare_notebooks()
    return 0


def cmd_compute(args) -> int:
    import torch.nn.functional as F

    from ..core.results import save_landscape
    from ..runs.store import compute_stored

    out = check_suffix(args.out, RESULT_SUFFIXES, "--out")
    grid = make_grid_from_args(args)
    loss_fn = getattr(F, args.loss, None)
    if loss_fn is None or not callable(loss_fn):
        raise CLIError(f"--loss {args.loss!r} is not a function of torch.nn.functional")
    model, image = build_model(args)
    data = load_data(args.data, args.split, image)
    options = dict(
        seed=args.seed, normalization=args.normalization, bias_bn=args.bias_bn,
        strategy=args.strategy, max_samples=args.max_samples, progress=not args.quiet,
    )
    if args.dask or args.scheduler:
        from ..runs.distributed import dask_backend

        options["backend"] = dask_backend(scheduler_address=args.scheduler, n_workers=args.workers,
                                          device=None if args.device == "auto" else args.device)
        options["device"] = "cpu"
    else:
        options["device"] = args.device
    try:
        if args.no_store:
            from ..core.landscape import compute_landscape

            ds = compute_landscape(model, loss_fn, data, grid, **options)
        else:
            ds = compute_stored(model, loss_fn, data, grid, root=args.store, **options)
    except (ValueError, TypeError) as err:
        raise CLIError(str(err)) from None
    except RuntimeError as err:  # torch's, from the model or the loss on this data
        what = f"--demo {args.demo}" if args.demo else f"--model {args.model}"
        where = "".join(f"; {note.removeprefix('landscape-widgets: ')}" for note in getattr(err, "__notes__", ()))
        raise CLIError(f"{what} cannot be evaluated on --data {args.data} with --loss {args.loss}: "
                       f"{str(err).splitlines()[0]}{where}. Check that the data fits the model (a --demo takes its own "
                       f"dataset: {', '.join(f'{k}: {v[1]}' for k, v in sorted(DEMOS.items()))}) and that the "
                       "loss fits its outputs and targets (cross_entropy for class labels)") from None
    save_landscape(ds, out)
    if not args.quiet:
        print(f"wrote {out} ({int(ds['done'].sum())}/{grid.size} points)")
    return 0


def cmd_plot(args) -> int:
    from ..plotting.figures import landscape_figure

    out = check_suffix(args.out, PLOT_SUFFIXES, "--out")
    ds = _load_quick(args.result)
    try:
        fig = landscape_figure(ds, metric=args.metric, log=args.log, slices=args.slices)
    except ValueError as err:
        raise CLIError(str(err)) from None
    fig.savefig(out, dpi=args.dpi)
    print(f"wrote {out}")
    return 0


def cmd_export(args) -> int:
    from ..runs.export import MESH_SUFFIXES, VTK_SUFFIXES, export_landscape

    out = check_suffix(args.out, VTK_SUFFIXES + MESH_SUFFIXES, "--out")
    ds = _load(args.result)
    try:
        export_landscape(ds, out, metric=args.metric, levels=args.levels)
    except (ValueError, ImportError) as err:
        raise CLIError(str(err)) from None
    print(f"wrote {out} and {out.name}.json")
    return 0


def result_info(ds) -> dict:
    """Plain description of a result (an ``xarray.Dataset`` or a
    :class:`~landscape_widgets.runs.quick_read.QuickResult`): grid, progress, extrema and
    how it was made."""
    import numpy as np

    loss = ds["loss"].values
    done = ds["done"].values if "done" in ds else np.isfinite(loss)
    def coord(value) -> float:  # a grid coordinate as it was asked for: 0.1, not 0.10000000000000009
        return float(f"{float(value):.12g}")

    info = {
        "dims": {d: [coord(ds[d].values[0]), coord(ds[d].values[-1]), len(ds[d].values)]
                 for d in ds["loss"].dims},
        "points_done": int(done.sum()),
        "points_total": int(done.size),
        "metrics": [m for m in ("loss", "accuracy") if m in ds],
    }
    if np.isfinite(loss).any():
        at = np.unravel_index(int(np.nanargmin(loss)), loss.shape)
        info["loss_min"] = float(loss[at])
        info["loss_min_at"] = {d: coord(ds[d].values[i]) for d, i in zip(ds["loss"].dims, at)}
        info["loss_max"] = float(np.nanmax(loss))
    info["attrs"] = {k: (v.item() if hasattr(v, "item") else v) for k, v in ds.attrs.items()}
    return info


def cmd_info(args) -> int:
    info = result_info(_load_quick(args.result))
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"result: {args.result}")
    for key, value in info.items():
        if key == "attrs":
            for k, v in value.items():
                print(f"  {k}: {v}")
        else:
            print(f"{key}: {value}")
    return 0


def _load_quick(path: str):
    """The result at ``path`` read without xarray where its format allows (see
    :mod:`~landscape_widgets.runs.quick_read`), else as an ``xarray.Dataset``."""
    from ..runs.quick_read import Unsupported, quick_load

    try:
        return quick_load(path)
    except Unsupported:
        return _load(path)
    except FileNotFoundError as err:
        raise CLIError(str(err)) from None
    except (ValueError, OSError) as err:
        raise CLIError(f"cannot read {path} as a landscape result: {err}") from None


def _load(path: str):
    from ..core.results import load_landscape

    try:
        return load_landscape(path)
    except FileNotFoundError as err:
        raise CLIError(str(err)) from None
    except (ValueError, OSError) as err:
        raise CLIError(f"cannot read {path} as a landscape result: {err}") from None


# -- parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="See the loss landscape of a neural network.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    app = sub.add_parser("app", help="serve the teaching app (a tab per lesson) with Voila")
    app.add_argument("--port", type=int, default=None, help="port (Voila's default 8866)")
    app.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    app.add_argument("--notebook", default=None, help="serve this notebook instead of the app")
    app.add_argument("--ip", default="localhost",
                     help="address to listen on (default localhost; 0.0.0.0 serves a class, and needs --token)")
    app.add_argument("--base-url", default="/", help="path prefix behind a reverse proxy or JupyterHub (default /)")
    app.add_argument("--token", nargs="?", const="", default=None,
                     help="require this access token; --token alone generates one and prints the URL to hand out")
    app.add_argument("--cull-idle", type=float, default=300.0, metavar="SECONDS",
                     help="shut down a closed page's kernel (and its computation) after this idle time "
                          "(default 300; 0 keeps kernels)")
    app.add_argument("--pool-size", type=int, default=1, metavar="N",
                     help="kernels kept pre-heated, having run the app already, so a page opens at once "
                          "(default 1; 0: none)")
    app.add_argument("--max-kernels", type=int, default=0, metavar="N",
                     help="most pages served at once; one more gets a 'server full' page (default 0: no limit)")
    app.add_argument("--connect-grace", type=float, default=120.0, metavar="SECONDS",
                     help="keep a page's kernel this long for its browser to connect before the idle cull "
                          "may end it (default 120)")
    app.add_argument("--close-grace", type=float, default=10.0, metavar="SECONDS",
                     help="shut down a page's kernel (and stop its computation) this long after the page was "
                          "closed or reloaded (default 10; 0: only the idle cull ends it)")
    app.set_defaults(func=cmd_app)

    prep = sub.add_parser("prepare", help="train the app's models and compute its first pictures ahead")
    prep.add_argument("pages", nargs="*", help="only these pages (default all)")
    prep.add_argument("--notebooks", action="store_true",
                      help="also compute the lesson notebooks' experiments (minutes; Binder's build does)")
    prep.set_defaults(func=cmd_prepare)

    comp = sub.add_parser("compute", help="compute a landscape headless and save it")
    source = comp.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="factory returning an nn.Module, as package.module:function")
    source.add_argument("--demo", choices=sorted(DEMOS), help="a built-in trained model")
    comp.add_argument("--weights", help="state_dict file for --model (torch.load(weights_only=True))")
    comp.add_argument("--data", default="digits",
                      help="built-in dataset (digits, moons, spirals) or package.module:function "
                           "returning (inputs, targets) or a DataLoader (default: digits)")
    comp.add_argument("--split", choices=("train", "test"), default="train",
                      help="split of a built-in dataset (default: train)")
    comp.add_argument("--loss", default="cross_entropy", help="torch.nn.functional loss (mean-reduced)")
    comp.add_argument("--dims", type=int, choices=(1, 2, 3), default=2, help="line, plane or volume")
    comp.add_argument("--range", type=float, nargs=2, default=[-1.0, 1.0], metavar=("START", "STOP"),
                      help="coefficient range of every axis (default: -1 1)")
    comp.add_argument("--num", type=int, default=51, help="points per axis (default: 51)")
    comp.add_argument("--seed", type=int, default=0, help="seed of the random directions")
    comp.add_argument("--normalization", choices=("filter", "layer", "none"), default="filter")
    comp.add_argument("--bias-bn", choices=("ignore", "theta", "random"), default="ignore")
    comp.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 (default auto: CUDA if available)")
    comp.add_argument("--strategy", choices=("auto", "loop", "batched"), default="auto")
    comp.add_argument("--max-samples", type=int, default=None, help="use at most this many samples")
    comp.add_argument("--out", required=True, help="result file, .nc or .zarr")
    comp.add_argument("--store", default=None,
                      help="directory of resumable runs (default: the package cache)")
    comp.add_argument("--no-store", action="store_true", help="do not save progress for resuming")
    comp.add_argument("--dask", action="store_true", help="evaluate on a local Dask cluster")
    comp.add_argument("--scheduler", default=None, help="address of a Dask scheduler to use")
    comp.add_argument("--workers", type=int, default=2, help="workers of the local Dask cluster")
    comp.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    comp.set_defaults(func=cmd_compute)

    plot = sub.add_parser("plot", help="draw a result as PNG/SVG/PDF with matplotlib")
    plot.add_argument("result", help="result file (.nc or .zarr)")
    plot.add_argument("--out", required=True, help="figure file: .png, .svg or .pdf")
    plot.add_argument("--metric", choices=("loss", "accuracy"), default="loss")
    plot.add_argument("--log", action="store_true", help="plot log10 of the metric")
    plot.add_argument("--slices", type=int, default=3, help="gamma slices of a 3-D result")
    plot.add_argument("--dpi", type=int, default=150)
    plot.set_defaults(func=cmd_plot)

    export = sub.add_parser("export", help="write a 2-D surface or a 3-D volume / isosurfaces for "
                                           "ParaView (VTK) or mesh viewers (STL/OBJ/PLY/glTF)")
    export.add_argument("result", help="result file (.nc or .zarr), complete")
    export.add_argument("--out", required=True, help="file: .vtk, .vtu, .stl, .obj, .ply, .glb or .gltf")
    export.add_argument("--metric", default="loss", help="data variable to export (default loss)")
    export.add_argument("--levels", type=float, nargs="+", default=None,
                        help="3-D meshes: isosurface values (default the 25/50/75%% quantiles)")
    export.set_defaults(func=cmd_export)

    info = sub.add_parser("info", help="print a result's grid, progress and metadata")
    info.add_argument("result", help="result file (.nc or .zarr)")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 success, 1 bad input, 2 bad usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        return args.func(args)
    except CLIError as err:
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted (finished points are kept in the store)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
