"""Curvature of the loss: Hessian-vector products, Lanczos eigenvalues, Hutchinson trace
and the convexity map of Li et al. 2018.

Everything works on the flat vector of the moved parameters of an
:class:`~landscape_widgets.core.objective.Objective`: the loss is its
``point_loss(theta, batch)`` (``torch.func.functional_call`` on the objective's model), and ``H v`` is the double-backward product
``torch.func.vjp(torch.func.grad(f), theta)[1](v)``, accumulated batch by batch so
memory stays that of one batch. (Forward-over-reverse ``jvp(grad(f))`` would be a little
cheaper, but torch 2.13's forward-mode rule of ``mse_loss`` fails on it.) The Hessian is never formed (except by
:func:`explicit_hessian`, meant for small models and tests).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
import xarray as xr
from torch.func import grad, vjp

from ..core.grids import Grid, coarse_to_fine_order, plane
from ..core.landscape import prepare_evaluator
from ..core.objective import Objective, as_objective, batch_weights
from ..core.results import empty_landscape

HVP = Callable[[torch.Tensor], torch.Tensor]
Progress = Callable[[int, int], None]


def hvp_operator(objective: Objective, point: torch.Tensor | None = None) -> HVP:
    """The operator ``v -> H(point) v`` of the objective's mean loss (flat vectors on its
    device), accumulated batch by batch so memory stays that of one batch."""
    ob = objective
    point = ob.as_point(point)
    weights = batch_weights(ob.data.sizes, ob.device).tolist()

    def apply(v: torch.Tensor) -> torch.Tensor:
        v = v.to(ob.device, point.dtype)
        with ob.lock:
            return sum(
                w * vjp(grad(lambda t, b=batch: ob.point_loss(t, b)), point)[1](v)[0]
                for w, batch in zip(weights, ob.data)
            )

    return apply


def explicit_hessian(objective: Objective, theta: torch.Tensor | None = None) -> torch.Tensor:
    """The full ``[n, n]`` Hessian from ``n`` Hessian-vector products (small models only)."""
    n = objective.layout.size
    if n > 20_000:
        raise ValueError(f"the landscape moves {n} parameters: an explicit Hessian is too large; use lanczos")
    eye = torch.eye(n, device=objective.device, dtype=objective.theta.dtype)
    return torch.vmap(hvp_operator(objective, theta))(eye)


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
    model,
    loss_fn=None,
    data=None,
    k: int = 1,
    which: str = "both",
    steps: int | None = None,
    theta: torch.Tensor | None = None,
    seed: int = 0,
    on_step: Progress | None = None,
    **objective_kwargs,
) -> dict[str, np.ndarray]:
    """Top-k and/or bottom-k Hessian eigenvalues of the loss (Lanczos on HVPs).

    Parameters
    ----------
    model, loss_fn, data, **objective_kwargs
        See :class:`~landscape_widgets.core.objective.Objective` (``params`` restricts the
        Hessian to the moved parameters; ``device``, ``max_samples``...), or an objective.
    k : int
        How many eigenvalues at each end.
    which : {"both", "top", "bottom"}
    steps : int, optional
        Lanczos iterations (default ``max(4 k + 20, 40)``, at most the number of
        parameters); raise it if the values have not converged.
    theta : torch.Tensor, optional
        Flat point where the Hessian is taken (default: the model's parameters).
    seed, on_step
        See :func:`lanczos`.

    Returns
    -------
    dict
        ``{"top": descending array, "bottom": ascending array}`` (the keys asked for).
    """
    if which not in ("both", "top", "bottom"):
        raise ValueError(f"which must be 'both', 'top' or 'bottom', got {which!r}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ob = as_objective(model, loss_fn, data, **objective_kwargs)
    ritz = lanczos(
        hvp_operator(ob, theta), ob.layout.size, steps or max(4 * k + 20, 40), seed, ob.device, torch.float64,
        on_step,
    )
    out = {}
    if which in ("both", "top"):
        out["top"] = ritz[::-1][:k].copy()
    if which in ("both", "bottom"):
        out["bottom"] = ritz[:k].copy()
    return out


def hutchinson_trace(
    model,
    loss_fn=None,
    data=None,
    samples: int = 100,
    theta: torch.Tensor | None = None,
    seed: int = 0,
    block: int = 64,
    on_step: Progress | None = None,
    **objective_kwargs,
) -> tuple[float, float]:
    """Hutchinson's estimate of the Hessian trace, ``E[v^T H v]`` with Rademacher ``v``.

    The probe vectors go through the HVP ``block`` at a time with ``torch.vmap``;
    ``on_step(done, samples)`` is called after each block. The standard error falls
    like ``1 / sqrt(samples)``; the per-sample spread is ``sqrt(2 sum_{i != j} H_ij^2)``.
    Arguments as for :func:`hessian_eigenvalues`.

    Returns
    -------
    (float, float)
        The estimate and its standard error.
    """
    if samples < 2:
        raise ValueError(f"need at least 2 samples for an estimate and its error, got {samples}")
    ob = as_objective(model, loss_fn, data, **objective_kwargs)
    hvp = torch.vmap(hvp_operator(ob, theta))
    gen = torch.Generator().manual_seed(int(seed))
    values = np.empty(samples)
    for start in range(0, samples, block):
        stop = min(start + block, samples)
        v = torch.randint(0, 2, (stop - start, ob.layout.size), generator=gen) * 2 - 1
        v = v.to(ob.device, ob.theta.dtype)
        values[start:stop] = (v * hvp(v)).sum(dim=1).double().cpu().numpy()
        if on_step is not None:
            on_step(stop, samples)
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(samples))


def iter_convexity(
    model,
    loss_fn=None,
    data=None,
    grid: Grid | None = None,
    directions: Sequence[torch.Tensor] | None = None,
    *,
    seed: int = 0,
    normalization: str = "filter",
    bias_bn: str = "ignore",
    theta: torch.Tensor | None = None,
    steps: int = 20,
    cancel: threading.Event | None = None,
    **objective_kwargs,
) -> Iterator[tuple[xr.Dataset, int]]:
    """The convexity map point by point: yields ``(dataset, flat_index)`` after each point.

    The same dataset object grows (copy it to keep a snapshot); the points come
    coarse-to-fine, and setting ``cancel`` stops after the point in flight. See
    :func:`convexity_map` for the arguments and the result.
    """
    grid = grid or plane(num=9)
    if grid.ndim != 2:
        raise ValueError(f"a convexity map needs a 2-D grid, got {grid.ndim} axes")
    if directions is not None and len(directions) != 2:
        raise ValueError(f"a convexity map needs 2 directions, got {len(directions)}")
    ev, how = prepare_evaluator(model, loss_fn, data, 2, directions, seed=seed, normalization=normalization,
                                bias_bn=bias_bn, theta=theta, **objective_kwargs)
    ob = ev.objective
    ds = empty_landscape(
        grid, ("loss",),
        attrs={**ob.attrs(), **how, "grid": grid.to_dict(), "lanczos_steps": steps, "kind": "convexity"},
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
        coeffs = grid.coords(np.array([flat]))
        lo, hi = _extreme_eigenvalues(ob, ev.points(coeffs)[0], steps, seed)
        pos = np.unravel_index(int(flat), grid.shape)
        ds["loss"].values[pos] = ev.evaluate(coeffs).loss[0]
        ds["lambda_max"].values[pos] = hi
        ds["lambda_min"].values[pos] = lo
        ds["convexity"].values[pos] = abs(lo / hi) if hi != 0 else np.nan
        ds["done"].values[pos] = True
        ds.attrs.update(complete=int(ds["done"].all()), n_done=int(ds["done"].sum()))
        yield ds, int(flat)


def convexity_map(
    model,
    loss_fn=None,
    data=None,
    grid: Grid | None = None,
    directions: Sequence[torch.Tensor] | None = None,
    *,
    seed: int = 0,
    normalization: str = "filter",
    bias_bn: str = "ignore",
    theta: torch.Tensor | None = None,
    steps: int = 20,
    on_point: Callable[[xr.Dataset, int], None] | None = None,
    **objective_kwargs,
) -> xr.Dataset:
    """|λ_min / λ_max| of the full Hessian at each point of a 2-D plane (Li et al. 2018).

    Near 0: locally convex (no negative curvature worth mentioning); near 1 or above:
    strong non-convexity. Each point costs a Lanczos run of ``2 * steps`` HVPs (both
    ends of the spectrum come from the same run), so the default grid is a coarse 9x9
    plane over [-1, 1]^2, visited coarse-to-fine.

    Parameters
    ----------
    model, loss_fn, data, **objective_kwargs
        See :func:`hessian_eigenvalues`.
    grid : Grid, optional
        A 2-D grid (default ``plane(num=9)``).
    directions : two flat tensors, optional
        Default: ``random_directions(model, 2, seed, normalization, bias_bn)`` as for
        :func:`~landscape_widgets.core.landscape.compute_landscape`, so the map lines up with
        the loss surface drawn with the same seed.
    theta : torch.Tensor, optional
        Centre point (default: the model's parameters).
    steps : int
        Half the Lanczos iterations per point.
    on_point : callable, optional
        Called as ``on_point(dataset, flat_index)`` after each point (streaming).

    Returns
    -------
    xr.Dataset
        Like :func:`~landscape_widgets.core.results.empty_landscape` (``loss``, ``done``, same
        coordinates) plus ``lambda_max``, ``lambda_min`` and ``convexity``.
    """
    ds = None
    for ds, flat in iter_convexity(
        model, loss_fn, data, grid, directions, seed=seed, normalization=normalization, bias_bn=bias_bn,
        theta=theta, steps=steps, **objective_kwargs,
    ):
        if on_point is not None:
            on_point(ds, flat)
    return ds


def _extreme_eigenvalues(ob: Objective, point: torch.Tensor, steps: int, seed: int) -> tuple[float, float]:
    """Smallest and largest Hessian eigenvalue at ``point`` from one Lanczos run."""
    ritz = lanczos(hvp_operator(ob, point), ob.layout.size, 2 * steps, seed, ob.device, torch.float64)
    return float(ritz[0]), float(ritz[-1])
