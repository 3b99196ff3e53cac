"""The curvature lesson's contrasting pair: the demo digits MLP trained, and the same
network at its random initialization.

Both slices look like bowls, but only the trained network's full loss is nearly convex:
at the initialization the loss curves down, in some of the thousands of directions the
picture does not show, almost as much as it curves up. :func:`curvature_pair` measures
both (the convexity map of each and the share of its slice that curves up), and
:func:`curvature_pair_text` says what the measurements show.
"""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F
import xarray as xr

from ..analysis.curvature import CONVEX_THRESHOLD, convexity_map, slice_convex_fraction
from ..core.grids import plane
from ..core.landscape import compute_landscape
from ..core.params import model_at
from .training import TrainConfig, trained

NAMES = ("trained", "at initialization")


def curvature_pair(num: int = 9, slice_num: int = 21, steps: int = 20, max_samples: int | None = None,
                   seed: int = 0) -> dict[str, xr.Dataset]:
    """The convexity map of each network of the pair on its filter-normalized random plane
    (seed 0, ``num`` x ``num`` over [-1, 1]^2, ``steps`` as in
    :func:`~landscape_widgets.analysis.curvature.convexity_map`), keyed by :data:`NAMES`;
    ``attrs["slice_convex_fraction"]`` holds the share of the same plane's loss slice
    (``slice_num`` x ``slice_num``) that curves up in every direction of the plane.
    ``max_samples``: the first training samples only; ``seed``: the training seed of the
    network (and of its initialization)."""
    result, data = trained("mlp", "digits", TrainConfig(seed=seed))
    models = dict(zip(NAMES, (result.model, model_at(result.model, result.trajectory[0]))))
    out = {}
    for name, model in models.items():
        ds = convexity_map(model, F.cross_entropy, data.train, grid=plane(num=num), steps=steps,
                           max_samples=max_samples)
        picture = compute_landscape(model, F.cross_entropy, data.train, plane(num=slice_num),
                                    max_samples=max_samples)
        ds.attrs["slice_convex_fraction"] = slice_convex_fraction(picture)
        out[name] = ds
    return out


def _network(name: str) -> str:
    """How the text names a network of :data:`NAMES`."""
    return "the trained network" if name == NAMES[0] else f"the network {name}"


def curvature_pair_text(pair: dict[str, xr.Dataset]) -> str:
    """What a student should see in the pair's maps, with the measured numbers: for each
    network, how much of its picture curves up (the slice), how much of its full loss is
    nearly convex (|λmin/λmax| up to
    :data:`~landscape_widgets.analysis.curvature.CONVEX_THRESHOLD`), and a verdict on
    both decided from those numbers (a bowl where the slice curves up at half its points
    or more; nearly convex where the map's median ratio is within the threshold)."""
    parts = []
    verdicts = []
    for name, ds in pair.items():
        ratio = ds["convexity"].values
        above = float(np.mean(ratio > CONVEX_THRESHOLD))
        bowl, network = ds.attrs["slice_convex_fraction"], _network(name)
        parts.append(
            f"{network[0].upper()}{network[1:]}: the picture curves up in every direction of the "
            f"plane at {100 * bowl:.0f} % of its points; the full loss has |λmin/λmax| from {ratio.min():.2f} to "
            f"{ratio.max():.2f} (median {np.median(ratio):.2f}), above {CONVEX_THRESHOLD:g} (red) on "
            f"{100 * above:.0f} % of the map.")
        verdicts.append(
            f"the picture of {network} {'looks' if bowl >= 0.5 else 'does not look'} like a bowl and its full "
            "loss is " + ("nearly convex over most of the map" if np.median(ratio) <= CONVEX_THRESHOLD else
                          "not nearly convex over most of the map: it curves down in directions the picture does "
                          "not show"))
    parts.append(f"Above {CONVEX_THRESHOLD:g}, the loss's most downward curvature is more than {CONVEX_THRESHOLD:g} × "
                 "its steepest upward one. So "
                 + "; ".join(verdicts) + ".")
    trained_ds, initial = pair[NAMES[0]], pair[NAMES[1]]
    if (initial["convexity"].median() > CONVEX_THRESHOLD >= trained_ds["convexity"].max()
            and initial.attrs["slice_convex_fraction"] >= 0.5):
        parts.append("Both pictures look like bowls over most of the plane, but only the trained network sits in a "
                     "nearly convex basin.")
    return " ".join(parts)
