"""Curvature of the loss: Hessian-vector products, Lanczos eigenvalues and eigenvectors,
Hutchinson trace and the convexity map of Li et al. 2018.

Everything works on the flat vector of the moved parameters of an
:class:`~landscape_widgets.core.objective.Objective`: the loss is its
``point_loss(theta, batch)`` (``torch.func.functional_call`` on the objective's model),
and ``H v`` is the double-backward product ``torch.func.vjp(torch.func.grad(f), theta)[1](v)``,
accumulated batch by batch so memory stays that of one batch; with one batch (or
``keep_graph=True``) the gradient's graph is built once per point and only differentiated
again for each ``v``. (Forward-over-reverse ``jvp(grad(f))`` would be a little cheaper,
but torch 2.13's forward-mode rule of ``mse_loss`` fails on it.) The Hessian is never
formed (except by :func:`explicit_hessian`, meant for small models and tests).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr
from torch.func import grad, vjp

from ..core.grids import Grid, coarse_to_fine_order, plane
from ..core.landscape import prepare_evaluator
from ..core.objective import Objective, as_objective, batch_weights
from ..core.results import empty_landscape

HVP = Callable[[torch.Tensor], torch.Tensor]
#: Where a convexity map is read as turning from nearly convex to non-convex: below it the
#: loss curves down, in its most negative direction, at most a quarter as much as it curves
#: up in its steepest one; at 1, as much.
CONVEX_THRESHOLD = 0.25
Progress = Callable[[int, int], None]
#: Grid points of a convexity map computed together off the CPU (see ``point_batch``)...
GPU_POINT_BATCH = 16
#: ... fewer where their Lanczos bases (float64) would take more bytes than this.
POINT_BATCH_BYTES = 2**30


def hvp_operator(objective: Objective, point: torch.Tensor | None = None, *,
                 keep_graph: bool | None = None) -> HVP:
    """The operator ``v -> H(point) v`` of the objective's mean loss (flat vectors on its
    device), accumulated batch by batch.

    Parameters
    ----------
    objective : Objective
    point : torch.Tensor, optional
        Flat point where the Hessian is taken (default: theta).
    keep_graph : bool, optional
        Build each batch's gradient graph once, here, and differentiate it again for
        every product (the forward and first backward are not repeated), keeping the
        graphs of all batches in memory. ``False`` rebuilds it for each batch and product,
        so memory stays that of one batch. Default: keep it when the data is one batch
        (the memory is then the same).
    """
    return _hvp(objective, objective.as_point(point), keep_graph, batched=False)


def _hvp(ob: Objective, point: torch.Tensor, keep_graph: bool | None, batched: bool) -> HVP:
    """:func:`hvp_operator` at a flat ``point``, or with ``batched``
    :func:`batched_hvp_operator` at the rows of ``point``: the products accumulated batch
    by batch, each batch's gradient graph kept or rebuilt per product."""
    weights = batch_weights(ob.data.sizes, ob.device).tolist()
    if keep_graph is None:
        keep_graph = ob.data.n_batches == 1
    with ob.lock:
        kept = [_gradient_vjp(ob, point, batch, batched) for batch in ob.data] if keep_graph else None

    def apply(v: torch.Tensor) -> torch.Tensor:
        v = v.to(ob.device, point.dtype)
        with ob.lock:
            products = kept if kept is not None else (_gradient_vjp(ob, point, batch, batched) for batch in ob.data)
            return sum(w * product(v)[0] for w, product in zip(weights, products))

    return apply


def _gradient_vjp(ob: Objective, point: torch.Tensor, batch, batched: bool = False) -> Callable:
    """``v -> (H_batch(point) v,)``: the vector-Jacobian product of the batch loss's gradient
    (``batched``: of the gradient vmapped over the rows of ``point``, ``[k, n]``, so that row
    ``i`` of ``v`` is multiplied by the Hessian at row ``i`` of ``point``)."""
    gradient = grad(lambda t: ob.point_loss(t, batch))
    return vjp(torch.vmap(gradient) if batched else gradient, point)[1]


