"""Weight averaging (SWA) vs prediction averaging of snapshots along a cyclic-LR run.

Fort & Jastrzebski 2019: snapshots taken at the low-LR end of each cycle of a cyclic
learning-rate schedule sit in one low-loss region when the peak learning rate is small,
so averaging their *weights* (SWA) works; with a high peak learning rate they land on
different "wedges", the weight average falls into the high-loss region between them,
while averaging their *predictions* (an ensemble) still helps.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from torch import nn

from ..core.params import flatten_params, model_at
from .connectivity import has_batchnorm, recompute_bn_stats_

Pair = tuple[torch.Tensor, torch.Tensor]


def cyclic_snapshots(
    model: nn.Module,
    train: Pair,
    lr_max: float = 0.1,
    lr_min: float = 1e-3,
    cycles: int = 4,
    epochs_per_cycle: int = 2,
    batch_size: int = 64,
    momentum: float = 0.9,
    seed: int = 0,
) -> list[torch.Tensor]:
    """Continue training a copy of ``model`` with a cosine cyclic learning rate.

    Each cycle decays the learning rate from ``lr_max`` to ``lr_min`` (cosine) over
    ``epochs_per_cycle`` epochs of SGD on cross-entropy over ``train`` (inputs, class
    labels); the flat parameters at the end of each cycle are one snapshot.

    Returns
    -------
    list of torch.Tensor
        ``cycles`` flat parameter vectors.
    """
    if cycles < 1 or epochs_per_cycle < 1 or not 0 < lr_min <= lr_max:
        raise ValueError("need cycles >= 1, epochs_per_cycle >= 1 and 0 < lr_min <= lr_max")
    net = copy.deepcopy(model)
    x, y = train
    gen = torch.Generator().manual_seed(int(seed))
    steps_per_epoch = max(1, -(-len(x) // batch_size))
    cycle_steps = steps_per_epoch * epochs_per_cycle
    opt = torch.optim.SGD(net.parameters(), lr=lr_max, momentum=momentum)
    snapshots = []
    for _ in range(cycles):
        net.train()
        for step in range(cycle_steps):
            if step % steps_per_epoch == 0:
                perm = torch.randperm(len(x), generator=gen)
            frac = step / max(1, cycle_steps - 1)
            opt.param_groups[0]["lr"] = lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * frac))
            k = step % steps_per_epoch
            idx = perm[k * batch_size : (k + 1) * batch_size]
            opt.zero_grad()
            F.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
        snapshots.append(flatten_params(net))
    return snapshots


def weight_average(model: nn.Module, snapshots: Sequence[torch.Tensor], bn_data=None) -> nn.Module:
    """A copy of ``model`` holding the mean of ``snapshots`` (SWA), in eval mode.

    BatchNorm statistics are recomputed from ``bn_data`` (required for BN models).
    """
    if not snapshots:
        raise ValueError("give at least one snapshot")
    net = model_at(model, torch.stack(list(snapshots)).mean(0))
    if has_batchnorm(net):
        if bn_data is None:
            raise ValueError("the model has BatchNorm: pass bn_data (training inputs) to recompute its statistics")
        recompute_bn_stats_(net, bn_data)
    return net.eval()


def prediction_average(model: nn.Module, snapshots: Sequence[torch.Tensor], inputs: torch.Tensor,
                       bn_data=None) -> torch.Tensor:
    """Mean of the snapshots' softmax probabilities on ``inputs`` (an ensemble)."""
    probs = []
    with torch.no_grad():
        for s in snapshots:
            probs.append(F.softmax(weight_average(model, [s], bn_data)(inputs), dim=-1))
    return torch.stack(probs).mean(0)


def _scores(probs: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    nll = float(F.nll_loss(torch.log(probs.clamp_min(1e-12)), y))
    return nll, float((probs.argmax(-1) == y).float().mean())


def compare_averaging(
    model: nn.Module, snapshots: Sequence[torch.Tensor], data: tuple[torch.Tensor, torch.Tensor], bn_data=None
) -> xr.Dataset:
    """Cross-entropy and accuracy on ``data`` of each snapshot, of their weight average
    (SWA) and of their prediction average (ensemble).

    Returns
    -------
    xr.Dataset
        ``loss`` and ``accuracy`` over ``member`` = ``snapshot 0..k-1``, ``swa``,
        ``ensemble``; attribute ``spread`` = mean distance of the snapshots from their
        average (how far apart they are).
    """
    x, y = data
    rows = []
    with torch.no_grad():
        for s in snapshots:
            rows.append(_scores(F.softmax(weight_average(model, [s], bn_data)(x), -1), y))
        rows.append(_scores(F.softmax(weight_average(model, snapshots, bn_data)(x), -1), y))
    rows.append(_scores(prediction_average(model, snapshots, x, bn_data), y))
    members = [f"snapshot {i}" for i in range(len(snapshots))] + ["swa", "ensemble"]
    loss, acc = np.array(rows).T
    stack = torch.stack(list(snapshots))
    ds = xr.Dataset({"loss": ("member", loss), "accuracy": ("member", acc)}, coords={"member": members})
    ds["loss"].attrs.update(long_name="cross-entropy", units="nats")
    ds["accuracy"].attrs.update(long_name="accuracy", units="fraction correct")
    ds.attrs["spread"] = float((stack - stack.mean(0)).norm(dim=1).mean())
    return ds


def cyclic_lr_experiment(
    model: nn.Module,
    train: Pair,
    test: Pair,
    lr_maxes: Sequence[float] = (0.02, 0.4),
    cycles: int = 4,
    epochs_per_cycle: int = 4,
    seed: int = 0,
) -> xr.Dataset:
    """:func:`compare_averaging` on ``test`` for snapshots of cyclic runs on ``train``
    with each peak learning rate, stacked over dimension ``lr_max``."""
    results = [
        compare_averaging(
            model,
            cyclic_snapshots(model, train, lr_max=lr, cycles=cycles, epochs_per_cycle=epochs_per_cycle, seed=seed),
            test,
            bn_data=train,
        ).expand_dims(lr_max=[lr])
        for lr in lr_maxes
    ]
    spreads = [r.attrs["spread"] for r in results]
    ds = xr.concat(results, dim="lr_max")
    ds["spread"] = ("lr_max", np.array(spreads))
    ds["spread"].attrs.update(long_name="mean distance of the snapshots from their average",
                              units="parameter-space distance")
    return ds
