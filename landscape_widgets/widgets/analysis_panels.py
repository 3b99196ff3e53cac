"""Panels for the analyses of the literature: each computes in the background and shows
its figure (:mod:`landscape_widgets.plotting.analysis_figures`) with a line of measured
numbers under it.

- :func:`permutation_panel`: straight lines to a shuffled copy and to a second network
  before and after weight matching, and the plane through them;
- :func:`simplex_panel`: a trained low-loss triangle through three networks;
- :func:`pal_panel`: PAL's parabola against the true line, with a measuring-distance
  slider;
- :func:`entropy_panel`: the loss and its local entropy over a random plane;
- :func:`trust_panel`: how much the picture depends on seed, data sample and
  normalization, with the range check.

A panel's ``widget`` goes into any layout; ``wait()`` blocks until its figure is drawn.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator, Sequence

import ipywidgets as w
from torch import nn

from ..analysis.connectivity import linear_path, plane_through
from ..analysis.line_search import pal_line
from ..analysis.permutation import align, permute_units, random_permutations
from ..analysis.sharpness import sharpness
from ..analysis.simplex import simplex_plane, simplex_tunnel
from ..analysis.smoothing import local_entropy_map
from ..analysis.trust import (bootstrap_spread, check_range, normalization_spread, seed_spread,
                              split_landscape_kwargs)
from ..core.grids import Grid, plane
from ..core.objective import as_objective
from ..core.params import flatten_params
from ..plotting import analysis_figures as figures
from .runner import Runner

#: Resolution of the panels' figures (pixels per inch of the figure's size).
DPI = 90


class FigurePanel:
    """A computation run in the background, drawn as a figure with a summary line.

    Parameters
    ----------
    compute : callable
        ``compute()`` returns the result (run in a worker thread).
    figure : callable
        ``figure(result)`` returns a matplotlib figure.
    summary : callable
        ``summary(result)`` returns the line of measured numbers shown under the figure.
    title : str
    controls : sequence of ipywidgets, optional
        Shown above the figure; call :meth:`start` from their callbacks to recompute.
    """

    def __init__(self, compute: Callable[[], object], figure: Callable[[object], object],
                 summary: Callable[[object], str], title: str, controls: Sequence[w.Widget] = ()) -> None:
        self.compute, self.figure, self.summarize = compute, figure, summary
        self.result = None
        self.status = w.HTML()
        self.image = w.Image(format="png", layout={"max_width": "100%"})
        self.summary = w.HTML()
        self.runner = Runner(max_rate=10.0, debounce=0.2, on_error=self._error)
        self.widget = w.VBox([w.HTML(f"<h4>{title}</h4>"), *controls, self.status, self.image, self.summary])
        for widget, name in ((self.widget, "panel"), (self.image, "figure"), (self.summary, "summary")):
            widget.add_class(f"landscape-analysis-{name}")  # CSS hooks for browser tests

    def start(self) -> None:
        """(Re)compute; a run in flight is cancelled."""
        self.status.value = "computing..."
        self.runner.request(self._work, self._draw)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the figure is drawn (for tests and scripts)."""
        return self.runner.wait(timeout)

    def _work(self, cancel: threading.Event) -> Iterator[object]:
        yield self.compute()

    def _draw(self, result) -> None:
        self.result = result
        fig = self.figure(result)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI)
        self.image.layout.width = f"{round(fig.get_figwidth() * DPI)}px"  # its own size, not stretched
        self.image.value = buf.getvalue()
        self.summary.value = self.summarize(result)
        self.status.value = ""

    def _error(self, exc: BaseException) -> None:
        self.status.value = f"<span style='color:#b00'>error: {type(exc).__name__}: {exc}</span>"


def _started(panel: FigurePanel, autostart: bool) -> FigurePanel:
    if autostart:
        panel.start()
    return panel


def permutation_panel(model_a: nn.Module, model_b: nn.Module, loss_fn=None, data=None, num: int = 21,
                      plane_num: int = 21, autostart: bool = True, **objective_kwargs) -> FigurePanel:
    """Permutation symmetry and weight matching between two networks of one chain
    architecture (see :mod:`~landscape_widgets.analysis.permutation`)."""
    def compute():
        aligned = align(model_a, model_b)
        shuffled = permute_units(model_a, random_permutations(model_a, seed=0))
        paths = {name: linear_path(model_a, other, loss_fn, data, num=num, **objective_kwargs)
                 for name, other in [("A → shuffled A", shuffled), ("A → B", model_b), ("A → B matched", aligned)]}
        points = (flatten_params(model_a), flatten_params(aligned), flatten_params(model_b))
        ds, _ = plane_through(model_a, points, loss_fn, data, plane_num, **objective_kwargs)
        return paths, ds

    def summary(result) -> str:
        paths, _ = result
        before, after = paths["A → B"].attrs["barrier"], paths["A → B matched"].attrs["barrier"]
        return (f"The shuffled copy computes the same function, yet its line rises "
                f"{paths['A → shuffled A'].attrs['barrier']:.3g} above the ends. Weight matching lowers the "
                f"barrier between A and B from {before:.3g} to {after:.3g}.")

    return _started(FigurePanel(compute, lambda r: figures.permutation_figure(*r), summary,
                                "Permutation symmetry and weight matching"), autostart)