def batched_hvp_operator(objective: Objective, points: torch.Tensor, *, keep_graph: bool | None = None) -> HVP:
    """The operator ``V -> [H(points[i]) V[i]]_i`` for ``[k, n]`` points and vectors: the
    products at ``k`` points through one vmapped double backward (on a GPU, where a small
    model's single product is bound by kernel launches, many for the time of a few).
    ``keep_graph`` as :func:`hvp_operator` (the graphs of all ``k`` points are kept)."""
    points = torch.as_tensor(points).to(objective.device, objective.theta.dtype)
    return _hvp(objective, points, keep_graph, batched=True)


def explicit_hessian(objective: Objective, theta: torch.Tensor | None = None) -> torch.Tensor:
    """The full ``[n, n]`` Hessian from ``n`` Hessian-vector products (small models only)."""
    n = objective.layout.size
    if n > 20_000:
        raise ValueError(f"the landscape moves {n} parameters: an explicit Hessian is too large; use lanczos")
    eye = torch.eye(n, device=objective.device, dtype=objective.theta.dtype)
    return torch.vmap(hvp_operator(objective, theta))(eye)


@dataclass
class Ritz:
    """Ritz pairs of one Lanczos run: ``values`` ascending, their ``residuals``
    ``||H y - theta y||``, and the Lanczos ``basis`` ``[m, size]`` with the ``coefficients``
    ``[m, m]`` of the Ritz vectors in it (column ``i`` for ``values[i]``)."""

    values: np.ndarray
    residuals: np.ndarray
    basis: torch.Tensor
    coefficients: np.ndarray

    def vectors(self, indices: Sequence[int]) -> torch.Tensor:
        """The unit Ritz vectors of ``values[indices]``, as rows ``[len(indices), size]``."""
        s = torch.as_tensor(self.coefficients[:, list(indices)], device=self.basis.device, dtype=self.basis.dtype)
        return s.T @ self.basis


