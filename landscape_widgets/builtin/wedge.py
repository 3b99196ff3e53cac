"""The wedge toy landscape of Fort & Jastrzebski 2019, usable like a model.

In ``D`` dimensions with ``n`` long directions the loss is the distance to the nearest
*n-wedge* (a coordinate subspace spanned by ``n`` axes): sort ``|x|``, keep the ``D - n``
smallest, take the square root of the sum of their squares. Every point with at most
``n`` non-zero coordinates is a global minimum (loss 0), and the minima form a union of
``D choose n`` flat subspaces that all meet at the origin.

:class:`WedgeModel` holds the point as one ``[1, D]`` parameter and returns the loss from
``forward`` whatever its input, so ``compute_landscape(wedge_model(...), wedge_objective,
WEDGE_DATA)`` draws the toy landscape instantly in every view. The parameter is 2-D on
purpose: the default ``filter`` normalization with ``bias_bn="ignore"`` would zero a 1-D
parameter's directions; here the single "filter" is the whole point, so filter and layer
normalization both scale a direction to ``|theta|``.
"""

from __future__ import annotations

import torch
from torch import nn

#: A dummy one-sample dataset: the wedge model ignores its input.
WEDGE_DATA: tuple[torch.Tensor, torch.Tensor] = (torch.zeros(1, 1), torch.zeros(1))


def wedge_loss(x: torch.Tensor, n_long: int) -> torch.Tensor:
    """Distance from ``x`` (last dimension ``D``) to the nearest n-wedge.

    Parameters
    ----------
    x : torch.Tensor
        Points, shape ``[..., D]``.
    n_long : int
        Number of long directions ``n`` (``0 <= n < D``).

    Returns
    -------
    torch.Tensor
        Shape ``[...]``: sqrt of the sum of squares of the ``D - n`` smallest ``|x_i|``.
    """
    d = x.shape[-1]
    if not 0 <= n_long < d:
        raise ValueError(f"n_long must be in [0, D) = [0, {d}), got {n_long}")
    small = torch.sort(x.abs(), dim=-1).values[..., : d - n_long]
    return small.square().sum(-1).sqrt()


class WedgeModel(nn.Module):
    """The wedge loss as a module: one ``[1, D]`` parameter ``point``.

    ``forward(x)`` ignores the values of ``x`` and returns the loss at ``point``
    repeated for each of the ``len(x)`` samples, so :func:`wedge_objective` (the mean)
    is the loss. It works with ``torch.func.functional_call`` and ``torch.vmap``.
    """

    def __init__(self, dim: int, n_long: int, init: torch.Tensor | None = None) -> None:
        super().__init__()
        if not 0 <= n_long < dim:
            raise ValueError(f"need 0 <= n_long < dim, got n_long={n_long}, dim={dim}")
        self.n_long = int(n_long)
        start = torch.zeros(1, dim) if init is None else torch.as_tensor(init, dtype=torch.float32)
        self.point = nn.Parameter(start.reshape(1, dim).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return wedge_loss(self.point, self.n_long).expand(x.shape[0])


def wedge_objective(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The ``loss_fn`` to use with :class:`WedgeModel`: the mean of its outputs."""
    return outputs.mean()


def wedge_optimum(dim: int, n_long: int, axes=None, scale: float = 1.0, seed: int = 0) -> torch.Tensor:
    """A point on an n-wedge: ``n_long`` non-zero coordinates (random sign and size).

    Parameters
    ----------
    axes : sequence of int, optional
        The wedge's axes (default: ``n_long`` random ones).
    scale : float
        Typical size of the non-zero coordinates.
    """
    gen = torch.Generator().manual_seed(int(seed))
    axes = torch.randperm(dim, generator=gen)[:n_long] if axes is None else torch.as_tensor(axes)
    if len(axes) != n_long:
        raise ValueError(f"give {n_long} axes, got {len(axes)}")
    x = torch.zeros(dim)
    x[axes] = scale * (1 + torch.rand(n_long, generator=gen)) * torch.sign(torch.randn(n_long, generator=gen))
    return x


def wedge_model(dim: int = 50, n_long: int = 5, seed: int = 0, scale: float = 1.0) -> WedgeModel:
    """A :class:`WedgeModel` sitting at a random optimum (see :func:`wedge_optimum`)."""
    return WedgeModel(dim, n_long, wedge_optimum(dim, n_long, scale=scale, seed=seed))


def subspace_optimization(
    dim: int,
    n_long: int,
    d: int,
    steps: int = 100,
    seed: int = 0,
    start_scale: float = 1.0,
) -> tuple[float, float]:
    """Minimize the wedge loss within a random ``d``-dimensional affine subspace.

    The subspace passes through a random Gaussian start ``x0`` along ``d`` random
    orthonormal directions ``P``; the search is over ``z`` in ``x0 + P z``. The squared
    loss is piecewise quadratic (one piece per choice of the ``D - n`` smallest
    coordinates), so each step is a Gauss-Newton step: the exact least-squares minimum
    of the current piece, after which the piece is chosen again. The loss never rises
    and the search stops when the piece no longer changes (at most ``steps`` steps).

    The loss is the minimum over wedges of a convex distance, so every local minimum on
    the subspace is the minimum of one wedge's distance: zero when ``d >= D - n`` (a
    generic ``d``-plane meets an ``n``-plane then), positive otherwise.

    Returns
    -------
    (float, float)
        The wedge loss at the start and after optimization.
    """
    if not 1 <= d <= dim:
        raise ValueError(f"the subspace dimension d must be in [1, {dim}], got {d}")
    gen = torch.Generator().manual_seed(int(seed))
    x0 = start_scale * torch.randn(dim, generator=gen, dtype=torch.float64)
    basis, _ = torch.linalg.qr(torch.randn(dim, d, generator=gen, dtype=torch.float64))
    z = torch.zeros(d, dtype=torch.float64)
    piece = None
    for _ in range(steps):
        small = torch.sort(torch.argsort((x0 + basis @ z).abs())[: dim - n_long]).values
        if piece is not None and torch.equal(small, piece):
            break
        piece = small
        z = torch.linalg.lstsq(basis[small], -x0[small, None]).solution[:, 0]
    return float(wedge_loss(x0, n_long)), float(wedge_loss(x0 + basis @ z, n_long))


def hyperplane_experiment(
    dim: int = 50, n_long: int = 10, dims=None, steps: int = 100, seed: int = 0
) -> dict[int, float]:
    """Final wedge loss (relative to the start) for each subspace dimension ``d``.

    Default ``dims``: ten values from 1 to ``dim``, including ``dim - n_long``.

    Returns
    -------
    dict
        ``{d: final loss / start loss}``; it drops to ~0 once ``d >= dim - n_long``.
    """
    if dims is None:
        dims = sorted({*torch.linspace(1, dim, 10).round().int().tolist(), dim - n_long})
    out = {}
    for d in dims:
        start, end = subspace_optimization(dim, n_long, int(d), steps=steps, seed=seed)
        out[int(d)] = end / start
    return out
