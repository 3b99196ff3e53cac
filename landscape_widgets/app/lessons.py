"""The teaching app's pages: one idea each, a few sentences and a live picture.

Every page is built from the package's own panels (the explorer, the trajectory,
interpolation and comparison panels, the connectivity and convexity views) on the
built-in models. What is costly comes from caches that :func:`prepare` (``landscape-widgets
prepare``, also run by Binder's ``postBuild``) fills ahead: the trained models
(:func:`~landscape_widgets.builtin.training.trained`), each page's first landscapes (the
run store, :func:`~landscape_widgets.widgets.runner.landscape_stream` with ``store=True``)
and the trained curves and curvature maps (:func:`~landscape_widgets.runs.memo.cached_call`).
A page is built the first time it is shown; moving a control computes live.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import ipywidgets as w
import torch.nn.functional as F

from ..analysis.connectivity import connectivity_plane, curve_path, linear_path, train_bezier
from ..analysis.curvature import CONVEX_THRESHOLD
from ..analysis.trajectory import trajectory_grid, trajectory_plane
from ..builtin.batch_decay import batch_decay_experiment, batch_decay_named, batch_decay_text
from ..builtin.curvature_pair import curvature_pair, curvature_pair_text
from ..builtin.skip_connections import deep_chain_experiment, skip_comparison
from ..builtin.presets import preset
from ..builtin.training import TrainConfig, trained
from ..builtin.wedge import WEDGE_DATA, wedge_model, wedge_objective
from ..core.params import model_at
from ..runs.memo import cached_call, read_stamp, write_stamp
from ..runs.paths import cache_dir
from ..widgets.comparison import comparison_panel
from ..widgets.connectivity import connectivity_view
from ..widgets.convexity import ConvexityView
from ..widgets.builtin_demo import demo
from ..widgets.decision_boundary import BoundaryExplorer
from ..widgets.explorer import LandscapeExplorer
from ..widgets.interpolation import interpolation_panel
from ..widgets.trajectory import trajectory_panel
from .still import write_still


@dataclass
class Page:
    """A built page: its widget, what computes in the background (``wait()``-able) and,
    on a page with a choice of models, the menu that chooses."""

    widget: w.Widget
    running: list = field(default_factory=list)
    menu: w.Dropdown | None = None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every computation of the page has finished."""
        return all(r.wait(timeout) for r in self.running)


@dataclass(frozen=True)
class Lesson:
    """A page of the app: ``build()`` makes its :class:`Page`."""

    key: str
    title: str
    text: str
    build: Callable[[], Page]


# -- the explorer and its models ---------------------------------------------------------
def _preset_explorer(name: str, **kwargs) -> LandscapeExplorer:
    result, data = preset(name)
    return LandscapeExplorer(result.model, F.cross_entropy, data.train, store=True, **kwargs)


#: The explorer's model menu: label -> explorer on that model.
EXPLORER_MODELS: dict[str, Callable[[], LandscapeExplorer]] = {
    "digits MLP": lambda: demo(store=True),
    "MLP, small batch (32)": lambda: _preset_explorer("small_batch"),
    "MLP, large batch (1024)": lambda: _preset_explorer("large_batch"),
    "MLP, weight decay 5e-3": lambda: _preset_explorer("weight_decay"),
    "CNN with skip connections": lambda: _preset_explorer("cnn_skip", max_samples=256, grids={"2d": (1.0, 31)}),
    "CNN without skips": lambda: _preset_explorer("cnn_plain", max_samples=256, grids={"2d": (1.0, 31)}),
    "CNN with BatchNorm": lambda: _preset_explorer("cnn_batchnorm", max_samples=256, grids={"2d": (1.0, 31)}),
    "wedge toy model": lambda: LandscapeExplorer(wedge_model(), wedge_objective, WEDGE_DATA, directions="axes",
                                                 store=True),
}


def explorer_page() -> Page:
    """The explorer with a model menu (each model's explorer is made once and kept)."""
    made: dict[str, LandscapeExplorer] = {}
    menu = w.Dropdown(options=list(EXPLORER_MODELS), description="model", style={"description_width": "initial"})
    menu.add_class("landscape-model")
    holder = w.Box()
    page = Page(w.VBox([menu, holder]), menu=menu)

    def show(_change=None) -> None:
        for explorer in made.values():  # the hidden ones stop computing
            if explorer.runner.running:
                explorer.stop()
        if menu.value not in made:
            made[menu.value] = EXPLORER_MODELS[menu.value]()
        holder.children = [made[menu.value]]
        page.running[:] = [made[menu.value]]

    menu.observe(show, "value")
    show()
    return page


