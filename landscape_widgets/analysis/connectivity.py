"""Mode connectivity: are two solutions joined by a low-loss path?

- the linear path ``(1 - t) w1 + t w2`` and its loss barrier;
- a quadratic Bezier curve ``phi(t) = (1-t)^2 w1 + 2t(1-t) theta + t^2 w2`` whose bend
  ``theta`` is trained by minimizing ``L(phi(t))`` at ``t ~ U[0, 1]`` (Garipov et al. 2018);
- the Fort & Jastrzebski 2019 tunnel: points splitting the segment are each moved to a low
  loss within the hyperplane normal to the segment;
- the plane through ``w1``, ``w2`` and the bend, with both paths drawn on it.

A curve point is ``w1 + 2t(1-t) (theta - w1) + t^2 (w2 - w1)``, so every path here is
evaluated with :class:`~landscape_widgets.core.evaluation.PointEvaluator` along fixed
directions, and results are ``xarray`` datasets over ``alpha`` = ``t`` like
:func:`~landscape_widgets.core.results.empty_landscape`. Training of the curve and the
tunnel uses the same :class:`~landscape_widgets.core.objective.Objective` as the
evaluation (its loss in train mode, on random minibatches of its data).

Models with BatchNorm: the running statistics of ``w1`` are wrong at other points, so
give ``bn_data`` (training data, batches like ``data``) and they are recomputed at every evaluated point (a
pass in train mode, Garipov et al.); training runs in train mode (batch statistics).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import xarray as xr
from torch import nn
from torch.utils._pytree import tree_map

from ..core.data import prepare_data, tensor_leaves
from ..core.directions import interpolation_direction
from ..core.evaluation import PointEvaluator, PointValues, values_at
from ..core.grids import line, make_grid
from ..core.landscape import compute_landscape
from ..core.objective import Objective, call_model, model_device_dtype
from ..core.params import check_same_architecture, flatten_params, model_at
from ..core.results import empty_landscape, fill_chunk
from .interpolation import interpolate

Progress = Callable[[int, int, float], None]


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` contains a BatchNorm layer (its statistics depend on the point)."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def recompute_bn_stats_(model: nn.Module, data, forward=None) -> nn.Module:
    """Reset and re-estimate every BatchNorm's running statistics from ``data``.

    One pass in train mode with a cumulative average (``momentum=None``), no gradients;
    the model is left in eval mode. ``data`` and ``forward`` as for an
    :class:`~landscape_widgets.core.objective.Objective`.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for batch in prepare_data(data, model_device_dtype(model)[0]):
            call_model(model, batch, forward)
    for m, mom in zip(bns, saved):
        m.momentum = mom
    return model.eval()


def path_objective(model1: nn.Module, model2: nn.Module, loss_fn, data, **objective_kwargs) -> Objective:
    """The objective of ``model1`` (the path's start) after checking both models match."""
    check_same_architecture(model1, model2)
    return Objective(model1, loss_fn, data, **objective_kwargs)


def evaluate_points(
    objective: Objective,
    model1: nn.Module,
    theta: torch.Tensor,
    directions: list[torch.Tensor],
    coeffs: np.ndarray,
    bn_data=None,
) -> PointValues:
    """Values at ``theta + coeffs @ directions``, BatchNorm-aware.

    Without BatchNorm (or without ``bn_data``) this is one evaluator call on
    ``objective``; with both, each point's running statistics are recomputed from
    ``bn_data`` first, on a copy of ``model1`` at that point.
    """
    coeffs = np.asarray(coeffs, dtype=np.float64)
    if bn_data is None or not has_batchnorm(model1):
        return PointEvaluator(objective, directions=directions, theta=theta).evaluate(coeffs)
    dirs = torch.stack([d.double() for d in directions])
    rows = []
    for c in coeffs:
        point = (theta.double() + torch.as_tensor(c, device=dirs.device) @ dirs).to(theta.dtype)
        m = recompute_bn_stats_(model_at(model1, point, objective.layout), bn_data, objective.forward)
        ob = Objective(m, objective.loss_fn, objective.data, params=objective.layout, forward=objective.forward,
                       pass_batch=objective.pass_batch, metrics=objective.metrics)
        rows.append(values_at(ob))
    return PointValues({k: np.array([r[k] for r in rows]) for k in rows[0]})


def _path_dataset(values: PointValues, t: np.ndarray, attrs: dict) -> xr.Dataset:
    ds = empty_landscape(line((float(t[0]), float(t[-1])), len(t)), tuple(values.values), attrs=attrs)
    fill_chunk(ds, np.arange(len(t)), values.values)
    ds["alpha"].attrs.update(long_name="t (position along the path)", units="fraction of the path")
    return ds


