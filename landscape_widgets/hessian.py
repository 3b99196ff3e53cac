"""Curvature of the loss: Hessian-vector products, Lanczos eigenvalues, Hutchinson trace
and the convexity map of Li et al. 2018.

Everything works on the flat parameter vector of :mod:`landscape_widgets.params`: the loss
is a function ``f(theta)`` built with ``torch.func.functional_call`` and
``ParamLayout.split``, and ``H v`` is the double-backward product
``torch.func.vjp(torch.func.grad(f), theta)[1](v)``, accumulated batch by batch so
memory stays that of one batch. (Forward-over-reverse ``jvp(grad(f))`` would be a little
cheaper, but torch 2.13's forward-mode rule of ``mse_loss`` fails on it.) The Hessian is never formed (except by
:func:`explicit_hessian`, meant for small models and tests).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import xarray as xr
from torch import nn
from torch.func import functional_call, grad, vjp

from .data import Batches, as_batches
from .directions import resolve_directions
from .evaluation import LossFn, resolve_device
from .grids import Grid, coarse_to_fine_order, plane
from .params import ParamLayout, flatten_params, param_layout
from .results import empty_landscape

HVP = Callable[[torch.Tensor], torch.Tensor]
Progress = Callable[[int, int], None]


class LossFunction:
    """``f(theta)``: the mean loss over fixed data as a function of the flat parameters.

    Parameters
    ----------
    model : nn.Module
        The network; a private eval-mode copy is used (the caller's model is untouched,
        BatchNorm uses its running statistics).
    loss_fn : callable
        ``loss_fn(outputs, targets)`` returning the batch mean.
    data : (inputs, targets) or iterable of batches
        See :func:`landscape_widgets.data.as_batches`.
    device : str or torch.device, optional
        Default: CUDA when available.
    max_batches, max_samples : int, optional
        Cap on the data read.

    Attributes
    ----------
    layout, device, dtype, theta (the model's flat parameters on ``device``), batches.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        data,
        device: str | torch.device | None = None,
        max_batches: int | None = None,
        max_samples: int | None = None,
    ) -> None:
        self.layout: ParamLayout = param_layout(model)
        self.device = resolve_device(device)
        self.model = copy.deepcopy(model).to(self.device).eval()
        self.dtype = next(self.model.parameters()).dtype
        self.theta = flatten_params(self.model)
        self.buffers = dict(self.model.named_buffers())
        self.loss_fn = loss_fn
        self.batches: Batches = as_batches(data, max_batches=max_batches, max_samples=max_samples).to(
            self.device
        )
        self.n_samples = self.batches.n_samples

    def as_point(self, theta: torch.Tensor | None) -> torch.Tensor:
        """``theta`` (default: the model's parameters) as a flat vector on the device."""
        if theta is None:
            return self.theta
        if theta.dim() != 1 or theta.numel() != self.layout.size:
            raise ValueError(f"theta has shape {tuple(theta.shape)}; expected ({self.layout.size},)")
        return theta.detach().to(self.device, self.dtype)

    def batch_loss(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean loss of one batch at the flat point ``theta`` (differentiable)."""
        out = functional_call(self.model, (self.layout.split(theta), self.buffers), (x,))
        loss = self.loss_fn(out, y)
        if loss.dim() != 0:
            raise ValueError(
                f"loss_fn returned shape {tuple(loss.shape)}; it must return the batch mean"
            )
        return loss

    def __call__(self, theta: torch.Tensor | None = None) -> torch.Tensor:
        """Mean loss over all the data at ``theta``."""
        theta = self.as_point(theta)
        with torch.no_grad():
            return sum(
                self.batch_loss(theta, x, y) * (len(x) / self.n_samples) for x, y in self.batches.batches
            )

    def hvp(self, theta: torch.Tensor | None = None) -> HVP:
        """The operator ``v -> H(theta) v`` (flat vectors on the device)."""
        theta = self.as_point(theta)
        parts = [
            (grad(lambda t, x=x, y=y: self.batch_loss(t, x, y)), len(x) / self.n_samples)
            for x, y in self.batches.batches
        ]

        def apply(v: torch.Tensor) -> torch.Tensor:
            v = v.to(self.device, self.dtype)
            return sum(w * vjp(g, theta)[1](v)[0] for g, w in parts)

        return apply


def explicit_hessian(f: LossFunction, theta: torch.Tensor | None = None) -> torch.Tensor:
    """The full ``[n, n]`` Hessian from ``n`` Hessian-vector products (small models only)."""
    n = f.layout.size
    if n > 20_000:
        raise ValueError(f"the model has {n} parameters: an explicit Hessian is too large; use lanczos")
    hvp = f.hvp(theta)
    eye = torch.eye(n, device=f.device, dtype=f.dtype)
    return torch.vmap(hvp)(eye)


def lanczos(
    hvp: HVP,
    size: int,
    steps: int = 40,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float64,
    on_step: Progress | None = None,
) -> np.ndarray:
    """Ritz values of a symmetric operator by Lanczos with full reorthogonalization.

    The extreme Ritz values converge first: after ``steps`` iterations the largest and
    smallest few are accurate eigenvalue estimates (all of them when ``steps >= size``).

    Parameters
    ----------
    hvp : callable
        ``v -> H v`` on flat vectors of length ``size``.
    size : int
        Dimension of the operator (number of parameters).
    steps : int
        Krylov subspace dimension (capped at ``size``).
    seed : int
        Seed of the random start vector.
    device, dtype
        Where and in which precision the Lanczos basis is kept (float64 by default).
    on_step : callable, optional
        Called as ``on_step(i, steps)`` after iteration ``i`` (1-based), for progress.

    Returns
    -------
    np.ndarray
        Ritz values in ascending order (fewer than ``steps`` if the Krylov space is
        exhausted early).
    """
    if steps < 1:
        raise ValueError(f"lanczos needs steps >= 1, got {steps}")
    steps = min(int(steps), int(size))
    gen = torch.Generator().manual_seed(int(seed))
    q = torch.randn(size, generator=gen, dtype=torch.float64).to(device, dtype)
    basis = torch.zeros(steps, size, device=device, dtype=dtype)
    alphas: list[float] = []
    betas: list[float] = []
    q = q / q.norm()
    for i in range(steps):
        basis[i] = q
        w = hvp(q).to(device, dtype)
        alpha = float(w @ q)
        alphas.append(alpha)
        # full reorthogonalization (twice, for numerical safety)
        for _ in range(2):
            w = w - basis[: i + 1].T @ (basis[: i + 1] @ w)
        beta = float(w.norm())
        if on_step is not None:
            on_step(i + 1, steps)
        if i + 1 == steps or beta < 1e-10 * max(1.0, abs(alpha)):
            break
        betas.append(beta)
        q = w / beta
    t = np.diag(alphas) + np.diag(betas[: len(alphas) - 1], 1) + np.diag(betas[: len(alphas) - 1], -1)
    return np.linalg.eigvalsh(t)


def hessian_eigenvalues(
    model: nn.Module,
    loss_fn: LossFn,
    data,
    k: int = 1,
    which: str = "both",
    steps: int | None = None,
    theta: torch.Tensor | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    on_step: Progress | None = None,
    max_batches: int | None = None,
    max_samples: int | None = None,
) -> dict[str, np.ndarray]:
    """Top-k and/or bottom-k Hessian eigenvalues of the loss (Lanczos on HVPs).

    Parameters
    ----------
    model, loss_fn, data
        See :class:`LossFunction`.
    k : int
        How many eigenvalues at each end.
    which : {"both", "top", "bottom"}
    steps : int, optional
        Lanczos iterations (default ``max(4 k + 20, 40)``, at most the number of
        parameters); raise it if the values have not converged.
    theta : torch.Tensor, optional
        Flat point where the Hessian is taken (default: the model's parameters).
    device, seed, on_step, max_batches, max_samples
        See :func:`lanczos` and :class:`LossFunction`.

    Returns
    -------
    dict
        ``{"top": descending array, "bottom": ascending array}`` (the keys asked for).
    """
    if which not in ("both", "top", "bottom"):
        raise ValueError(f"which must be 'both', 'top' or 'bottom', got {which!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    f = LossFunction(model, loss_fn, data, device, max_batches, max_samples)
    ritz = lanczos(
        f.hvp(theta), f.layout.size, steps or max(4 * k + 20, 40), seed, f.device, torch.float64,
        on_step,
    )
    out = {}
    if which in ("both", "top"):
        out["top"] = ritz[::-1][:k].copy()
    if which in ("both", "bottom"):
        out["bottom"] = ritz[:k].copy()
    return out


def hutchinson_trace(
    model: nn.Module,
    loss_fn: LossFn,
    data,
    samples: int = 100,
    theta: torch.Tensor | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    block: int = 64,
    on_step: Progress | None = None,
    max_batches: int | None = None,
    max_samples: int | None = None,
) -> tuple[float, float]:
    """Hutchinson's estimate of the Hessian trace, ``E[v^T H v]`` with Rademacher ``v``.

    The probe vectors go through the HVP ``block`` at a time with ``torch.vmap``;
    ``on_step(done, samples)`` is called after each block. The standard error falls
    like ``1 / sqrt(samples)``; the per-sample spread is ``sqrt(2 sum_{i != j} H_ij^2)``.

    Returns
    -------
    (float, float)
        The estimate and its standard error.
    """
    if samples < 2:
        raise ValueError(f"need at least 2 samples for an estimate and its error, got {samples}")
    f = LossFunction(model, loss_fn, data, device, max_batches, max_samples)
    hvp = torch.vmap(f.hvp(theta))
    gen = torch.Generator().manual_seed(int(seed))
    values = np.empty(samples)
    for start in range(0, samples, block):
        stop = min(start + block, samples)
        v = torch.randint(0, 2, (stop - start, f.layout.size), generator=gen) * 2 - 1
        v = v.to(f.device, f.dtype)
        values[start:stop] = (v * hvp(v)).sum(dim=1).double().cpu().numpy()
        if on_step is not None:
            on_step(stop, samples)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(samples))


def iter_convexity(
    model: nn.Module,
    loss_fn: LossFn,
    data,
    grid: Grid | None = None,
    directions: Sequence[torch.Tensor] | None = None,
    *,
    seed: int = 0,
    normalization: str = "filter",
    bias_bn: str = "ignore",
    theta: torch.Tensor | None = None,
    steps: int = 20,
    device: str | torch.device | None = None,
    max_batches: int | None = None,
    max_samples: int | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[tuple[xr.Dataset, int]]:
    """The convexity map point by point: yields ``(dataset, flat_index)`` after each point.

    The same dataset object grows (copy it to keep a snapshot); the points come
    coarse-to-fine, and setting ``cancel`` stops after the point in flight. See
    :func:`convexity_map` for the arguments and the result.
    """
    grid = grid or plane(num=9)
    if grid.ndim != 2:
        raise ValueError(f"a convexity map needs a 2-D grid, got {grid.ndim} axes")
    f = LossFunction(model, loss_fn, data, device, max_batches, max_samples)
    centre = f.as_point(theta)
    directions, how = resolve_directions(
        model, 2, directions, seed, normalization, bias_bn, centre.cpu()
    )
    if len(directions) != 2:
        raise ValueError(f"a convexity map needs 2 directions, got {len(directions)}")
    dirs = torch.stack([d.detach().to(f.device, f.dtype) for d in directions])
    ds = empty_landscape(
        grid, accuracy=False,
        attrs={**how, "grid": grid.to_dict(), "n_params": f.layout.size, "device": str(f.device),
               "model": type(model).__name__, "lanczos_steps": steps, "kind": "convexity"},
    )
    for name in ("lambda_max", "lambda_min", "convexity"):
        ds[name] = (grid.names, np.full(grid.shape, np.nan))
    ds["lambda_max"].attrs.update(long_name="largest Hessian eigenvalue", units="loss / coefficient^2")
    ds["lambda_min"].attrs.update(long_name="smallest Hessian eigenvalue", units="loss / coefficient^2")
    ds["convexity"].attrs.update(long_name="|λ_min / λ_max|", units="ratio")
    order, _ = coarse_to_fine_order(grid.shape)
    for flat in order:
        if cancel is not None and cancel.is_set():
            break
        coeffs = torch.as_tensor(grid.coords(np.array([flat]))[0], device=f.device, dtype=f.dtype)
        point = centre + coeffs @ dirs
        lo, hi = _extreme_eigenvalues(f, point, steps, seed)
        pos = np.unravel_index(int(flat), grid.shape)
        ds["loss"].values[pos] = float(f(point))
        ds["lambda_max"].values[pos] = hi
        ds["lambda_min"].values[pos] = lo
        ds["convexity"].values[pos] = abs(lo / hi) if hi != 0 else np.nan
        ds["done"].values[pos] = True
        ds.attrs.update(complete=int(ds["done"].all()), n_done=int(ds["done"].sum()))
        yield ds, int(flat)


def convexity_map(
    model: nn.Module,
    loss_fn: LossFn,
    data,
    grid: Grid | None = None,
    directions: Sequence[torch.Tensor] | None = None,
    *,
    seed: int = 0,
    normalization: str = "filter",
    bias_bn: str = "ignore",
    theta: torch.Tensor | None = None,
    steps: int = 20,
    device: str | torch.device | None = None,
    max_batches: int | None = None,
    max_samples: int | None = None,
    on_point: Callable[[xr.Dataset, int], None] | None = None,
) -> xr.Dataset:
    """|λ_min / λ_max| of the full Hessian at each point of a 2-D plane (Li et al. 2018).

    Near 0: locally convex (no negative curvature worth mentioning); near 1 or above:
    strong non-convexity. Each point costs a Lanczos run of ``2 * steps`` HVPs (both
    ends of the spectrum come from the same run), so the default grid is a coarse 9x9
    plane over [-1, 1]^2, visited coarse-to-fine.

    Parameters
    ----------
    model, loss_fn, data
        See :class:`LossFunction`.
    grid : Grid, optional
        A 2-D grid (default ``plane(num=9)``).
    directions : two flat tensors, optional
        Default: ``random_directions(model, 2, seed, normalization, bias_bn)`` as for
        :func:`landscape_widgets.landscape.compute_landscape`, so the map lines up with
        the loss surface drawn with the same seed.
    theta : torch.Tensor, optional
        Centre point (default: the model's parameters).
    steps : int
        Half the Lanczos iterations per point.
    device, max_batches, max_samples
        See :class:`LossFunction`.
    on_point : callable, optional
        Called as ``on_point(dataset, flat_index)`` after each point (streaming).

    Returns
    -------
    xr.Dataset
        Like :func:`landscape_widgets.results.empty_landscape` (``loss``, ``done``, same
        coordinates) plus ``lambda_max``, ``lambda_min`` and ``convexity``.
    """
    ds = None
    for ds, flat in iter_convexity(
        model, loss_fn, data, grid, directions, seed=seed, normalization=normalization, bias_bn=bias_bn,
        theta=theta, steps=steps, device=device, max_batches=max_batches, max_samples=max_samples,
    ):
        if on_point is not None:
            on_point(ds, flat)
    return ds


def _extreme_eigenvalues(f: LossFunction, point: torch.Tensor, steps: int, seed: int) -> tuple[float, float]:
    """Smallest and largest Hessian eigenvalue at ``point`` from one Lanczos run."""
    ritz = lanczos(f.hvp(point), f.layout.size, 2 * steps, seed, f.device, torch.float64)
    return float(ritz[0]), float(ritz[-1])
