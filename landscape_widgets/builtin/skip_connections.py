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

from collections.abc import Mapping, Sequence

import numpy as np
import torch.nn.functional as F
import xarray as xr

from ..analysis.comparison import compare_landscapes
from ..analysis.curvature import slice_convex_fraction
from ..core.grids import plane
from .presets import preset

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


#: How the pictures and the sentences name the networks.
LABELS = {"cnn_skip": "4 blocks with skips", "cnn_plain": "4 plain blocks", "cnn_batchnorm": "4 plain blocks, BatchNorm",
          "deep_skip": "16 blocks with skips", "deep_plain": "16 plain blocks"}

def labelled(maps: dict[str, xr.Dataset]) -> dict[str, xr.Dataset]:
    """The same maps keyed by the names people read (:data:`LABELS`), e.g. for figure titles."""
    return {LABELS.get(name, name): ds for name, ds in maps.items()}


def _number(x: float) -> str:
    """A measured number with three significant digits (one decimal from 10 up)."""
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.3g}"


def _describe(attrs: Mapping[str, float]) -> str:
    """A network's test accuracy and both measures, from its map's ``attrs``."""
    return (f"test accuracy {100 * attrs['test_accuracy']:.1f} %, sharpness {_number(attrs['mean_loss_increase'])}, "
            f"bowl-shaped at {100 * attrs['slice_convex_fraction']:.0f} % of its points")


def _means(runs: Sequence[dict[str, xr.Dataset]], name: str) -> dict[str, float]:
    """Network ``name``'s test accuracy and both measures, averaged over ``runs``."""
    return {attr: float(np.mean([maps[name].attrs[attr] for maps in runs]))
            for attr in ("test_accuracy", "mean_loss_increase", "slice_convex_fraction")}


def _measures_favour(runs: Sequence[dict[str, xr.Dataset]], skip: str, plain: str) -> tuple[bool, bool]:
    """Whether, on the means over ``runs``, the network with skips is the flatter one and
    the more bowl-shaped one."""
    with_skips, without = _means(runs, skip), _means(runs, plain)
    return (with_skips["mean_loss_increase"] < without["mean_loss_increase"],
            with_skips["slice_convex_fraction"] > without["slice_convex_fraction"])


def pair_text(runs: Sequence[dict[str, xr.Dataset]], skip: str, plain: str) -> str:
    """Both measures of the pair ``skip`` / ``plain`` over ``runs``
    (the maps of :func:`skip_comparison`, one dict per training seed): their values (means
    over the seeds), in how many seeds each favours the skips, and whether the two measures
    agree. *Sharpness* is the mean rise of the loss over the picture above its value at
    the centre (smaller: flatter); the *bowl share* is the share of the picture's points
    where it curves up in every direction of the plane (100 %: a clean bowl)."""
    n = len(runs)
    text = "; ".join(f"{LABELS.get(name, name)}: {_describe(_means(runs, name))}" for name in (skip, plain))
    text += ". " if n == 1 else f" (means over {n} training seeds). "
    by_sharp, by_bowl = _measures_favour(runs, skip, plain)
    if n > 1:
        flatter, rounder = np.sum([_measures_favour([maps], skip, plain) for maps in runs], axis=0).tolist()
        text += (f"The network with skips is the flatter one in {flatter} of {n} seeds and the more bowl-shaped one "
                 f"in {rounder} of {n}. ")
        split = [measure for measure, by_mean, count in (("sharpness", by_sharp, flatter),
                                                         ("the bowl share", by_bowl, rounder))
                 if by_mean != (count > n / 2)]
        if split:
            text += (f"For {' and '.join(split)} the mean and most seeds point different ways: one seed's large "
                     "difference decides the mean. ")
    if by_sharp and by_bowl:
        verdict = "both measures favour the skip connections: flatter and closer to a clean bowl."
    elif not (by_sharp or by_bowl):
        verdict = ("neither measure favours the skip connections: with them the picture is no flatter and no "
                   "closer to a clean bowl.")
    else:
        good, bad = ("sharpness", "the bowl share") if by_sharp else ("the bowl share", "sharpness")
        verdict = (f"the two measures disagree: {good} favours the skip connections, {bad} the plain chain. A "
                   "single number about a picture can hide what the picture shows; look at both.")
    return text + (f"On the means, {verdict}" if n > 1 else verdict[0].upper() + verdict[1:])


def skip_text(maps: dict[str, xr.Dataset]) -> str:
    """What the four-block maps of :func:`skip_comparison` show, with the measured numbers:
    :func:`pair_text` of the chain with and without skips, the other networks' numbers,
    and whether this depth shows Li et al.'s effect."""
    others = "; ".join(f"{LABELS.get(name, name)}: {_describe(ds.attrs)}" for name, ds in maps.items()
                       if name not in NAMES[:2])
    both = all(_measures_favour([maps], *NAMES[:2]))
    deep = "plain chains tens of layers deep (far longer to train than this lesson allows)"
    return (pair_text([maps], *NAMES[:2]) + (f" For comparison, {others}." if others else "") + " "
            + (f"That is the direction Li et al. found, although their chaotic landscapes come from {deep}."
               if both else
               f"So at four blocks this page does not show Li et al.'s effect, which they found in {deep}."))


DEEP_NAMES = ("deep_skip", "deep_plain")


def deep_chain_experiment(seeds: Sequence[int] = (0, 1, 2), num: int = 21,
                          max_samples: int | None = 512) -> dict[int, dict[str, xr.Dataset]]:
    """:func:`skip_comparison` of the 16-block CNNs with and without skips (BatchNorm in
    both, as Li et al. keep it) for each training seed, keyed by seed."""
    return {seed: skip_comparison(DEEP_NAMES, seed, num, max_samples) for seed in seeds}


def deep_text(results: dict[int, dict[str, xr.Dataset]]) -> str:
    """What the deep pair shows over the seeds of :func:`deep_chain_experiment`, with the
    measured numbers (:func:`pair_text`)."""
    runs = list(results.values())
    every = all(_measures_favour([maps], *DEEP_NAMES)[1] for maps in runs)
    return (f"Sixteen blocks, {len(runs)} training seeds. " + pair_text(runs, *DEEP_NAMES) + " "
            + ("In every seed the skip connections keep the bowl; without them the landscape has started to break "
               "up, as Li et al. found for much deeper networks." if every else
               "At this depth the bowl share does not favour the skips in every seed."))
