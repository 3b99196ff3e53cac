"""The skip-connection lesson, measured: the built-in CNN with identity skips, as a plain
chain of the same depth, and as the plain chain with BatchNorm, on one filter-normalized
plane each.

Li et al. 2018 found plain chains tens of layers deep chaotic and the same depth with skips
smooth. The built-in CNNs have four blocks, which trains in seconds; :func:`skip_text` says
what the measurements show at that depth, and does not claim the paper's effect where they
do not show it.
"""

from __future__ import annotations

import torch.nn.functional as F
import xarray as xr

from ..analysis.comparison import compare_landscapes
from ..analysis.curvature import slice_convex_fraction
from ..core.grids import plane
from .presets import PRESETS, preset

NAMES = ("cnn_skip", "cnn_plain", "cnn_batchnorm")


def skip_comparison(num: int = 21, max_samples: int | None = 1000) -> dict[str, xr.Dataset]:
    """The three CNNs' landscapes (:func:`~landscape_widgets.analysis.comparison.compare_landscapes`,
    seed 0, filter-normalized, ``num`` x ``num`` over [-1, 1]^2, on the first
    ``max_samples`` training images), each with ``attrs["slice_convex_fraction"]``."""
    runs = {name: preset(name) for name in NAMES}
    data = runs[NAMES[0]][1]
    maps = compare_landscapes({name: r.model for name, (r, _) in runs.items()}, F.cross_entropy, data.train,
                              plane(num=num), seed=0, normalization="filter", test_data=data.test,
                              max_samples=max_samples)
    for ds in maps.values():
        ds.attrs["slice_convex_fraction"] = slice_convex_fraction(ds)
    return maps


def skip_text(maps: dict[str, xr.Dataset]) -> str:
    """What the three maps show, with the measured numbers."""
    def describe(name: str) -> str:
        ds = maps[name]
        return (f"{PRESETS[name].description}: test accuracy {100 * ds.attrs['test_accuracy']:.1f} %, mean loss "
                f"increase {ds.attrs['mean_loss_increase']:.1f}, picture curving up in every direction at "
                f"{100 * ds.attrs['slice_convex_fraction']:.0f} % of its points")

    skip, plain = (maps[n].attrs["slice_convex_fraction"] for n in NAMES[:2])
    deep = ("Li et al.'s chaotic landscapes come from plain chains tens of layers deep, which take far longer "
            "to train than this lesson allows.")
    verdict = (
        f"The plain chain's picture curves up at fewer of its points than the one with skips ({100 * plain:.0f} % "
        f"against {100 * skip:.0f} %), the direction Li et al. found, but at four blocks all three are smooth "
        f"basins: {deep}"
        if plain < skip else
        f"At four blocks the plain chain is no rougher than the one with skips: both are smooth basins. {deep} "
        "So this page does not show their effect."
    )
    return "; ".join(describe(n) for n in NAMES) + ". " + verdict
