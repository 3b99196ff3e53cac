"""The numeric core runs headless: importing it (and every core module) loads no widget library."""

import pkgutil
import subprocess
import sys

import landscape_widgets

WIDGET_LIBS = ("ipywidgets", "bqplot", "ipyvolume", "ipyvue", "pythreejs")
NOT_CORE = {"widgets", "demo", "app", "cli"}


def core_modules() -> list[str]:
    return [
        f"landscape_widgets.{m.name}"
        for m in pkgutil.iter_modules(landscape_widgets.__path__)
        if m.name not in NOT_CORE
    ]


def test_core_imports_no_widget_library():
    modules = core_modules()
    assert "landscape_widgets.evaluation" in modules and len(modules) > 10
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {WIDGET_LIBS!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_demo_is_reachable_lazily_from_the_package():
    from landscape_widgets.widgets.builtin_demo import demo

    assert landscape_widgets.demo is demo