def linear_path(
    model1: nn.Module, model2: nn.Module, loss_fn=None, data=None, num: int = 21, bn_data=None,
    **objective_kwargs,
) -> xr.Dataset:
    """Loss along ``(1 - t) w1 + t w2`` for ``t`` in [0, 1] (coordinate ``alpha`` = t).

    The dataset's ``barrier`` attribute is :func:`loss_barrier` of the loss.
    """
    if bn_data is None or not has_batchnorm(model1):
        ds = interpolate(model1, model2, loss_fn, data, 0.0, 1.0, num, **objective_kwargs)
    else:
        ob = path_objective(model1, model2, loss_fn, data, **objective_kwargs)
        t = np.linspace(0, 1, num)
        d = interpolation_direction(model1, model2, ob.layout)
        ds = _path_dataset(evaluate_points(ob, model1, ob.theta, [d], t[:, None], bn_data), t, {})
    ds.attrs.update(path="linear", barrier=loss_barrier(ds["loss"].values))
    return ds


def loss_barrier(loss: np.ndarray) -> float:
    """Height of a path's loss above the straight line between its end values.

    ``max_t [L(t) - ((1 - t) L(0) + t L(1))]`` over evenly spaced ``t`` (0 when the
    path is never above the chord).
    """
    loss = np.asarray(loss, dtype=np.float64)
    chord = np.linspace(loss[0], loss[-1], len(loss))
    return float(max(0.0, np.nanmax(loss - chord)))


def bezier_coefficients(t: np.ndarray) -> np.ndarray:
    """Coefficients of ``(bend - w1, w2 - w1)`` for curve points: ``[2t(1-t), t^2]``."""
    t = np.asarray(t, dtype=np.float64)
    return np.stack([2 * t * (1 - t), t * t], axis=-1)


def minibatch_sampler(objective: Objective, batch_size: int, gen: torch.Generator):
    """Random minibatches (with replacement) of the objective's data, on its device."""
    parts = list(objective.data)
    whole = parts[0] if len(parts) == 1 else tree_map(
        lambda *ts: torch.cat(ts) if isinstance(ts[0], torch.Tensor) and ts[0].dim() else ts[0], *parts
    )
    n = len(tensor_leaves(whole)[0])

    def draw():
        idx = torch.randint(0, n, (min(batch_size, n),), generator=gen).to(objective.device)
        return tree_map(lambda t: t[idx] if isinstance(t, torch.Tensor) and t.dim() else t, whole)

    return draw


def train_step(objective: Objective, opt: torch.optim.Optimizer, point: torch.Tensor, batch,
               project: torch.Tensor | None = None) -> float:
    """One optimizer step on the train-mode loss at ``point``; ``project`` (orthonormal
    columns ``[n, m]``) removes the gradient's component in their span, so the step stays
    in the hyperplane normal to it (the tunnels' constraint)."""
    with objective.lock:
        opt.zero_grad()
        loss = objective.point_loss(point, batch, train=True)
        loss.backward()
    for group in opt.param_groups:
        for p in group["params"]:
            if project is not None:
                p.grad -= project @ (project.T @ p.grad)
    opt.step()
    return float(loss.detach())


def descend_within(objective: Objective, start: torch.Tensor, project: torch.Tensor, draw, steps: int, lr: float,
                   momentum: float) -> torch.Tensor:
    """``start`` moved by ``steps`` SGD steps on minibatches ``draw()``, the gradient's
    component in the span of ``project`` (orthonormal columns) removed each step, so the
    point stays in the hyperplane through ``start`` normal to that span (the tunnels'
    constrained step)."""
    p = start.clone().requires_grad_(True)
    opt = torch.optim.SGD([p], lr=lr, momentum=momentum)
    for _ in range(steps):
        train_step(objective, opt, p, draw(), project=project)
    return p.detach()


