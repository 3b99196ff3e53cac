"""The axes of a slice, by kind: random (Li et al.), the top Hessian eigenvectors,
coordinate axes, the PCA of a training trajectory, or the line to a second model.

:func:`plane_directions` gives ``ndim`` flat directions over an objective's moved
parameters and the attributes that say how they were made, for
:func:`~landscape_widgets.core.landscape.compute_landscape` or the explorer. Scales:

- ``random``: normalized like Li et al. (``normalization``, ``bias_bn``);
- ``hessian``: unit eigenvectors of the largest Hessian eigenvalues (coordinates are
  parameter-space distances);
- ``axes``: unit vectors along single moved parameters, by default the one of largest
  and then those of smallest ``|theta|`` (for the wedge model, a long axis of the
  optimum's wedge and short ones: the plane that shows the wedges); coordinates are
  changes of those parameters' values;
- ``trajectory``: the first principal components of the checkpoints, each scaled to
  the path's largest extent along it (coordinate 1 reaches the farthest checkpoint);
- ``two models``: the first axis is ``theta2 - theta1`` (coordinate 1 is the second
  model); further axes are random directions, normalized and made orthogonal to it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from ..core.directions import orthogonalize_direction, resolve_directions
from ..core.objective import Objective
from ..core.params import check_same_architecture, flatten_params
from .curvature import hessian_directions
from .trajectory import trajectory_plane

DIRECTION_KINDS: tuple[str, ...] = ("random", "hessian", "axes", "trajectory", "two models")


def plane_directions(
    objective: Objective,
    kind: str,
    ndim: int,
    *,
    seed: int = 0,
    normalization: str = "filter",
    bias_bn: str = "ignore",
    trajectory: Sequence[torch.Tensor] | None = None,
    model2: nn.Module | None = None,
    axes: Sequence[int] | None = None,
) -> tuple[list[torch.Tensor], dict]:
    """``ndim`` directions of ``kind`` around the objective's theta (see the module docs).

    Parameters
    ----------
    objective : Objective
        The model, data and moved parameters.
    kind : {"random", "hessian", "axes", "trajectory", "two models"}
    ndim : int
        Number of directions (1-3; a trajectory gives at most 2).
    seed : int
        Random directions' seed (also Lanczos' start vector and the extra axes of
        ``two models``).
    normalization, bias_bn
        For random directions.
    trajectory : sequence of torch.Tensor, optional
        Flat checkpoints over all parameters, the final one last (``trajectory``).
    model2 : nn.Module, optional
        The second model (``two models``).
    axes : sequence of int, optional
        Flat indices of the moved parameters (``axes``; default :func:`default_axes`).

    Returns
    -------
    directions : list of torch.Tensor
    how : dict
        Attributes for the result (``directions`` names the kind).
    """
    ob = objective
    if kind not in DIRECTION_KINDS:
        raise ValueError(f"kind must be one of {DIRECTION_KINDS}, got {kind!r}")
    if kind == "random":
        return resolve_directions(ob.model, ndim, None, seed, normalization, bias_bn, ob.theta, params=ob.layout)
    if kind == "hessian":
        dirs = hessian_directions(ob, k=ndim, seed=seed)
        return dirs, {"directions": "hessian", "seed": seed, "units": "parameter-space distance"}
    if kind == "axes":
        axes = list(axes) if axes is not None else default_axes(ob.theta, ndim)
        if len(axes) != ndim or len(set(axes)) != ndim or not all(0 <= int(i) < ob.layout.size for i in axes):
            raise ValueError(f"give {ndim} different parameter indices in [0, {ob.layout.size}), got {axes}")
        eye = torch.zeros(ndim, ob.layout.size, device=ob.device, dtype=ob.theta.dtype)
        eye[torch.arange(ndim), torch.as_tensor(axes)] = 1.0
        return list(eye), {"directions": "axes", "axes": [int(i) for i in axes], "units": "parameter value"}
    if kind == "trajectory":
        if trajectory is None:
            raise ValueError("trajectory directions need the checkpoints: pass trajectory=[...]")
        if ndim > 2:
            raise ValueError("a trajectory PCA gives two directions; use the 1-D or 2-D view")
        if trajectory[-1].numel() != ob.layout.size:
            raise ValueError(f"the checkpoints hold {trajectory[-1].numel()} parameters but "
                             f"{ob.layout.size} are moved: use params='all' with a trajectory")
        pca = trajectory_plane(trajectory)
        extent = np.abs(pca.path).max(axis=0)
        dirs = [(d * float(e)).to(ob.device, ob.theta.dtype) for d, e in zip(pca.directions[:ndim], extent)]
        return dirs, {"directions": "trajectory", "explained_variance": pca.explained_variance_ratio[:ndim].tolist()}
    if model2 is None:
        raise ValueError("'two models' directions need the second model: pass model2=...")
    check_same_architecture(ob.model, model2)
    first = flatten_params(model2, ob.layout).to(ob.device, ob.theta.dtype) - ob.theta
    dirs = [first]
    if ndim > 1:
        extra, _ = resolve_directions(ob.model, ndim - 1, None, seed, normalization, bias_bn, ob.theta,
                                      params=ob.layout)
        for d in extra:
            dirs.append(orthogonalize_direction(d, dirs))
    return dirs, {"directions": "two models", "seed": seed, "normalization": normalization}


def default_axes(theta: torch.Tensor, ndim: int) -> list[int]:
    """The flat index of the largest ``|theta|``, then those of the smallest."""
    order = torch.argsort(theta.abs(), stable=True).tolist()
    return [order[-1]] + order[: ndim - 1]
