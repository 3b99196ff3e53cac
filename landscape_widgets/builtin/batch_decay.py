"""Li et al. 2018, Section 6: small vs large batch, each trained with and without weight
decay, seen along raw and along filter-normalized random directions.

Both batch sizes train for the same number of epochs, so the small batch makes many more
updates, and weight decay, applied at every update, shrinks its weights more. Along raw
directions a step of the same length is then relatively larger for the small-batch
weights, and with weight decay its minimum looks sharper, although it still generalizes
better; with filter-normalized directions, whose steps are measured against each
filter's own norm, the small-batch minimum is the flatter one again.

:func:`batch_decay_experiment` trains the four models for several seeds (cached on disk,
like every built-in model) and measures them: test accuracy, weight norm, and the mean
loss increase over a plane for both normalizations; :func:`batch_decay_findings` states
what the measurements show and :func:`batch_decay_text` puts it in words.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch.nn.functional as F
import xarray as xr
from torch import nn

from ..analysis.comparison import mean_loss_increase, raw_range_scale
from ..core.grids import plane
from ..core.landscape import compute_landscape
from ..core.params import flatten_params
from .training import TrainConfig, TrainResult, steps_per_epoch, trained
from .zoo import Dataset

BATCH_SIZES = {"small": 32, "large": 1024}
LEARNING_RATES = {"small": 0.05, "large": 0.3}
WEIGHT_DECAYS = (0.0, 1e-3)
EPOCHS = 100
FILTER_HALF_RANGE = 1.0


def batch_decay_config(batch: str, weight_decay: float, seed: int = 0) -> TrainConfig:
    """The training of one of the four models: SGD with momentum for :data:`EPOCHS`
    epochs at the batch size and learning rate of ``batch`` ("small" or "large")."""
    if batch not in BATCH_SIZES:
        raise ValueError(f"batch must be one of {sorted(BATCH_SIZES)}, got {batch!r}")
    return TrainConfig(epochs=EPOCHS, batch_size=BATCH_SIZES[batch], lr=LEARNING_RATES[batch],
                       weight_decay=weight_decay, seed=seed)


def batch_decay_models(seed: int = 0) -> tuple[dict[tuple[str, float], TrainResult], Dataset]:
    """The four trained MLPs of one seed, keyed by ``(batch, weight_decay)``, and their data."""
    models, data = {}, None
    for batch in BATCH_SIZES:
        for wd in WEIGHT_DECAYS:
            models[batch, wd], data = trained("mlp", "digits", batch_decay_config(batch, wd, seed))
    return models, data


def batch_decay_label(batch: str, weight_decay: float) -> str:
    """E.g. ``'small batch, weight decay'``: how pictures and tables name a model."""
    return f"{batch} batch" + (", weight decay" if weight_decay else "")


def batch_decay_named(seed: int = 0) -> tuple[dict[str, nn.Module], Dataset]:
    """The four trained models of one seed keyed by :func:`batch_decay_label`, and their data."""
    models, data = batch_decay_models(seed)
    return {batch_decay_label(*key): r.model for key, r in models.items()}, data


def batch_decay_experiment(
    seeds: Sequence[int] = (0, 1, 2),
    direction_seeds: Sequence[int] = (0, 1, 2),
    num: int = 11,
) -> xr.Dataset:
    """Train and measure the four models for each seed.

    Parameters
    ----------
    seeds : sequence of int
        Training seeds (initialization and minibatch order).
    direction_seeds : sequence of int
        Seeds of the random planes; the sharpness is the mean over them.
    num : int
        Points per axis of each plane.

    Returns
    -------
    xr.Dataset
        Dimensions ``seed``, ``batch`` ("small", "large"), ``weight_decay`` and
        ``normalization`` ("none", "filter"); variables ``test_accuracy``, ``train_loss``,
        ``weight_norm`` (of all parameters), ``updates`` (per batch size) and ``sharpness``
        (mean loss increase over the plane, averaged over ``direction_seeds``).
        ``attrs["half_range_none"]`` and ``attrs["half_range_filter"]`` hold each
        normalization's half range (the raw one from
        :func:`~landscape_widgets.analysis.comparison.raw_range_scale` of all the models).
    """
    trained_models = {seed: batch_decay_models(seed) for seed in seeds}
    everything = [r.model for models, _ in trained_models.values() for r in models.values()]
    half = {"none": FILTER_HALF_RANGE * raw_range_scale(everything), "filter": FILTER_HALF_RANGE}
    batches, norms = list(BATCH_SIZES), list(half)
    shape = (len(seeds), len(batches), len(WEIGHT_DECAYS))
    acc, loss, weight_norm = np.empty(shape), np.empty(shape), np.empty(shape)
    sharpness = np.empty(shape + (len(norms),))
    for i, seed in enumerate(seeds):
        models, data = trained_models[seed]
        for j, batch in enumerate(batches):
            for k, wd in enumerate(WEIGHT_DECAYS):
                r = models[batch, wd]
                acc[i, j, k], loss[i, j, k] = r.test_accuracy, r.train_loss
                weight_norm[i, j, k] = float(flatten_params(r.model).norm())
                for n, norm in enumerate(norms):
                    sharpness[i, j, k, n] = np.mean([
                        mean_loss_increase(compute_landscape(
                            r.model, F.cross_entropy, data.train, plane((-half[norm], half[norm]), num=num), seed=s,
                            normalization=norm))
                        for s in direction_seeds
                    ])
    n_train = len(data.train[0])
    updates = [EPOCHS * steps_per_epoch(n_train, BATCH_SIZES[b]) for b in batches]
    coords = {"seed": list(seeds), "batch": batches, "weight_decay": list(WEIGHT_DECAYS)}
    dims = tuple(coords)
    return xr.Dataset(
        {
            "test_accuracy": (dims, acc, {"long_name": "test accuracy", "units": "fraction"}),
            "train_loss": (dims, loss, {"long_name": "training loss"}),
            "weight_norm": (dims, weight_norm, {"long_name": "norm of all weights"}),
            "sharpness": (dims + ("normalization",), sharpness,
                          {"long_name": "mean loss increase over the plane"}),
            "updates": (("batch",), updates, {"long_name": "SGD updates in training"}),
        },
        coords={**coords, "normalization": norms},
        attrs={"half_range_none": half["none"], "half_range_filter": half["filter"],
               "direction_seeds": list(direction_seeds), "num": num,
               "batch_sizes": [BATCH_SIZES[b] for b in batches], "epochs": EPOCHS},
    )


def batch_decay_findings(ds: xr.Dataset) -> dict[str, bool]:
    """What the measurements show, each over the mean of the training seeds.

    Keys: ``small_generalizes_better`` (with and without weight decay),
    ``decayed_small_has_smaller_weights`` (with weight decay),
    ``decayed_small_looks_sharper_raw`` and ``decayed_small_flatter_filter`` (with weight
    decay, the small-batch minimum compared with the large-batch one along raw and along
    filter-normalized directions) and ``small_flatter_filter`` (filter
    normalization, with and without weight decay).
    """
    mean = ds.mean("seed")
    small, large = mean.sel(batch="small"), mean.sel(batch="large")
    wd = WEIGHT_DECAYS[-1]
    return {
        "small_generalizes_better": bool((small["test_accuracy"] > large["test_accuracy"]).all()),
        "decayed_small_has_smaller_weights": bool(
            small["weight_norm"].sel(weight_decay=wd) < large["weight_norm"].sel(weight_decay=wd)),
        "decayed_small_looks_sharper_raw": bool(
            small["sharpness"].sel(weight_decay=wd, normalization="none")
            > large["sharpness"].sel(weight_decay=wd, normalization="none")),
        "decayed_small_flatter_filter": bool(
            small["sharpness"].sel(weight_decay=wd, normalization="filter")
            < large["sharpness"].sel(weight_decay=wd, normalization="filter")),
        "small_flatter_filter": bool(
            (small["sharpness"].sel(normalization="filter") < large["sharpness"].sel(normalization="filter")).all()),
    }


def batch_decay_text(ds: xr.Dataset) -> dict[str, str]:
    """What a student should see, in words, with the measured numbers: ``"models"`` (test
    accuracy and weights), ``"none"`` and ``"filter"`` (the sharpness seen along raw and
    along filter-normalized directions). Each sentence says what the measurements show,
    also where that is not what the paper found."""
    found = batch_decay_findings(ds)
    mean, n = ds.mean("seed"), ds.sizes["seed"]
    wd = WEIGHT_DECAYS[-1]

    def value(var, batch, decay, **sel):
        return float(mean[var].sel(batch=batch, weight_decay=decay, **sel))

    def seeds_where(var, decay, smaller, **sel) -> int:
        s, l = (ds[var].sel(batch=b, weight_decay=decay, **sel) for b in ("small", "large"))
        return int(((s < l) if smaller else (s > l)).sum())

    acc = {(b, d): 100 * value("test_accuracy", b, d) for b in BATCH_SIZES for d in WEIGHT_DECAYS}
    norm = {(b, d): value("weight_norm", b, d) for b in BATCH_SIZES for d in WEIGHT_DECAYS}
    updates = {b: int(ds["updates"].sel(batch=b)) for b in BATCH_SIZES}
    models = (
        f"Mean over {n} training seeds. Test accuracy: small batch {acc['small', 0.0]:.1f} % without weight decay "
        f"and {acc['small', wd]:.1f} % with it, large batch {acc['large', 0.0]:.1f} % and {acc['large', wd]:.1f} %: "
        + ("the small batch generalizes better in both settings. " if found["small_generalizes_better"] else
           "the small batch does not generalize better in both settings here. ")
        + f"In the same {int(ds.attrs['epochs'])} epochs the small batch makes {updates['small']:,} updates and the "
        f"large batch {updates['large']:,}, and weight decay acts at every update: it shrinks the small-batch "
        f"weights from {norm['small', 0.0]:.1f} to {norm['small', wd]:.1f} and the large-batch weights from "
        f"{norm['large', 0.0]:.1f} to {norm['large', wd]:.1f}"
        + (", so with weight decay the small-batch weights are the smaller ones."
           if found["decayed_small_has_smaller_weights"] else
           "; with weight decay the small-batch weights are not the smaller ones here.")
    )
    sharp = {(b, d, m): value("sharpness", b, d, normalization=m)
             for b in BATCH_SIZES for d in WEIGHT_DECAYS for m in ("none", "filter")}
    raw = (
        f"Raw directions, range ±{ds.attrs['half_range_none']:g}. With weight decay the small-batch minimum "
        + ("looks sharper" if found["decayed_small_looks_sharper_raw"] else "does not look sharper")
        + f": its loss rises by {sharp['small', wd, 'none']:.3f} on average over the plane, against "
        f"{sharp['large', wd, 'none']:.3f} for the large batch "
        f"({seeds_where('sharpness', wd, False, normalization='none')} of {n} seeds)"
        + (", although it generalizes better" if found["small_generalizes_better"] else "")
        + f". Without weight decay: {sharp['small', 0.0, 'none']:.3f} "
        f"against {sharp['large', 0.0, 'none']:.3f}. A raw step is the same length for every network, so it is a "
        "larger step for smaller weights."
    )
    filtered = (
        f"Filter-normalized directions, range ±{ds.attrs['half_range_filter']:g}: each step is measured against "
        "each filter's own size. The small-batch minimum "
        + ("is the flatter one in both settings" if found["small_flatter_filter"] else
           "is not the flatter one in both settings")
        + f": {sharp['small', 0.0, 'filter']:.2f} against {sharp['large', 0.0, 'filter']:.2f} without weight decay, "
        f"{sharp['small', wd, 'filter']:.2f} against {sharp['large', wd, 'filter']:.2f} with it "
        f"({seeds_where('sharpness', wd, True, normalization='filter')} of {n} seeds). "
        + ("The flatter minimum is again the one that generalizes better."
           if found["small_flatter_filter"] and found["small_generalizes_better"] else "")
    )
    return {"models": models, "none": raw, "filter": filtered.strip()}