def _ends(objective: Objective, model2: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """A path's ends as flat points of the objective's moved parameters: its theta
    (``model1``) and ``model2``'s values, on its device and in theta's dtype."""
    w1 = objective.theta
    return w1, flatten_params(model2, objective.layout).to(w1.device, w1.dtype)


def train_bezier(
    model1: nn.Module,
    model2: nn.Module,
    loss_fn=None,
    data=None,
    steps: int = 500,
    lr: float = 0.05,
    momentum: float = 0.9,
    batch_size: int = 128,
    seed: int = 0,
    on_step: Progress | None = None,
    **objective_kwargs,
) -> torch.Tensor:
    """Train the bend of a quadratic Bezier curve between two solutions (Garipov et al.).

    Each step draws ``t ~ U[0, 1]`` and a minibatch and takes an SGD step on the bend
    to lower ``L(phi(t))``. The bend starts at the midpoint of ``w1`` and ``w2``.

    Parameters
    ----------
    model1, model2 : nn.Module
        The two solutions (same architecture).
    loss_fn, data, **objective_kwargs
        The loss and the training data, as for
        :class:`~landscape_widgets.core.objective.Objective` (``params`` trains a bend
        of those parameters only).
    steps, lr, momentum, batch_size, seed
        SGD settings.
    on_step : callable, optional
        ``on_step(step, steps, minibatch_loss)`` after each step.

    Returns
    -------
    torch.Tensor
        The flat bend ``theta``.
    """
    ob = path_objective(model1, model2, loss_fn, data, **objective_kwargs)
    w1, w2 = _ends(ob, model2)
    bend = ((w1 + w2) / 2).requires_grad_(True)
    gen = torch.Generator().manual_seed(int(seed))
    draw = minibatch_sampler(ob, batch_size, gen)
    opt = torch.optim.SGD([bend], lr=lr, momentum=momentum)
    for step in range(steps):
        t = float(torch.rand((), generator=gen))
        point = (1 - t) ** 2 * w1 + 2 * t * (1 - t) * bend + t * t * w2
        loss = train_step(ob, opt, point, draw())
        if on_step is not None:
            on_step(step + 1, steps, loss)
    return bend.detach()


def curve_path(
    model1: nn.Module, model2: nn.Module, bend: torch.Tensor, loss_fn=None, data=None, num: int = 21,
    bn_data=None, **objective_kwargs,
) -> xr.Dataset:
    """Loss along the Bezier curve with the given bend (coordinate ``alpha`` = t)."""
    ob = path_objective(model1, model2, loss_fn, data, **objective_kwargs)
    w1, w2 = _ends(ob, model2)
    t = np.linspace(0.0, 1.0, num)
    values = evaluate_points(ob, model1, w1, [bend.to(w1.device, w1.dtype) - w1, w2 - w1],
                             bezier_coefficients(t), bn_data)
    ds = _path_dataset(values, t, {"path": "bezier"})
    ds.attrs["barrier"] = loss_barrier(ds["loss"].values)
    return ds


def tunnel(
    model1: nn.Module,
    model2: nn.Module,
    loss_fn=None,
    data=None,
    n_points: int = 5,
    steps: int = 200,
    lr: float = 0.05,
    momentum: float = 0.9,
    batch_size: int = 128,
    seed: int = 0,
    num_per_segment: int = 5,
    bn_data=None,
    **objective_kwargs,
) -> xr.Dataset:
    """The Fort & Jastrzebski tunnel between two solutions.

    ``n_points`` points split the segment ``w1 -> w2`` evenly; each is moved by SGD with
    its gradient projected onto the hyperplane normal to the segment (so it keeps its
    position along the segment), then the loss is evaluated along the polygonal path
    ``w1, p1, ..., pn, w2``.

    Returns
    -------
    xr.Dataset
        ``loss`` (and ``accuracy``) over ``alpha`` = position along the segment (the
        fraction of ``w2 - w1`` covered, the same for a split point before and after
        optimization), with ``barrier`` and ``linear_barrier`` attributes and a
        ``points`` variable ``[split, param]`` holding the optimized split points.
    """
    ob = path_objective(model1, model2, loss_fn, data, **objective_kwargs)
    w1, w2 = _ends(ob, model2)
    seg = w2 - w1
    normal = (seg / seg.norm())[:, None]
    draw = minibatch_sampler(ob, batch_size, torch.Generator().manual_seed(int(seed)))
    s = np.linspace(0, 1, n_points + 2)
    points = [w1, *(descend_within(ob, w1 + float(frac) * seg, normal, draw, steps, lr, momentum)
                    for frac in s[1:-1]), w2]
    t_all, parts = [], []
    for k in range(len(points) - 1):
        local = np.linspace(0, 1, num_per_segment)[: None if k == len(points) - 2 else -1]
        parts.append(evaluate_points(ob, model1, points[k], [points[k + 1] - points[k]], local[:, None], bn_data))
        t_all.append(s[k] + local * (s[k + 1] - s[k]))
    values = PointValues({k: np.concatenate([p.values[k] for p in parts]) for k in parts[0].values})
    t = np.concatenate(t_all)
    ds = _path_dataset(values, t, {"path": "tunnel"})
    ds = ds.assign(points=(("split", "param"), torch.stack(points).cpu().numpy()))
    ds.attrs["barrier"] = loss_barrier(values.loss)
    return ds


def curve_plane(w1: torch.Tensor, w2: torch.Tensor, bend: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal ``u, v`` of the plane through ``w1, w2, bend`` (Garipov et al.).

    ``u = (w2 - w1) / |w2 - w1|``; ``v`` is ``bend - w1`` made orthogonal to ``u`` (Gram-
    Schmidt) and normalized.
    """
    u = (w2 - w1).double()
    u = u / u.norm()
    r = (bend - w1).double()
    r = r - (r @ u) * u
    if r.norm() < 1e-12 * max(1.0, float((bend - w1).norm())):
        raise ValueError("the bend lies on the line through w1 and w2: there is no plane to draw")
    return u.float(), (r / r.norm()).float()


def plane_through(
    model: nn.Module,
    points: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    loss_fn=None,
    data=None,
    num: int = 21,
    margin: float = 0.2,
    **landscape_kwargs,
) -> tuple[xr.Dataset, torch.Tensor]:
    """The loss over the plane through three flat points ``(w1, w2, w3)`` of ``model``'s
    parameters.

    Coordinates are in units of ``|w2 - w1|`` from ``w1``: ``w1`` is at (0, 0), ``w2``
    at (1, 0) and ``w3`` above the first axis (:func:`curve_plane`); the grid covers
    the three points with ``margin`` around them. Computed by
    :func:`~landscape_widgets.core.landscape.compute_landscape` with
    ``directions=[u * scale, v * scale]`` and ``theta=w1``.

    Returns
    -------
    ds : xr.Dataset
        The landscape, with attributes ``scale`` and
        ``third_alpha``/``third_beta`` (where ``w3`` lies).
    to_plane : torch.Tensor
        ``[n, 2]`` float64: ``(w - w1) @ to_plane`` are the plane coordinates of any
        point ``w`` (its projection when it is off the plane).
    """
    w1, w2, w3 = (p.to(points[0].device, points[0].dtype) for p in points)
    u, v = curve_plane(w1, w2, w3)
    scale = float((w2 - w1).norm())
    to_plane = torch.stack([u.double(), v.double()]).T / scale
    third = ((w3 - w1).double() @ to_plane).cpu().numpy()
    lo_b, hi_b = min(0.0, float(third[1])), max(0.0, float(third[1]))
    lo_a, hi_a = min(0.0, float(third[0])), max(1.0, float(third[0]))
    grid = make_grid([(lo_a - margin, hi_a + margin), (lo_b - margin, hi_b + margin)], num)
    ds = compute_landscape(model, loss_fn, data, grid, [u * scale, v * scale], theta=w1, **landscape_kwargs)
    ds.attrs.update(scale=scale, third_alpha=float(third[0]), third_beta=float(third[1]))
    return ds, to_plane


def connectivity_plane(
    model1: nn.Module,
    model2: nn.Module,
    bend: torch.Tensor,
    loss_fn=None,
    data=None,
    num: int = 21,
    margin: float = 0.2,
    path_points: int = 41,
    **landscape_kwargs,
) -> xr.Dataset:
    """The loss over the plane through ``w1``, ``w2`` and the bend, with both paths on it
    (:func:`plane_through`: ``w1`` at (0, 0), ``w2`` at (1, 0)).

    Returns
    -------
    xr.Dataset
        The landscape plus ``linear_alpha/beta`` and ``curve_alpha/beta`` (the two paths
        projected on the plane, over dimension ``t``) and ``bend_alpha/beta`` attributes.
    """
    check_same_architecture(model1, model2)
    w1, w2 = flatten_params(model1), flatten_params(model2)
    bend = bend.to(w1.device, w1.dtype)
    ds, to_plane = plane_through(model1, (w1, w2, bend), loss_fn, data, num, margin, **landscape_kwargs)
    t = np.linspace(0, 1, path_points)
    curve = torch.as_tensor(bezier_coefficients(t), dtype=torch.float64)
    rel = torch.stack([(bend - w1).double(), (w2 - w1).double()])  # [2, n]
    curve_xy = (curve.to(to_plane.device) @ rel @ to_plane).cpu().numpy()
    ds = ds.assign(
        linear_alpha=("t", t), linear_beta=("t", np.zeros_like(t)),
        curve_alpha=("t", curve_xy[:, 0]), curve_beta=("t", curve_xy[:, 1]),
    ).assign_coords(t=t)
    ds.attrs.update(plane="w1-w2-bend", bend_alpha=ds.attrs.pop("third_alpha"),
                    bend_beta=ds.attrs.pop("third_beta"))
    return ds