def lanczos(
    hvp: HVP,
    size: int,
    steps: int = 40,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float64,
    on_step: Progress | None = None,
    *,
    start: torch.Tensor | None = None,
    tol: float | None = None,
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
    start : torch.Tensor, optional
        Start vector (any nonzero norm) instead of the random one, e.g. a Ritz vector of a
        nearby operator (a warm start).
    tol : float, optional
        Stop before ``steps`` once the smallest and the largest Ritz value both have a
        residual ``||H y - theta y|| <= tol * max|theta|``. Each of them is then within that
        residual of an eigenvalue of ``H`` (Lanczos can still miss an eigenvalue the start
        vector hardly touches). ``None``: always run ``steps`` iterations.

    Returns
    -------
    np.ndarray
        Ritz values in ascending order (fewer than ``steps`` if the Krylov space is
        exhausted or ``tol`` is met early).
    """
    if start is None:
        start = random_start(size, seed)
    return lanczos_ritz(hvp, size, steps, start, device, dtype, on_step, tol=tol).values


def random_start(size: int, seed: int) -> torch.Tensor:
    """The seeded standard-normal start vector of :func:`lanczos` (float64, on the CPU)."""
    return torch.randn(size, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float64)


def lanczos_ritz(
    hvp: HVP,
    size: int,
    steps: int,
    start: torch.Tensor,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float64,
    on_step: Progress | None = None,
    *,
    tol: float | None = None,
    converge: tuple[int, int] = (1, 1),
) -> Ritz:
    """Lanczos as in :func:`lanczos` from ``start``, returning the Ritz pairs.

    ``tol`` stops once the ``converge = (bottom, top)`` smallest and largest Ritz values
    all have residuals ``<= tol * max|theta|``.
    """
    if start.shape != (size,):
        raise ValueError(f"the start vector has shape {tuple(start.shape)}; expected ({size},)")
    return batched_lanczos_ritz(lambda v: hvp(v[0])[None], size, steps, start[None], device, dtype, on_step,
                                tol=tol, converge=converge)[0]


def batched_lanczos_ritz(
    hvp: HVP,
    size: int,
    steps: int,
    starts: torch.Tensor,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float64,
    on_step: Progress | None = None,
    *,
    tol: float | None = None,
    converge: tuple[int, int] = (1, 1),
) -> list[Ritz]:
    """:func:`lanczos_ritz` of ``k`` operators at once, in lockstep: ``hvp`` maps ``[k, size]``
    vectors to their products (row ``i`` with operator ``i``, e.g.
    :func:`batched_hvp_operator`), ``starts`` is ``[k, size]``. Each run stops on its own
    condition and its Ritz pairs are those it had then, as a run of its own would give;
    the products go on for all ``k`` until every run has stopped (a stopped run's rows
    are zero)."""
    if steps < 1:
        raise ValueError(f"lanczos needs steps >= 1, got {steps}")
    if tol is not None and tol <= 0:
        raise ValueError(f"tol must be > 0 (or None to run all steps), got {tol}")
    if starts.dim() != 2 or starts.shape[1] != size:
        raise ValueError(f"the start vectors have shape {tuple(starts.shape)}; expected (k, {size})")
    steps = min(int(steps), int(size))
    q = starts.to(device, dtype)
    norms = q.norm(dim=1, keepdim=True)
    if not bool(torch.all(norms > 0)):
        raise ValueError("a Lanczos start vector is zero (or not finite)")
    k = len(q)
    basis = torch.zeros(k, steps, size, device=device, dtype=dtype)
    alphas: list[list[float]] = [[] for _ in range(k)]
    betas: list[list[float]] = [[] for _ in range(k)]
    results: list[Ritz | None] = [None] * k
    q = q / norms
    for i in range(steps):
        basis[:, i] = q
        w = hvp(q).to(device, dtype)
        alpha = (w * q).sum(1)
        # full reorthogonalization (twice, for numerical safety)
        for _ in range(2):
            w = w - torch.bmm(basis[:, : i + 1].transpose(1, 2), torch.bmm(basis[:, : i + 1], w[:, :, None]))[..., 0]
        beta = w.norm(dim=1)
        if on_step is not None:
            on_step(i + 1, steps)
        for j, (a, b) in enumerate(zip(alpha.tolist(), beta.tolist())):
            if results[j] is not None:
                continue
            alphas[j].append(a)
            exhausted = i + 1 == steps or b < 1e-10 * max(1.0, abs(a))
            ritz = _ritz_pairs(alphas[j], betas[j], b, basis[j, : i + 1]) if exhausted or tol is not None else None
            if exhausted or (tol is not None and _converged(ritz, tol, converge)):
                results[j] = ritz
            else:
                betas[j].append(b)
        running = torch.tensor([r is None for r in results], device=device)
        if not bool(running.any()):
            break
        q = torch.where(running[:, None], w / torch.where(beta > 0, beta, 1.0)[:, None], 0.0)
    return results


def _ritz_pairs(alphas: list[float], betas: list[float], beta: float, basis: torch.Tensor) -> Ritz:
    """Ritz pairs of the tridiagonal ``alphas`` / ``betas``; ``beta`` is the next off-diagonal
    (the residual of Ritz vector ``i`` is ``beta * |s[-1, i]|``)."""
    t = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
    values, s = np.linalg.eigh(t)
    return Ritz(values, beta * np.abs(s[-1]), basis, s)


def _converged(ritz: Ritz, tol: float, converge: tuple[int, int]) -> bool:
    """Whether the ``converge = (bottom, top)`` extreme Ritz values have residuals within
    ``tol * max|theta|``."""
    bottom, top = converge
    watched = np.r_[ritz.residuals[:bottom], ritz.residuals[len(ritz.values) - top:]]
    return bool(np.all(watched <= tol * np.abs(ritz.values).max()))


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
    *,
    tol: float | None = None,
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
    tol : float, optional
        Stop early once the ``k`` values asked for at each end have residuals within
        ``tol`` times the largest |Ritz value| (see :func:`lanczos`); ``None``: run ``steps``.

    Returns
    -------
    dict
        ``{"top": descending array, "bottom": ascending array}`` (the keys asked for).
    """
    if which not in ("both", "top", "bottom"):
        raise ValueError(f"which must be 'both', 'top' or 'bottom', got {which!r}")
    ob = _checked_objective(k, model, loss_fn, data, **objective_kwargs)
    bottom, top = (k if which != "top" else 0), (k if which != "bottom" else 0)
    ritz = _hessian_ritz(ob, theta, k, steps, seed, on_step, tol, (bottom, top))
    out = {}
    if top:
        out["top"] = ritz.values[::-1][:k].copy()
    if bottom:
        out["bottom"] = ritz.values[:k].copy()
    return out


def hessian_directions(
    model,
    loss_fn=None,
    data=None,
    k: int = 2,
    steps: int | None = None,
    theta: torch.Tensor | None = None,
    seed: int = 0,
    on_step: Progress | None = None,
    *,
    tol: float | None = None,
    **objective_kwargs,
) -> list[torch.Tensor]:
    """The eigenvectors of the ``k`` largest (algebraic) Hessian eigenvalues, as plane
    directions: the "short" directions along which the loss rises fastest.

    They are the Lanczos Ritz vectors of the top Ritz values (full reorthogonalization).
    Each direction is determined up to its sign.

    Parameters
    ----------
    model, loss_fn, data, k, steps, theta, seed, on_step, tol, **objective_kwargs
        As for :func:`hessian_eigenvalues` (``tol`` watches the top ``k`` values).

    Returns
    -------
    list of torch.Tensor
        ``k`` orthonormal flat vectors over the objective's moved parameters, on its device
        and in theta's dtype, largest eigenvalue first; pass them as
        ``compute_landscape(..., directions=...)`` (with ``params=`` as used here).
    """
    ob = _checked_objective(k, model, loss_fn, data, **objective_kwargs)
    ritz = _hessian_ritz(ob, theta, k, steps, seed, on_step, tol, (0, k))
    m = len(ritz.values)
    if m < k:
        raise ValueError(f"the Krylov space of the start vector has only {m} dimensions; try another seed")
    vectors = ritz.vectors(range(m - 1, m - 1 - k, -1))
    return [(v / v.norm()).to(ob.theta.dtype) for v in vectors]


def _checked_objective(k: int, model, loss_fn, data, **objective_kwargs) -> Objective:
    """The objective, after checking that ``k`` eigenpairs can exist."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ob = as_objective(model, loss_fn, data, **objective_kwargs)
    if k > ob.layout.size:
        raise ValueError(f"k = {k} exceeds the {ob.layout.size} moved parameters")
    return ob


def _hessian_ritz(ob: Objective, theta: torch.Tensor | None, k: int, steps: int | None, seed: int,
                  on_step: Progress | None, tol: float | None, converge: tuple[int, int]) -> Ritz:
    """One Lanczos run on the Hessian at ``theta`` (default ``max(4 k + 20, 40)`` steps)."""
    return lanczos_ritz(
        hvp_operator(ob, theta), ob.layout.size, steps or max(4 * k + 20, 40), random_start(ob.layout.size, seed),
        ob.device, torch.float64, on_step, tol=tol, converge=converge,
    )


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
    tol: float | None = 1e-3,
    warm_start: bool = True,
    keep_graph: bool | None = None,
    point_batch: int | None = None,
    cancel: threading.Event | None = None,
    attrs: dict | None = None,
    **objective_kwargs,
) -> Iterator[tuple[xr.Dataset, int]]:
    """The convexity map point by point: yields ``(dataset, flat_index)`` after each point.

    The same dataset object grows (copy it to keep a snapshot); the points come
    coarse-to-fine, and setting ``cancel`` stops after the point in flight. ``attrs`` are
    stored on the result: how given ``directions`` were made (their ``normalization``
    gives the axes' units). See :func:`convexity_map` for the other arguments and the
    result.
    """
    grid = grid or plane(num=9)
    if grid.ndim != 2:
        raise ValueError(f"a convexity map needs a 2-D grid, got {grid.ndim} axes")
    if directions is not None and len(directions) != 2:
        raise ValueError(f"a convexity map needs 2 directions, got {len(directions)}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if point_batch is not None and point_batch < 1:
        raise ValueError(f"point_batch must be >= 1, got {point_batch}")
    ev, how = prepare_evaluator(model, loss_fn, data, 2, directions, seed=seed, normalization=normalization,
                                bias_bn=bias_bn, theta=theta, **objective_kwargs)
    ob = ev.objective
    ds = empty_landscape(
        grid, ("loss",),
        attrs={**ob.attrs(), **how, **(attrs or {}), "grid": grid.to_dict(), "lanczos_steps": steps, "kind": "convexity",
               "lanczos_tol": "none" if tol is None else tol, "warm_start": int(warm_start)},
    )
    for name in ("lambda_max", "lambda_min", "convexity", "iterations"):
        ds[name] = (grid.names, np.full(grid.shape, np.nan))
    ds["lambda_max"].attrs.update(long_name="largest Hessian eigenvalue", units="loss / coefficient^2")
    ds["lambda_min"].attrs.update(long_name="smallest Hessian eigenvalue", units="loss / coefficient^2")
    ds["convexity"].attrs.update(long_name="|λ_min / λ_max|", units="ratio")
    ds["iterations"].attrs.update(long_name="Lanczos iterations (Hessian-vector products)")
    cold = random_start(ob.layout.size, seed).to(ob.device)
    starts: dict[tuple[int, ...], torch.Tensor] = {}  # grid position -> its warm start for neighbours
    order, _ = coarse_to_fine_order(grid.shape)
    basis_bytes = 8 * 2 * steps * ob.layout.size
    k = point_batch if point_batch is not None else (
        1 if ob.device.type == "cpu" else max(1, min(GPU_POINT_BATCH, POINT_BATCH_BYTES // basis_bytes)))
    begin = 0
    while begin < len(order):
        if cancel is not None and cancel.is_set():
            break
        flats = order[begin:begin + k]
        coeffs = grid.coords(flats)
        positions = [np.unravel_index(int(flat), grid.shape) for flat in flats]
        first = torch.stack([cold if not starts else cold / cold.norm() + starts[_nearest(starts, pos)].to(cold)
                             for pos in positions])
        points = ev.points(coeffs)
        if k == 1:
            ritzes = [lanczos_ritz(hvp_operator(ob, points[0], keep_graph=keep_graph), ob.layout.size, 2 * steps,
                                   first[0], ob.device, torch.float64, tol=tol)]
        else:
            try:
                ritzes = batched_lanczos_ritz(batched_hvp_operator(ob, points, keep_graph=keep_graph), ob.layout.size,
                                              2 * steps, first, ob.device, torch.float64, tol=tol)
            except (RuntimeError, NotImplementedError, TypeError, ValueError) as err:
                warnings.warn(f"{ob.model_name} cannot take vmapped Hessian-vector products "
                              f"({type(err).__name__}: {str(err).splitlines()[0]}); computing the convexity map "
                              "point by point", RuntimeWarning, stacklevel=2)
                k = 1
                continue
        begin += len(flats)
        losses = ev.evaluate(coeffs).loss
        for flat, pos, ritz, loss in zip(flats, positions, ritzes, losses):
            if warm_start:
                starts[pos] = _warm_start_vector(ritz).to(ob.theta.dtype)
            lo, hi = float(ritz.values[0]), float(ritz.values[-1])
            ds["loss"].values[pos] = loss
            ds["lambda_max"].values[pos] = hi
            ds["lambda_min"].values[pos] = lo
            ds["convexity"].values[pos] = abs(lo / hi) if hi != 0 else np.nan
            ds["iterations"].values[pos] = len(ritz.values)
            ds["done"].values[pos] = True
            ds.attrs.update(complete=int(ds["done"].all()), n_done=int(ds["done"].sum()))
            yield ds, int(flat)


def _warm_start_vector(ritz: Ritz) -> torch.Tensor:
    """The sum of the two lowest and the highest unit Ritz vectors (those that exist): with
    the second lowest too, the next run still finds the smallest eigenvalue when the lowest
    eigenvectors change places between neighbouring points."""
    m = len(ritz.values)
    return ritz.vectors(sorted({0, min(1, m - 1), m - 1})).sum(0)


def _nearest(done: dict[tuple[int, ...], torch.Tensor], pos: tuple[int, ...]) -> tuple[int, ...]:
    """The done grid position nearest to ``pos`` (in grid steps; the first one on a tie)."""
    return min(done, key=lambda p: sum((a - b) ** 2 for a, b in zip(p, pos)))


def slice_convex_fraction(ds: xr.Dataset, metric: str = "loss") -> float:
    """The share of a 2-D landscape's interior points where the slice itself curves up in
    every direction of the plane: its second-difference Hessian (central differences on
    the grid) has no negative eigenvalue. What the 2-D picture alone says about convexity,
    to set beside the full Hessian's |λ_min / λ_max| of :func:`convexity_map`.
    """
    values = ds[metric].values
    if values.ndim != 2 or min(values.shape) < 3:
        raise ValueError(f"need a 2-D landscape of at least 3x3 points, got shape {values.shape}")
    if not bool(ds["done"].values.all()) or not np.isfinite(values).all():
        raise ValueError("the landscape has unfinished or non-finite points")
    ha, hb = (float(np.diff(ds[d].values).mean()) for d in ds[metric].dims)
    c = values[1:-1, 1:-1]
    faa = (values[2:, 1:-1] - 2 * c + values[:-2, 1:-1]) / ha**2
    fbb = (values[1:-1, 2:] - 2 * c + values[1:-1, :-2]) / hb**2
    fab = (values[2:, 2:] - values[2:, :-2] - values[:-2, 2:] + values[:-2, :-2]) / (4 * ha * hb)
    return float(np.mean((faa >= 0) & (fbb >= 0) & (faa * fbb - fab**2 >= 0)))


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
    tol: float | None = 1e-3,
    warm_start: bool = True,
    keep_graph: bool | None = None,
    point_batch: int | None = None,
    on_point: Callable[[xr.Dataset, int], None] | None = None,
    **objective_kwargs,
) -> xr.Dataset:
    """|λ_min / λ_max| of the full Hessian at each point of a 2-D plane (Li et al. 2018).

    Near 0: locally convex (no negative curvature worth mentioning); near 1 or above:
    strong non-convexity. Both ends of the spectrum come from one Lanczos run per point
    of at most ``2 * steps`` Hessian-vector products, fewer when it converges early
    (``tol``) from a start built on the nearest finished point's extreme eigenvectors
    (``warm_start``). The default grid is a coarse 9x9 plane over [-1, 1]^2, visited
    coarse-to-fine. ``tol=None, warm_start=False, keep_graph=False`` is the plain
    algorithm: a cold, seeded start and ``2 * steps`` full products at every point.

    Parameters
    ----------
    model, loss_fn, data, **objective_kwargs
        See :func:`hessian_eigenvalues`. ``max_samples=`` (an objective option) computes
        the loss and the Hessian on the first samples only: the cost falls in proportion,
        and the map is then that of the subsample's loss, not an estimate with an error bar.
    grid : Grid, optional
        A 2-D grid (default ``plane(num=9)``).
    directions : two flat tensors, optional
        Default: ``random_directions(model, 2, seed, normalization, bias_bn)`` as for
        :func:`~landscape_widgets.core.landscape.compute_landscape`, so the map lines up with
        the loss surface drawn with the same seed.
    theta : torch.Tensor, optional
        Centre point (default: the model's parameters).
    steps : int
        Half the largest number of Lanczos iterations per point.
    tol : float, optional
        Stop a point's Lanczos run once the residuals of its smallest and largest Ritz
        values are both within ``tol * |λ_max|``; each is then that close to an
        eigenvalue, so the ratio is good to about ``tol * (1 + ratio)`` (usually much
        better). ``None``: always ``2 * steps`` iterations.
    warm_start : bool
        Start each point's run from the sum of the nearest done point's Ritz vectors of
        its two lowest and its highest Ritz values, and of the seeded random vector (the
        first point starts from the random one). Keeps one vector of the moved parameters
        per point.
    keep_graph : bool, optional
        See :func:`hvp_operator` (default: reuse each point's gradient graph when the
        data is one batch).
    point_batch : int, optional
        Grid points (consecutive in the coarse-to-fine order) whose Lanczos runs go in
        lockstep, their products through one vmapped double backward per step
        (:func:`batched_hvp_operator`, :func:`batched_lanczos_ritz`); their warm starts
        come from the points of earlier batches. Default: 1 on a CPU (where a product is
        already compute-bound), :data:`GPU_POINT_BATCH` on other devices (fewer where
        their Lanczos bases would exceed :data:`POINT_BATCH_BYTES`).
    on_point : callable, optional
        Called as ``on_point(dataset, flat_index)`` after each point (streaming).

    Returns
    -------
    xr.Dataset
        Like :func:`~landscape_widgets.core.results.empty_landscape` (``loss``, ``done``, same
        coordinates) plus ``lambda_max``, ``lambda_min``, ``convexity`` and ``iterations``
        (the Lanczos iterations of each point).
    """
    ds = None
    for ds, flat in iter_convexity(
        model, loss_fn, data, grid, directions, seed=seed, normalization=normalization, bias_bn=bias_bn,
        theta=theta, steps=steps, tol=tol, warm_start=warm_start, keep_graph=keep_graph, point_batch=point_batch,
        **objective_kwargs,
    ):
        if on_point is not None:
            on_point(ds, flat)
    return ds