def boundary_page() -> Page:
    """An MLP on the moons: the landscape beside the decision boundary under the cursor."""
    result, data = trained("mlp", "moons")
    explorer = LandscapeExplorer(result.model, F.cross_entropy, data.train, grids={"2d": (1.0, 31)}, store=True)
    return Page(BoundaryExplorer(explorer, *data.train).widget, [explorer])


def trajectory_page() -> Page:
    """Training of the small-batch MLP on the plane of its path's two principal directions."""
    result, data = preset("small_batch")
    pca = trajectory_plane(result.trajectory)
    panel = trajectory_panel(result.model, F.cross_entropy, data.train, pca, trajectory_grid(pca),
                             trajectory=result.trajectory, store=True)
    return Page(panel.widget, [panel])


def interpolation_page() -> Page:
    """The loss on straight lines: initialization to solution, and between two solutions."""
    small, data = preset("small_batch")
    large, _ = preset("large_batch")
    panels = [
        interpolation_panel(model_at(small.model, small.trajectory[0]), small.model, F.cross_entropy, data.train,
                            labels=("init", "solution"), title="initialization → solution", store=True),
        interpolation_panel(small.model, large.model, F.cross_entropy, data.train,
                            labels=("small batch", "large batch"), title="small batch → large batch", store=True),
    ]
    return Page(w.HBox([p.widget for p in panels]), panels)


def comparison_page() -> Page:
    """The four networks of the batch size and weight decay experiment on one colour scale,
    with what the whole experiment measured."""
    models, data = batch_decay_named(seed=0)
    experiment = cached_call(batch_decay_experiment)
    text = batch_decay_text(experiment)
    where = (f"<p><i>The numbers in these sentences are means over {experiment.sizes['seed']} training "
             "seeds, each network on planes of its own; the captions under the maps are those of the four "
             "networks of seed 0 drawn here, on these planes.</i></p>")
    summary = w.HTML("".join(f"<p>{text[k]}</p>" for k in ("filter", "none")) + where)
    panel = comparison_panel(models, F.cross_entropy, data.train, test_data=data.test, store=True)
    return Page(w.VBox([summary, panel.widget]), [panel])


def _connectivity(seeds: tuple[int, int] = (0, 1), steps: int = 600, num: int = 25):
    """The straight line, the trained Bezier curve and the plane through both, for two
    digits MLPs trained from ``seeds``."""
    (r0, data), (r1, _) = (trained("mlp", "digits", TrainConfig(seed=s)) for s in seeds)
    train = data.train
    bend = train_bezier(r0.model, r1.model, F.cross_entropy, train, steps=steps)
    return (linear_path(r0.model, r1.model, F.cross_entropy, train, num=31),
            curve_path(r0.model, r1.model, bend, F.cross_entropy, train, num=31),
            connectivity_plane(r0.model, r1.model, bend, F.cross_entropy, train, num=num))


def connectivity_page() -> Page:
    """Two independently trained solutions, the barrier between them and the curve around it."""
    line, curve, plane_ds = cached_call(_connectivity)
    summary = w.HTML(
        f"Straight line: the loss rises to <b>{float(line['loss'].max()):.3f}</b> (barrier "
        f"{line.attrs['barrier']:.3f}); trained Bezier curve: at most <b>{float(curve['loss'].max()):.3f}</b> "
        f"(barrier {curve.attrs['barrier']:.3f}). The barrier is the largest height of the loss above the "
        "straight line between its two end values.")
    return Page(w.VBox([summary, connectivity_view(plane_ds)]))


def curvature_page() -> Page:
    """The convexity maps of the demo MLP trained and at its initialization, on one fixed
    colour scale, with what they show."""
    pair = cached_call(curvature_pair)
    views = []
    for name, ds in pair.items():
        view = ConvexityView(normalization="filter", width="560px", height="480px")
        view.update(ds)
        view.widget.title = f"{name}: convexity map"
        views.append(view.widget)
    key = w.HTML("<p><i>Colour and dark lines (its contours): |λmin/λmax| at each point of the plane, blue "
                 f"up to {CONVEX_THRESHOLD:g} (nearly convex), red above. The red cross is the network the plane "
                 "is centred on.</i></p>")
    return Page(w.VBox([w.HTML(f"<p>{curvature_pair_text(pair)}</p>"), w.HBox(views), key]))


