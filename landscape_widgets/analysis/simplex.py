"""m-tunnels (Fort & Jastrzebski 2019): a low-loss m-dimensional surface through m + 1 optima.

The ``m + 1`` optima span an m-simplex. Points of a regular lattice on it (barycentric
coordinates ``i / subdivisions``) are each moved by SGD with the gradient's component in
the simplex's span removed, so every point keeps its position on the simplex and moves
only in the ``(D - m)``-dimensional hyperplane normal to it, the same constrained step as
the 1-tunnel of :func:`~landscape_widgets.analysis.connectivity.tunnel`. The optima stay
where they are. The surface joins the optimized points piecewise linearly; its loss is
evaluated at the lattice points and at the midpoints of the lattice's edges.

Projected on the plane through three optima (``m = 2``), every optimized point lies where
it started, so the trained triangle and the flat one occupy the same plane coordinates.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr
from torch import nn

from ..core.params import check_same_architecture, flatten_params
from .connectivity import (descend_within, evaluate_points, linear_path, minibatch_sampler, path_objective,
                           plane_through)


def simplex_lattice(m: int, subdivisions: int) -> np.ndarray:
    """Barycentric coordinates ``[points, m + 1]`` of the regular lattice on an m-simplex
    (all ``i / subdivisions`` with non-negative integer ``i`` summing to ``subdivisions``)."""
    if m < 1 or subdivisions < 1:
        raise ValueError(f"need m >= 1 and subdivisions >= 1, got {m}, {subdivisions}")
    rows = [c for c in itertools.product(range(subdivisions + 1), repeat=m + 1) if sum(c) == subdivisions]
    return np.array(rows, dtype=np.float64) / subdivisions


def lattice_edges(lattice: np.ndarray, subdivisions: int) -> list[tuple[int, int]]:
    """Pairs of neighbouring lattice points (they differ by ``(e_i - e_j) / subdivisions``)."""
    ints = np.rint(lattice * subdivisions).astype(int)
    index = {tuple(r): i for i, r in enumerate(ints)}
    edges = []
    for i, r in enumerate(ints):
        for a, b in itertools.permutations(range(ints.shape[1]), 2):
            step = r.copy()
            step[a] += 1
            step[b] -= 1
            j = index.get(tuple(step))
            if j is not None and i < j:
                edges.append((i, j))
    return edges


def simplex_tunnel(
    models: Sequence[nn.Module],
    loss_fn=None,
    data=None,
    subdivisions: int = 4,
    steps: int = 200,
    lr: float = 0.05,
    momentum: float = 0.9,
    batch_size: int = 128,
    seed: int = 0,
    bn_data=None,
    **objective_kwargs,
) -> xr.Dataset:
    """Train an m-tunnel through ``m + 1`` optima and evaluate its loss.

    Parameters
    ----------
    models : sequence of nn.Module
        ``m + 1 >= 2`` trained networks of one architecture (three for a triangle).
    loss_fn, data, **objective_kwargs
        The loss and training data, as for
        :class:`~landscape_widgets.core.objective.Objective`.
    subdivisions : int
        Lattice points per simplex edge minus one (4: a triangle of 15 points).
    steps, lr, momentum, batch_size, seed
        SGD for each lattice point that is not an optimum.
    bn_data : optional
        Training data for recomputing BatchNorm statistics at every evaluated point
        (models with BatchNorm; see :mod:`~landscape_widgets.analysis.connectivity`).

    Returns
    -------
    xr.Dataset
        Over dimension ``point`` (lattice points first, then edge midpoints):
        ``barycentric`` ``[point, vertex]``, ``loss`` (and ``accuracy``), ``lattice``
        (True at the trained points); ``points`` ``[lattice, param]``, the optimized
        lattice points; attributes ``max_loss`` (over every evaluated point),
        ``vertex_losses`` and ``linear_barriers`` (of the straight path between each
        pair of optima, in ``pairs`` order).
    """
    models = list(models)
    if len(models) < 2:
        raise ValueError("an m-tunnel needs at least two optima (three for a triangle)")
    for other in models[1:]:
        check_same_architecture(models[0], other)
    ob = path_objective(models[0], models[1], loss_fn, data, **objective_kwargs)
    optima = torch.stack([flatten_params(m, ob.layout).to(ob.device, ob.theta.dtype) for m in models])
    m = len(models) - 1
    span, _ = torch.linalg.qr((optima[1:] - optima[0]).double().T)  # [n, m] orthonormal
    span = span.to(ob.theta.dtype)
    lattice = simplex_lattice(m, subdivisions)
    draw = minibatch_sampler(ob, batch_size, torch.Generator().manual_seed(int(seed)))
    bary = torch.as_tensor(lattice, dtype=ob.theta.dtype, device=ob.device)
    points = torch.stack([
        weights @ optima if float(weights.max()) == 1.0  # an optimum: stays
        else descend_within(ob, weights @ optima, span, draw, steps, lr, momentum)
        for weights in bary
    ])
    edges = lattice_edges(lattice, subdivisions)
    evaluated = torch.cat([points, torch.stack([(points[i] + points[j]) / 2 for i, j in edges])])
    coords = np.concatenate([lattice, np.array([(lattice[i] + lattice[j]) / 2 for i, j in edges])])
    values = evaluate_points(ob, models[0], ob.theta, [evaluated[k] - ob.theta for k in range(len(evaluated))],
                             np.eye(len(evaluated)), bn_data)
    pairs = list(itertools.combinations(range(m + 1), 2))
    barriers = [linear_path(models[a], models[b], loss_fn, data, num=21, bn_data=bn_data,
                            **objective_kwargs).attrs["barrier"]
                for a, b in pairs]
    is_vertex = lattice.max(axis=1) == 1.0
    ds = xr.Dataset(
        {name: ("point", v) for name, v in values.values.items()}
        | {"barycentric": (("point", "vertex"), coords),
           "lattice": ("point", np.arange(len(coords)) < len(lattice)),
           "points": (("lattice_point", "param"), points.cpu().numpy())},
    )
    ds.attrs.update(m=m, subdivisions=subdivisions, max_loss=float(np.nanmax(values.loss)),
                    vertex_losses=[float(v) for v in values.loss[: len(lattice)][is_vertex]],
                    pairs=[list(p) for p in pairs], linear_barriers=barriers, steps=steps, lr=lr, seed=seed)
    return ds


def simplex_plane(
    models: Sequence[nn.Module],
    tunnel: xr.Dataset,
    loss_fn=None,
    data=None,
    num: int = 21,
    margin: float = 0.2,
    **landscape_kwargs,
) -> xr.Dataset:
    """The loss on the plane through three optima, with the trained triangle on it.

    Uses :func:`~landscape_widgets.analysis.connectivity.plane_through` (optimum 0 at
    (0, 0), optimum 1 at (1, 0)); adds ``tunnel_alpha``/``tunnel_beta`` and
    ``tunnel_loss`` over ``point`` (the trained surface's evaluated points, projected:
    the flat triangle's coordinates) and ``vertex_alpha``/``vertex_beta``; the tunnel's
    ``pairs``, ``linear_barriers`` and ``max_loss`` attributes.
    """
    if len(models) != 3 or tunnel.attrs.get("m") != 2:
        raise ValueError("simplex_plane draws a triangle: give three models and their simplex_tunnel (m = 2)")
    flats = tuple(flatten_params(m) for m in models)
    ds, to_plane = plane_through(models[0], flats, loss_fn, data, num, margin, **landscape_kwargs)
    corners = torch.stack([(f - flats[0]).double() for f in flats]) @ to_plane  # [3, 2]
    xy = torch.as_tensor(tunnel["barycentric"].values) @ corners.cpu()
    ds.attrs.update(pairs=tunnel.attrs["pairs"], linear_barriers=tunnel.attrs["linear_barriers"],
                    max_loss=tunnel.attrs["max_loss"])
    return ds.assign(
        tunnel_alpha=("point", xy[:, 0].numpy()), tunnel_beta=("point", xy[:, 1].numpy()),
        tunnel_loss=("point", tunnel["loss"].values),
        vertex_alpha=("vertex", corners[:, 0].cpu().numpy()), vertex_beta=("vertex", corners[:, 1].cpu().numpy()),
    )
