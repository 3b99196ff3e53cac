"""Radial structure of training (Fort & Jastrzebski 2019, Section 4): how far from the
origin the optimizer travels, and how far it moves from its start.

Along training the norm of the weights grows; a larger learning rate, L2 or width changes
how far out the optimizer settles. :func:`weight_norms` reads both distances off a recorded
trajectory (flat checkpoints, as :func:`landscape_widgets.builtin.training.train` records).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr


def weight_norms(trajectory: Sequence[torch.Tensor], per_epoch: int = 1) -> xr.Dataset:
    """``|theta_i|`` and ``|theta_i - theta_0|`` at every checkpoint.

    Parameters
    ----------
    trajectory : sequence of torch.Tensor
        Flat checkpoints in training order, the initialization first.
    per_epoch : int
        Checkpoints per epoch after the first (for the ``epoch`` coordinate).

    Returns
    -------
    xr.Dataset
        ``norm`` and ``distance_from_init`` over ``epoch`` (0 = initialization).
    """
    if len(trajectory) < 2:
        raise ValueError("a trajectory needs the initialization and at least one checkpoint")
    if per_epoch < 1:
        raise ValueError(f"per_epoch must be >= 1, got {per_epoch}")
    rows = torch.stack([p.detach().double().cpu() for p in trajectory])
    norm = rows.norm(dim=1).numpy()
    moved = (rows - rows[0]).norm(dim=1).numpy()
    epoch = np.arange(len(rows)) / per_epoch
    ds = xr.Dataset({"norm": ("epoch", norm), "distance_from_init": ("epoch", moved)}, coords={"epoch": epoch})
    ds["norm"].attrs.update(long_name="|θ| (norm of the weights)", units="parameter units")
    ds["distance_from_init"].attrs.update(long_name="|θ - θ0| (distance from the initialization)",
                                          units="parameter units")
    return ds