LESSONS: tuple[Lesson, ...] = (
    Lesson("explorer", "Explorer",
           "A loss landscape is the loss of a network along two directions through its trained weights "
           "(random ones; for the wedge toy model, two of its parameters). Choose a model, move the controls, "
           "and the picture is computed again, coarse to fine. "
           "The red cross is the trained network itself. Click the map for the loss along each axis through "
           "that point.", explorer_page),
    Lesson("boundary", "What a point is",
           "Every point of the map is a whole network. Hover the map: the picture of the data shows which "
           "class that network predicts for every input of the two-moons data. Near the centre the boundary "
           "follows the moons; far out it falls apart, and the loss is high.", boundary_page),
    Lesson("trajectory", "Training path",
           "Training moves the weights from their random start to the solution. Projected on the two "
           "directions along which the path varies most, the path runs downhill into the basin. Drag the "
           "slider to follow it checkpoint by checkpoint.", trajectory_page),
    Lesson("interpolation", "Straight lines",
           "The loss on the straight line from the initialization to the solution falls smoothly "
           "(Goodfellow et al.). Between two solutions, a bump in the middle would be a barrier; switch the "
           "loss scale to see small bumps, but read their size on the linear scale.", interpolation_page),
    Lesson("comparison", "Sharp and flat",
           "Four networks on one colour scale, trained with small or large batches, each with and without "
           "weight decay. With filter-normalized directions the width of the dark basin can be compared from "
           "one network to the next; switch to none and a step is the same length for every network, which "
           "makes small weights look sharp. Test accuracy is under each map.", comparison_page),
    Lesson("connectivity", "Mode connectivity",
           "Two networks trained from different seeds both reach low loss. The straight line between them "
           "crosses a barrier, but a curve with one trained bend joins them at low loss all the way.",
           connectivity_page),
    Lesson("curvature", "Curvature",
           "A 2-D slice can look like a bowl while the full loss curves downwards in some of the other "
           "thousands of directions. The ratio of the most negative to the most positive curvature, "
           "|λmin/λmax|, is 0 for a truly convex point and near 1 where the loss curves down as much as up.",
           curvature_page),
)


def lesson(key: str) -> Lesson:
    """The lesson named ``key`` (see :data:`LESSONS`)."""
    for item in LESSONS:
        if item.key == key:
            return item
    raise ValueError(f"no lesson {key!r}; the app has {[item.key for item in LESSONS]}")


def prepare(keys=None, log: Callable[[str], None] = print) -> None:
    """Fill the caches every page draws its first picture from: build each page (all by
    default) headless and wait for its computations, and draw the first page's picture
    for the app's loading screen (:func:`~landscape_widgets.app.still.write_still`).
    Afterwards a page opens on stored results; run again after changing the package (the
    caches are keyed by its code)."""
    import time

    from .serve import APP_INTRO, APP_TITLE

    for item in LESSONS if keys is None else [lesson(k) for k in keys]:
        start = time.perf_counter()
        page = item.build()
        page.wait()
        if item is LESSONS[0]:  # the app's loading screen shows this page's first picture
            write_still(page.running[0].result, APP_TITLE, APP_INTRO, item.title, item.text)
        for label in page.menu.options if page.menu is not None else ():  # every model, not only the first
            page.menu.value = label
            page.wait()
        _mark_prepared(item.key)
        log(f"{item.title}: ready ({time.perf_counter() - start:.1f} s)")


#: The experiments the lesson notebooks draw from ``cached_call(fn)`` (full mode): what
#: :func:`prepare_notebooks` computes ahead.
NOTEBOOK_EXPERIMENTS: tuple[Callable, ...] = (batch_decay_experiment, skip_comparison, deep_chain_experiment,
                                              curvature_pair)


def prepare_notebooks(log: Callable[[str], None] = print) -> None:
    """Fill the caches of the lesson notebooks' experiments (:data:`NOTEBOOK_EXPERIMENTS`),
    so that each notebook opens without training or computing them (minutes each on a
    small machine; Binder's ``postBuild`` runs this)."""
    import time

    for fn in NOTEBOOK_EXPERIMENTS:
        start = time.perf_counter()
        cached_call(fn)
        log(f"{fn.__name__}: ready ({time.perf_counter() - start:.1f} s)")


def _prepared_file() -> Path:
    return cache_dir() / "prepared-lessons.json"


def _mark_prepared(key: str) -> None:
    write_stamp(_prepared_file(), lessons=sorted(prepared_lessons() | {key}))


def prepared_lessons() -> set[str]:
    """The lessons whose caches :func:`prepare` has filled with this package's code (their
    pages build without computing anything)."""
    stamp = read_stamp(_prepared_file())
    return set(stamp.get("lessons", ())) if stamp is not None else set()
