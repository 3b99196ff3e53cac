"""The numeric core runs headless: importing it (and every core, analysis, run and
plotting module) loads no widget library and no demo code; the top level exports what a
user holds."""

import importlib
import pkgutil
import subprocess
import sys

import landscape_widgets

WIDGET_LIBS = ("ipywidgets", "bqplot", "ipyvolume", "ipyvue", "pythreejs")
HEADLESS = ("core", "analysis", "runs", "plotting")


def headless_modules() -> list[str]:
    """Every module of the core, the analyses, the run stores and the figures."""
    out = []
    for sub in HEADLESS:
        package = importlib.import_module(f"landscape_widgets.{sub}")
        out += [m.name for m in pkgutil.walk_packages(package.__path__, f"{package.__name__}.")]
    return out


def _loaded_after(code: str) -> list[str]:
    probe = code + (
        "\nimport sys\nprint(sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{WIDGET_LIBS!r} or m.startswith('landscape_widgets.builtin') or m.startswith('sklearn')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return eval(out.stdout.strip().splitlines()[-1])


def test_headless_modules_import_no_widget_library_and_no_demo_code():
    modules = headless_modules()
    assert "landscape_widgets.core.evaluation" in modules and len(modules) > 20
    assert _loaded_after(f"import importlib\nfor m in {modules!r}: importlib.import_module(m)") == []


def test_star_import_stays_headless():
    assert _loaded_after("from landscape_widgets import *") == []
    assert "demo" not in landscape_widgets.__all__


def test_top_level_exports_what_a_user_holds_not_internals():
    for name in ("compute_landscape", "Objective", "plane", "interpolate", "sharpness", "compute_stored"):
        assert name in landscape_widgets.__all__ and callable(getattr(landscape_widgets, name))
    for name in ("fill_chunk", "load_flat_params_", "resolve_device", "empty_landscape", "as_batches"):
        assert not hasattr(landscape_widgets, name)


def test_demo_is_reachable_lazily_from_the_package():
    from landscape_widgets.widgets.builtin_demo import demo

    assert landscape_widgets.demo is demo