def simplex_panel(models: Sequence[nn.Module], loss_fn=None, data=None, subdivisions: int = 4, steps: int = 200,
                  num: int = 21, autostart: bool = True, **objective_kwargs) -> FigurePanel:
    """A trained low-loss triangle (m-tunnel) through three networks, on their plane."""
    def compute():
        tun = simplex_tunnel(models, loss_fn, data, subdivisions=subdivisions, steps=steps, **objective_kwargs)
        return tun, simplex_plane(models, tun, loss_fn, data, num=num, **objective_kwargs)

    def summary(result) -> str:
        tun, _ = result
        return (f"Straight lines between the networks rise up to {max(tun.attrs['linear_barriers']):.3g} above "
                f"their ends; no point of the trained triangle exceeds a loss of {tun.attrs['max_loss']:.3g}.")

    return _started(FigurePanel(compute, lambda r: figures.simplex_figure(r[1]), summary,
                                "A low-loss triangle through three networks"), autostart)


def pal_panel(model: nn.Module, loss_fn=None, data=None, mu: float = 0.1, point=None, autostart: bool = True,
              **objective_kwargs) -> FigurePanel:
    """PAL's parabola against the true loss along the negative gradient; the slider sets
    the measuring distance ``mu``."""
    slider = w.FloatLogSlider(value=mu, base=10, min=-3, max=1, step=0.1, description="measuring distance μ",
                              style={"description_width": "initial"})
    objective = as_objective(model, loss_fn, data, **objective_kwargs)

    def compute():
        return pal_line(objective, mu=float(slider.value), point=point)

    panel = FigurePanel(compute, figures.pal_figure, figures.pal_caption, "PAL: a parabola along the negative gradient",
                        [slider])
    slider.observe(lambda _: panel.start(), "value")
    return _started(panel, autostart)


def entropy_panel(model: nn.Module, loss_fn=None, data=None, grid: Grid | None = None, gamma: float = 1e3,
                  samples: int = 16, autostart: bool = True, **landscape_kwargs) -> FigurePanel:
    """The loss and its local entropy (Entropy-SGD) over a random plane."""
    def compute():
        return local_entropy_map(model, loss_fn, data, grid or plane(num=15), gamma=gamma, samples=samples,
                                 **landscape_kwargs)

    def summary(ds) -> str:
        centre = float(ds["local_entropy"].sel(alpha=0, beta=0, method="nearest"))
        return (f"Local entropy (σ = {ds.attrs['sigma']:.3g} per parameter, {ds.attrs['samples']} draws): "
                f"{centre:.3g} at the centre, {float(ds['local_entropy'].min()):.3g} at the lowest point of the map.")

    return _started(FigurePanel(compute, figures.entropy_figure, summary, "Local entropy: the loss averaged nearby"),
                    autostart)


def trust_panel(model: nn.Module, loss_fn=None, data=None, grid: Grid | None = None, seeds: Sequence[int] = range(5),
                resamples: int = 200, autostart: bool = True, **landscape_kwargs) -> FigurePanel:
    """How much the picture depends on its choices (see :mod:`~landscape_widgets.analysis.trust`).

    Give ``data`` in at least 10 batches (a DataLoader or ``batch_size=``) for the bootstrap.
    """
    grid = grid or plane(num=11)
    objective_kwargs, plane_kwargs = split_landscape_kwargs(landscape_kwargs)
    rule = {k: plane_kwargs[k] for k in ("normalization", "bias_bn") if k in plane_kwargs}

    def compute():
        ob = as_objective(model, loss_fn, data, **objective_kwargs)  # one model copy and data for all five
        return {
            "seeds": seed_spread(ob, grid=grid, seeds=seeds, **plane_kwargs),
            "bootstrap": bootstrap_spread(ob, grid=grid, resamples=resamples, **plane_kwargs),
            "normalization": normalization_spread(ob, grid=grid, **plane_kwargs),
            "range": check_range(ob, grid=grid, warn=False, **plane_kwargs),
            "sharpness": sharpness(ob, **rule),
        }

    def summary(r) -> str:
        radii = ", ".join(f"{n} {float(v):.3g}" for n, v in zip(r["normalization"]["normalization"].values,
                                                               r["normalization"]["radius"].values))
        rng = r["range"]
        verdict = ("suits the basin" if rng["verdict"] == "ok"
                   else f"is far {rng['verdict']}: try ±{rng['suggested']:g}")
        return (f"Sharpness (mean loss increase at radius {r['sharpness'].attrs['radius']:g}): "
                f"{r['sharpness'].attrs['mean_increase']:.3g}. Spread over {len(r['seeds'].attrs['seeds'])} seeds: "
                f"mean sd {r['seeds'].attrs['mean_sd']:.3g}; largest bootstrap standard error "
                f"{float(r['bootstrap']['loss_se'].max()):.3g}. Radius where the loss doubles, by normalization: "
                f"{radii}. The range ±{rng['half_width']:g} {verdict} (the loss doubles at {rng['radius']:.3g}).")

    return _started(FigurePanel(compute, lambda r: figures.trust_figure(r["seeds"], r["bootstrap"]), summary,
                                "How much does this picture depend on its choices?"), autostart)
