"""landscape-widgets: see the loss landscape of a neural network, live.

The top level holds the one-call functions and the objects a user holds. Architecture:
:mod:`~landscape_widgets.core` (objective, parameters, directions, grids, data,
evaluation, streaming, results), :mod:`~landscape_widgets.analysis` (interpolation,
trajectories, comparison, curvature, sharpness, connectivity, ensembling),
:mod:`~landscape_widgets.builtin` (built-in data, models, training, presets, wedge model),
:mod:`~landscape_widgets.runs` (resumable stores, Dask), :mod:`~landscape_widgets.plotting`,
:mod:`~landscape_widgets.widgets` and :mod:`~landscape_widgets.app` (Voila app, CLI).
Importing this package imports nothing heavy: each public name loads its module on first use
(``lw.demo`` the widgets).
"""

import importlib

#: Public name -> the module that defines it. They are imported on first use, so the
#: command line starts without torch or xarray and ``import landscape_widgets`` is cheap.
_EXPORTS = {
    "interpolation_direction": ".core.directions", "random_directions": ".core.directions",
    "PointEvaluator": ".core.evaluation",
    "Axis": ".core.grids", "Grid": ".core.grids", "line": ".core.grids", "make_grid": ".core.grids",
    "plane": ".core.grids", "volume": ".core.grids",
    "compute_landscape": ".core.landscape", "Objective": ".core.objective", "select_params": ".core.params",
    "load_landscape": ".core.results", "save_landscape": ".core.results",
    "Chunk": ".core.streaming", "iter_chunks": ".core.streaming", "refining_chunks": ".core.sampled",
    "compare_landscapes": ".analysis.comparison",
    "convexity_map": ".analysis.curvature", "hessian_eigenvalues": ".analysis.curvature",
    "hessian_directions": ".analysis.curvature",
    "hutchinson_trace": ".analysis.curvature",
    "interpolate": ".analysis.interpolation",
    "sharpness": ".analysis.sharpness", "tunnel_widths": ".analysis.sharpness",
    "trajectory_landscape": ".analysis.trajectory", "trajectory_plane": ".analysis.trajectory",
    "compute_stored": ".runs.store", "load_cached": ".runs.store",
}

__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    # The widgets are imported only when asked for, so the core stays headless.
    if name == "demo":
        from .widgets.builtin_demo import demo

        return demo
    raise AttributeError(f"module 'landscape_widgets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, "demo"})


__all__ = sorted(_EXPORTS)
