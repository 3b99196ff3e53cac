"""The skip-connection lesson, measured: the built-in CNN with identity skips, as a plain
chain of the same depth, and as the plain chain with BatchNorm, on one filter-normalized
plane each.

Li et al. 2018 found plain chains tens of layers deep chaotic and the same depth with skips
smooth. The four-block CNNs train in seconds; :func:`skip_text` says what the measurements show
at that depth, and does not claim the paper's effect where they do not show it. The
16-block pair (:func:`deep_chain_experiment`, :func:`deep_text`) is deep enough for the
plain chain to lose its bowl.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch.nn.functional as F
import xarray as xr

from ..analysis.comparison import compare_landscapes
from ..analysis.curvature import slice_convex_fraction
from ..core.grids import plane
from .presets import PRESETS, preset

NAMES = ("cnn_skip", "cnn_plain", "cnn_batchnorm")


def skip_comparison(names: Sequence[str] = NAMES, seed: int = 0, num: int = 21,
                    max_samples: int | None = 1000) -> dict[str, xr.Dataset]:
    """The landscapes of the CNN presets ``names`` trained from ``seed``
    (:func:`~landscape_widgets.analysis.comparison.compare_landscapes`, direction seed 0,
    filter-normalized, ``num`` x ``num`` over [-1, 1]^2, on the first ``max_samples``
    training images), each with ``attrs["slice_convex_fraction"]``."""
    runs = {name: preset(name, seed) for name in names}
    data = runs[names[0]][1]
    maps = compare_landscapes({name: r.model for name, (r, _) in runs.items()}, F.cross_entropy, data.train,
                              plane(num=num), seed=0, normalization="filter", test_data=data.test,
                              max_samples=max_samples)
    for name, ds in maps.items():
        ds.attrs["slice_convex_fraction"] = slice_convex_fraction(ds)
        ds.attrs["train_loss"] = runs[name][0].train_loss
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


DEEP_NAMES = ("deep_skip", "deep_plain")


def deep_chain_experiment(seeds: Sequence[int] = (0, 1, 2), num: int = 21,
                          max_samples: int | None = 512) -> dict[int, dict[str, xr.Dataset]]:
    """:func:`skip_comparison` of the 16-block CNNs with and without skips (BatchNorm in
    both, as Li et al. keep it) for each training seed, keyed by seed."""
    return {seed: skip_comparison(DEEP_NAMES, seed, num, max_samples) for seed in seeds}


def deep_text(results: dict[int, dict[str, xr.Dataset]]) -> str:
    """What the deep pair shows over the seeds of :func:`deep_chain_experiment`, with the
    measured numbers."""
    def mean(attr: str, name: str) -> float:
        return float(np.mean([maps[name].attrs[attr] for maps in results.values()]))

    n = len(results)
    rougher = sum(maps["deep_plain"].attrs["slice_convex_fraction"] < maps["deep_skip"].attrs["slice_convex_fraction"]
                  for maps in results.values())
    return (
        f"Sixteen blocks, {n} training seeds: the picture of the chain with skips curves up in every direction "
        f"at {100 * mean('slice_convex_fraction', 'deep_skip'):.0f} % of its points on average, the plain "
        f"chain's at {100 * mean('slice_convex_fraction', 'deep_plain'):.0f} %, and the plain chain is the less "
        f"convex one in {rougher} of {n} seeds. Test accuracy: {100 * mean('test_accuracy', 'deep_skip'):.1f} % "
        f"with skips, {100 * mean('test_accuracy', 'deep_plain'):.1f} % without. "
        + ("At this depth the skip connections keep the bowl; without them the landscape has started to break "
           "up, as Li et al. found for much deeper networks." if rougher == n else
           "At this depth the effect does not show in every seed.")
    )
