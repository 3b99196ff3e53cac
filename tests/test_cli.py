"""The ``landscape-widgets`` command: compute, info, plot, app, and clear errors."""

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import xarray as xr

from landscape_widgets import compute_landscape, line, load_landscape, make_grid, save_landscape
from landscape_widgets.core.results import empty_landscape
from landscape_widgets.app.cli import main
from landscape_widgets.runs.store import open_partial, spec_hash, store_path

MODULE = """
import torch
from landscape_widgets.builtin import zoo

def make():
    return zoo.mlp(width=8)

def other():
    return zoo.mlp(width=9)

def not_a_model():
    return 42

def test_data():
    return tuple(t[:100] for t in zoo.digits().test)

def moons_data():
    return tuple(t[:100] for t in zoo.moons().test)
"""


@pytest.fixture
def user_model(tmp_path, monkeypatch):
    """An importable module ``cli_models`` and a state_dict file of its ``make()``."""
    (tmp_path / "cli_models.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    import cli_models

    torch.manual_seed(3)
    model = cli_models.make()
    weights = tmp_path / "weights.pt"
    torch.save(model.state_dict(), weights)
    return model, weights, cli_models


def _compute(tmp_path, weights, *extra):
    return main([
        "compute", "--model", "cli_models:make", "--weights", str(weights),
        "--data", "cli_models:test_data", "--store", str(tmp_path / "runs"), "--quiet", *extra,
    ])


def test_compute_user_model_equals_library_call(tmp_path, user_model):
    model, weights, cli_models = user_model
    out = tmp_path / "plane.nc"
    rc = _compute(tmp_path, weights, "--dims", "2", "--num", "5", "--range", "-0.5", "0.5",
                  "--seed", "4", "--strategy", "loop", "--out", str(out))
    assert rc == 0
    ds = load_landscape(out)
    ref = compute_landscape(model, F.cross_entropy, cli_models.test_data(),
                            make_grid([(-0.5, 0.5)] * 2, 5), seed=4, strategy="loop")
    np.testing.assert_allclose(ds["loss"].values, ref["loss"].values, rtol=1e-6)
    assert ds.attrs["seed"] == 4 and ds.attrs["complete"] == 1


def test_compute_demo_then_info_and_plots(tmp_path, capsys):
    out = tmp_path / "line.zarr"
    rc = main(["compute", "--demo", "mlp-digits", "--dims", "1", "--num", "7", "--max-samples", "200",
               "--store", str(tmp_path / "runs"), "--out", str(out)])
    assert rc == 0
    ds = load_landscape(out)
    assert ds["loss"].dims == ("alpha",) and bool(ds["done"].all())
    # The trained model sits at a minimum along the line: the centre is the lowest point.
    assert int(np.argmin(ds["loss"].values)) == 3

    capsys.readouterr()
    assert main(["info", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["points_done"] == info["points_total"] == 7
    assert info["dims"] == {"alpha": [-1.0, 1.0, 7]}
    assert info["loss_min_at"] == {"alpha": 0.0}

    for name in ("line.png", "line.svg"):
        assert main(["plot", str(out), "--out", str(tmp_path / name), "--metric", "accuracy"]) == 0
    assert (tmp_path / "line.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (tmp_path / "line.svg").read_bytes()[:500]


@pytest.mark.parametrize("dims", [2, 3])
def test_plot_2d_and_3d(tmp_path, user_model, dims):
    _, weights, _ = user_model
    out = tmp_path / "r.nc"
    assert _compute(tmp_path, weights, "--dims", str(dims), "--num", "4", "--out", str(out)) == 0
    assert main(["plot", str(out), "--out", str(tmp_path / "r.svg"), "--log"]) == 0
    svg = (tmp_path / "r.svg").read_text()
    # Axis labels and the colour bar label are in the figure.
    for text in ("alpha (direction 1, filter-normalized units)", "beta (direction 2, filter-normalized units)",
                 "log10 loss"):
        assert text in svg
    assert svg.count("gamma = ") == (3 if dims == 3 else 0)


def test_export_writes_a_vtk_file_and_its_manifest(tmp_path, user_model, capsys):
    import meshio

    _, weights, _ = user_model
    out = tmp_path / "r.nc"
    assert _compute(tmp_path, weights, "--dims", "2", "--num", "4", "--out", str(out)) == 0
    assert main(["export", str(out), "--out", str(tmp_path / "r.vtk")]) == 0
    mesh = meshio.read(tmp_path / "r.vtk")
    ds = load_landscape(out)
    np.testing.assert_allclose(mesh.point_data["loss"], ds["loss"].values.ravel())
    assert json.loads((tmp_path / "r.vtk.json").read_text())["normalization"] == "filter"
    assert main(["export", str(out), "--out", str(tmp_path / "r.png")]) == 1
    assert "--out must end in one of .vtk" in capsys.readouterr().err


def test_interrupted_compute_resumes_from_store(tmp_path, user_model):
    model, weights, cli_models = user_model

    grid = line(num=9)
    key = spec_hash(model, F.cross_entropy, cli_models.test_data(), grid)
    # A stored run stopped after 3 points; marker values show what is kept and redone.
    stop = threading.Event()
    partial = compute_landscape(model, F.cross_entropy, cli_models.test_data(), grid, chunk_size=3, cancel=stop,
                                order="raster", on_chunk=lambda ds, chunk: stop.set())
    assert partial["done"].values[:3].all() and not partial["done"].values[3:].any()
    partial["loss"].values[:3] = -5.0
    partial["loss"].values[3:] = 123.0
    save_landscape(partial, store_path(key, tmp_path / "runs"))
    out = tmp_path / "l.nc"
    assert _compute(tmp_path, weights, "--dims", "1", "--num", "9", "--out", str(out)) == 0
    ds = load_landscape(out)
    np.testing.assert_array_equal(ds["loss"].values[:3], -5.0)
    assert np.all(ds["loss"].values[3:] > 0) and np.all(ds["loss"].values[3:] < 100)
    assert bool(open_partial(store_path(key, tmp_path / "runs"), grid)["done"].all())


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "no_such_module_xyz:make", "--weights", "W"], "cannot import module 'no_such_module_xyz'"),
        (["--model", "cli_models", "--weights", "W"], "package.module:name"),
        (["--model", "cli_models:missing", "--weights", "W"], "has no 'missing'"),
        (["--model", "cli_models:not_a_model", "--weights", "W"], "not a torch.nn.Module"),
        (["--model", "cli_models:make"], "--model needs --weights"),
        (["--model", "cli_models:make", "--weights", "MISSING"], "does not exist"),
        (["--model", "cli_models:make", "--weights", "GARBAGE"], "cannot read weights"),
        (["--model", "cli_models:other", "--weights", "W"], "do not fit the model"),
        (["--model", "cli_models:make", "--weights", "W", "--num", "0"], "bad grid"),
        (["--model", "cli_models:make", "--weights", "W", "--range", "1", "1"], "bad grid"),
        (["--model", "cli_models:make", "--weights", "W", "--loss", "nope"], "--loss 'nope'"),
        (["--model", "cli_models:make", "--weights", "W", "--data", "nodata:x"], "cannot import module 'nodata'"),
        (["--model", "cli_models:make", "--weights", "W", "--data", "cli_models:not_a_model"],
         "--data cli_models:not_a_model() returned a value of type int, not data: return an (inputs, targets) pair"),
        (["--model", "cli_models:make", "--weights", "W", "--data", "cli_models:moons_data"],
         "--model cli_models:make cannot be evaluated on --data cli_models:moons_data with --loss cross_entropy: "),
        (["--model", "cli_models:make", "--weights", "W", "--data", "cli_models:moons_data"],  # the shapes it got
         "; raised by the model on the first samples of the data (inputs [2, 2], targets [2], at theta). Check"),
        (["--demo", "mlp-digits", "--data", "moons", "--num", "3"], "a --demo takes its own dataset: cnn-digits: digits"),
        (["--demo", "mlp-digits", "--loss", "mse_loss", "--num", "3"], "the loss fits its outputs and targets"),
        (["--demo", "mlp-digits", "--weights", "MISSING"], "--weights goes with --model: --demo mlp-digits is trained"),
    ],
)
def test_compute_bad_input_exits_nonzero_with_a_clear_message(tmp_path, user_model, capsys, argv, message):
    _, weights, _ = user_model
    (tmp_path / "garbage.pt").write_text("not a torch file")
    paths = {"W": str(weights), "MISSING": str(tmp_path / "missing.pt"), "GARBAGE": str(tmp_path / "garbage.pt")}
    argv = [paths.get(a, a) for a in argv]
    rc = main(["compute", *argv, "--out", str(tmp_path / "x.nc"), "--store", str(tmp_path / "runs")])
    assert rc == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.nc").exists()


