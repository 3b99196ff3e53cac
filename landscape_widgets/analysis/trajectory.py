"""Optimization trajectories on the PCA plane (Li et al. 2018, Section 7).

The rows ``theta_i - theta_final`` of the recorded checkpoints are reduced with PCA to
two unit directions; a checkpoint's coordinates are ``<theta_i - theta_final, d> / |d|``,
so the final point sits at the origin. The loss is then evaluated on that plane around
``theta_final`` with :func:`landscape_widgets.core.landscape.compute_landscape`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from ..core.grids import Grid, make_grid
from ..core.landscape import compute_landscape
from ..core.params import ParamLayout


@dataclass(frozen=True)
class TrajectoryPlane:
    """The PCA plane of a trajectory.

    Attributes
    ----------
    theta : torch.Tensor
        The final point (the plane's origin), flat.
    directions : list of torch.Tensor
        Two orthonormal flat directions (first and second principal component).
    path : np.ndarray
        ``[n_checkpoints, 2]`` coordinates of every checkpoint; the last row is (0, 0).
    explained_variance_ratio : np.ndarray
        Fraction of the variance of the rows each direction explains (sums to <= 1).
    """

    theta: torch.Tensor
    directions: list[torch.Tensor]
    path: np.ndarray
    explained_variance_ratio: np.ndarray

    def axis_labels(self) -> list[str]:
        """``["PC1 (83.1 % of variance, parameter-space distance)", ...]``-style labels for
        plots: the coordinates are distances along the unit principal directions."""
        return [f"PC{i + 1} ({100 * r:.1f} % of variance, parameter-space distance)"
                for i, r in enumerate(self.explained_variance_ratio)]


def project(points: torch.Tensor | Sequence[torch.Tensor], theta: torch.Tensor,
            directions: Sequence[torch.Tensor]) -> np.ndarray:
    """Coordinates ``<p - theta, d> / |d|`` of flat points along each direction.

    Returns
    -------
    np.ndarray
        ``[n_points, n_directions]``.
    """
    pts = torch.stack(list(points)) if not torch.is_tensor(points) else points.reshape(-1, theta.numel())
    diff = pts.double() - theta.double()
    dirs = torch.stack([d.double() for d in directions])
    return (diff @ dirs.T / dirs.norm(dim=1)).numpy()


def trajectory_plane(
    trajectory: Sequence[torch.Tensor], layout: ParamLayout | None = None, bias_bn: str = "keep"
) -> TrajectoryPlane:
    """PCA of ``theta_i - theta_final`` over a recorded trajectory.

    Parameters
    ----------
    trajectory : sequence of flat tensors
        Checkpoints in training order, the final point last (as recorded by
        :func:`landscape_widgets.builtin.training.train`). At least 3 are needed.
    layout : ParamLayout, optional
        Needed only with ``bias_bn="ignore"``.
    bias_bn : {"keep", "ignore"}
        ``ignore``: zero the 1-D tensors (biases, BatchNorm) in the rows before PCA, as
        the reference code optionally does (the same rule as ``bias_bn="ignore"`` for
        random directions); ``keep``: use them like the other parameters.

    Returns
    -------
    TrajectoryPlane
    """
    if len(trajectory) < 3:
        raise ValueError(f"a trajectory PCA needs at least 3 checkpoints, got {len(trajectory)}")
    if bias_bn not in ("keep", "ignore"):
        raise ValueError(f"bias_bn must be 'keep' or 'ignore' for a trajectory PCA, got {bias_bn!r}")
    if bias_bn == "ignore" and layout is None:
        raise ValueError("bias_bn='ignore' needs the parameter layout (param_layout(model))")
    theta = trajectory[-1].detach().cpu().double()
    rows = torch.stack([p.detach().cpu().double() - theta for p in trajectory[:-1]])
    if bias_bn == "ignore":
        parts = layout.split(rows)
        for name, shape in zip(layout.names, layout.shapes):
            if len(shape) <= 1:
                parts[name].zero_()
    centred = (rows - rows.mean(dim=0)).numpy()
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    var = s**2
    if var.sum() == 0:
        raise ValueError("the trajectory does not move: all checkpoints are equal")
    ratio = var[:2] / var.sum()
    directions = [torch.from_numpy(vt[i].copy()).float() for i in range(2)]
    path = project(torch.stack([p.detach().cpu() for p in trajectory]), theta.float(), directions)
    return TrajectoryPlane(theta.float(), directions, path, ratio)


def trajectory_grid(plane: TrajectoryPlane, num: int = 21, margin: float = 0.25) -> Grid:
    """A grid covering the projected path plus ``margin`` of its extent."""
    lo, hi = plane.path.min(axis=0), plane.path.max(axis=0)
    pad = margin * np.maximum(hi - lo, 1e-6)
    return make_grid([(float(lo[i] - pad[i]), float(hi[i] + pad[i])) for i in range(2)], num)


def trajectory_landscape(
    model,
    loss_fn,
    data,
    plane: TrajectoryPlane,
    grid: Grid | None = None,
    **landscape_kwargs,
) -> xr.Dataset:
    """Loss on the PCA plane around the final point, with the path in the attributes.

    Parameters
    ----------
    model, loss_fn, data
        As for :func:`~landscape_widgets.core.landscape.compute_landscape` (an Objective too).
    plane : TrajectoryPlane
        From :func:`trajectory_plane`.
    grid : Grid, optional
        Default: :func:`trajectory_grid` with 21x21 points.
    **landscape_kwargs
        Passed to :func:`~landscape_widgets.core.landscape.compute_landscape` (device, strategy, on_chunk, cancel, params, ...).

    Returns
    -------
    xr.Dataset
        As :func:`compute_landscape`, plus attributes ``path_alpha``, ``path_beta`` and
        ``explained_variance_ratio``.
    """
    grid = trajectory_grid(plane) if grid is None else grid
    ds = compute_landscape(
        model, loss_fn, data, grid, directions=plane.directions, theta=plane.theta, **landscape_kwargs
    )
    ds.attrs.update(
        path_alpha=plane.path[:, 0].tolist(),
        path_beta=plane.path[:, 1].tolist(),
        explained_variance_ratio=plane.explained_variance_ratio.tolist(),
    )
    return ds