def test_usage_errors(tmp_path, capsys):
    assert main([]) == 2
    assert main(["compute", "--demo", "mlp-digits"]) == 2  # --out missing
    assert main(["compute", "--demo", "nope", "--out", "x.nc"]) == 2
    assert main(["compute", "--demo", "mlp-digits", "--dims", "4", "--out", "x.nc"]) == 2
    capsys.readouterr()
    assert main(["compute", "--demo", "mlp-digits", "--out", str(tmp_path / "x.csv")]) == 1
    assert ".nc, .zarr" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "nothing.nc")]) == 1
    assert "no landscape result" in capsys.readouterr().err
    (tmp_path / "bad.nc").write_text("not netcdf")
    assert main(["plot", str(tmp_path / "bad.nc"), "--out", str(tmp_path / "p.png")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_app_passes_its_options_to_serve(monkeypatch):
    import landscape_widgets.app.serve as app

    calls = []
    monkeypatch.setattr(app, "serve", lambda **kw: calls.append(kw) or 0)
    assert main(["app", "--port", "9123", "--no-browser"]) == 0
    assert main(["app", "--notebook", "x.ipynb"]) == 0
    assert main(["app", "--ip", "0.0.0.0", "--token", "--base-url", "/class/", "--cull-idle", "60",
                 "--pool-size", "3", "--max-kernels", "30"]) == 0
    defaults = {"ip": "localhost", "base_url": "/", "token": None, "cull_idle": 300.0, "pool_size": 1,
                "max_kernels": 0, "connect_grace": 120.0, "close_grace": 10.0}
    assert calls == [
        {"port": 9123, "open_browser": False, "notebook": None, **defaults},
        {"port": None, "open_browser": True, "notebook": "x.ipynb", **defaults},
        {"port": None, "open_browser": True, "notebook": None, "ip": "0.0.0.0", "base_url": "/class/",
         "token": "", "cull_idle": 60.0, "pool_size": 3, "max_kernels": 30, "connect_grace": 120.0,
         "close_grace": 10.0},
    ]


def test_prepare_fills_the_caches_of_the_pages_it_is_given(monkeypatch):
    import landscape_widgets.app.lessons as lessons

    calls = []
    monkeypatch.setattr(lessons, "prepare", lambda keys: calls.append(keys))
    assert main(["prepare"]) == 0 and main(["prepare", "trajectory", "curvature"]) == 0
    assert calls == [None, ["trajectory", "curvature"]]
    assert main(["prepare", "nonsense"]) == 1 and len(calls) == 2
    # --notebooks: also the lesson notebooks' experiments, called as the notebooks call them
    cached = []
    monkeypatch.setattr(lessons, "cached_call", lambda fn, *a, **k: cached.append((fn, a, k)))
    assert main(["prepare", "--notebooks"]) == 0
    assert cached == [(fn, (), {}) for fn in lessons.NOTEBOOK_EXPERIMENTS]


def test_prepare_covers_every_experiment_the_notebooks_cache():
    import re

    import nbformat

    import landscape_widgets.app.lessons as lessons

    called = set()
    for path in sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("0*.ipynb")):
        code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        called |= set(re.findall(r"cached_call\((\w+)", code))
    assert called == {fn.__name__ for fn in lessons.NOTEBOOK_EXPERIMENTS}


def test_console_script(tmp_path, user_model):
    _, weights, _ = user_model
    out = tmp_path / "l.nc"
    assert _compute(tmp_path, weights, "--dims", "1", "--num", "5", "--out", str(out)) == 0
    ok = subprocess.run(["landscape-widgets", "info", str(out)], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "points_done: 5" in ok.stdout
    bad = subprocess.run(["landscape-widgets", "info", str(tmp_path / "none.nc")],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "no landscape result" in bad.stderr


def _result(grid, seed=0):
    """A computed-looking result (no torch): a bowl with one missing point."""
    ds = empty_landscape(grid, attrs={"normalization": "filter", "directions": "random", "n_params": np.int64(26),
                                      "model": "Sequential", "complete": 0})
    coords = np.meshgrid(*(ds[d].values for d in ds["loss"].dims), indexing="ij")
    ds["loss"].values[...] = 0.1 + sum(c**2 for c in coords)
    ds["accuracy"].values[...] = 1 - ds["loss"].values / ds["loss"].values.max()
    ds["done"].values[...] = True
    ds["loss"].values.reshape(-1)[1] = np.nan
    ds["done"].values.reshape(-1)[2] = False
    ds["loss"].values.reshape(-1)[2] = np.nan
    return ds


@pytest.fixture
def saved_results(tmp_path):
    """The same 2-D result as netCDF, as zarr saved by xarray and as a run store."""
    from landscape_widgets.core.streaming import Chunk
    from landscape_widgets.runs.store import create_store, write_chunk

    grid = make_grid([(-1.0, 1.0), (-0.5, 0.5)], 5)
    ds = _result(grid)
    paths = [save_landscape(ds, tmp_path / "r.nc"), save_landscape(ds, tmp_path / "r.zarr")]
    store = create_store(tmp_path / "store.zarr", grid, ("loss", "accuracy"), attrs=dict(ds.attrs))
    done = np.flatnonzero(ds["done"].values.reshape(-1))
    write_chunk(store, Chunk(done, {m: ds[m].values.reshape(-1)[done] for m in ("loss", "accuracy")}, "loop"))
    return ds, [*paths, store]


def test_quick_read_equals_load_landscape(saved_results):
    """info and plot read results without xarray: the same variables, attributes, info
    and figure (byte for byte) as through load_landscape."""
    import io

    from landscape_widgets.app.cli import result_info
    from landscape_widgets.plotting.figures import landscape_figure
    from landscape_widgets.runs.quick_read import as_dataset, quick_load

    _, paths = saved_results
    for path in paths:
        ref, quick = load_landscape(path), quick_load(path)
        assert set(quick.variables) == set(ref.variables)
        for name, var in ref.variables.items():
            assert quick[name].dims == var.dims and quick[name].values.dtype == var.values.dtype
            np.testing.assert_array_equal(quick[name].values, var.values)
            assert quick[name].attrs == var.attrs
        assert {k: (type(v), v) for k, v in quick.attrs.items()} == {k: (type(v), v) for k, v in ref.attrs.items()}
        assert result_info(quick) == result_info(ref)
        xr.testing.assert_identical(as_dataset(quick), ref)
        for options in ({}, {"log": True}, {"metric": "accuracy"}):
            pngs = []
            for ds in (ref, quick):
                buf = io.BytesIO()
                landscape_figure(ds, **options).savefig(buf, format="png", dpi=60)
                pngs.append(buf.getvalue())
            assert pngs[0] == pngs[1], (path, options)


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_quick_read_keeps_coordinates_that_are_not_dimensions(tmp_path, suffix):
    """xarray stores a coordinate such as a path's ``step`` in the ``coordinates``
    attribute: as_dataset makes it a coordinate again, as load_landscape does."""
    from landscape_widgets.runs.quick_read import as_dataset, quick_load

    t = np.linspace(0.0, 1.0, 6)
    ds = xr.Dataset({"loss": ("t", t ** 2, {"units": "nats"}), "done": ("t", np.ones(6, dtype=bool))},
                    coords={"t": t, "step": ("t", np.arange(6) * 10)}, attrs={"kind": "path"})
    path = save_landscape(ds, tmp_path / f"path{suffix}")
    ref = load_landscape(path)
    assert "step" in ref.coords
    xr.testing.assert_identical(as_dataset(quick_load(path)), ref)


def test_info_and_plot_import_neither_torch_xarray_nor_dask(tmp_path, saved_results):
    _, paths = saved_results
    script = textwrap.dedent(f"""
        import json, sys
        from landscape_widgets.app.cli import main
        assert main(["--help"]) == 0
        help_modules = sorted(m for m in ("numpy", "torch", "xarray", "dask") if m in sys.modules)
        for i, path in enumerate({[str(p) for p in paths]!r}):
            assert main(["info", path, "--json"]) == 0
            assert main(["plot", path, "--out", {str(tmp_path)!r} + f"/p{{i}}.svg", "--log"]) == 0
        heavy = sorted(m for m in ("torch", "xarray", "dask", "scipy") if m in sys.modules)
        print("MODULES", json.dumps([help_modules, heavy]))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    help_modules, heavy = json.loads(out.stdout.split("MODULES", 1)[1])
    assert help_modules == [] and heavy == []
    for i in range(len(paths)):
        svg = (tmp_path / f"p{i}.svg").read_text()
        # axis labels (with the normalization) and the colour bar's label
        for text in ("alpha (direction 1, filter-normalized units)", "beta (direction 2, filter-normalized units)",
                     "log10 loss (mean loss over the data)"):
            assert text in svg


def test_info_falls_back_to_xarray_for_what_it_cannot_decode(tmp_path, capsys):
    """A packed variable (scale_factor) is read by xarray: the same info as load_landscape."""
    from landscape_widgets.app.cli import result_info

    ds = _result(line(num=9))
    ds["loss"].encoding.update(dtype="int16", scale_factor=0.001, _FillValue=-9999)
    path = tmp_path / "packed.nc"
    save_landscape(ds, path)
    capsys.readouterr()
    assert main(["info", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(result_info(load_landscape(path)), default=str))


def test_info_writes_grid_coordinates_as_asked():
    """0.1 on a 21-point line over [-1, 1] is 0.10000000000000009 as a float: info says 0.1."""
    import xarray as xr

    from landscape_widgets.app.cli import result_info

    alpha = np.linspace(-1, 1, 21)
    assert alpha[11] != 0.1
    loss = (alpha - 0.1) ** 2
    ds = xr.Dataset({"loss": ("alpha", loss)}, coords={"alpha": alpha})
    info = result_info(ds)
    assert info["loss_min_at"] == {"alpha": 0.1} and info["dims"] == {"alpha": [-1.0, 1.0, 21]}
