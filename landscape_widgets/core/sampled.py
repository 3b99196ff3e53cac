"""Pictures from data samples first: estimates of the coarse levels on a random sample of
the data, with standard errors, before every point is computed exactly on all of it.

:func:`refining_chunks` streams like :func:`~landscape_widgets.core.streaming.iter_chunks`
(and is a ``backend`` for :func:`~landscape_widgets.core.landscape.compute_landscape`):
first the points of coarse level ``i`` of
:func:`~landscape_widgets.core.grids.coarse_to_fine_order` on a seeded random sample of
``fractions[i]`` of the samples, as estimates (``Chunk.final`` is False); then every
point on all the data, coarse to fine, which replaces the estimates. The result marks
the exact points ``done``; ``<metric>_se`` holds each shown value's standard error (0
once exact).

The sample is split into ``groups`` groups, each a simple random sample, and a point's
estimate is the mean over the groups' losses (the loss is a batch mean, so any
``loss_fn`` works); its standard error is the groups' spread, ``std / sqrt(groups)``,
times the finite-population factor ``sqrt(1 - fraction)``. The same sample is used at
every point, so an estimated picture is smooth but its errors are correlated across
points. How large they are depends on the model and data: on the demo digits MLP a
sixteenth of the training digits gives a picture about 16% off the exact one (relative
RMS), a quarter still about 10%, because far from the minimum a few samples carry most
of the loss (``benchmarks/bench_previews.py`` measures it). So the default samples only
the first level, where it costs a few point evaluations, and the exact coarse level
follows at once.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from .data import DataSource, concat_batches, sample_groups
from .evaluation import PointEvaluator, Strategy
from .grids import Grid, coarse_to_fine_order
from .objective import batch_weights
from .results import SE_SUFFIX
from .streaming import Chunk, iter_chunks

#: Default data fractions of the sampled levels: the first level on a sixteenth.
FRACTIONS: tuple[float, ...] = (1 / 16,)
#: Default groups of a sample (its standard error comes from their spread).
GROUPS = 8
#: Most points per estimated chunk (a Stop waits for at most one chunk).
SAMPLE_CHUNK = 64


def sampled_evaluator(evaluator: PointEvaluator, fraction: float, groups: int = GROUPS,
                      seed: int = 0) -> PointEvaluator:
    """An evaluator of the same model copy, centre and directions on a seeded random
    sample of ``fraction`` of ``evaluator``'s (resident) data, in ``groups`` batches."""
    objective = copy.copy(evaluator.objective)  # shares the model copy, its lock and layout
    objective.data = sample_groups(evaluator.objective.data, fraction, groups, seed)
    return PointEvaluator(objective, directions=list(evaluator.directions), theta=evaluator.theta,
                          memory_budget=evaluator.memory_budget)


def estimate(evaluator: PointEvaluator, coeffs, fraction: float) -> dict[str, np.ndarray]:
    """Each value's mean over the groups of a :func:`sampled_evaluator`, and its standard
    error (``<metric>_se``), at the points ``coeffs``."""
    values, sizes = _group_values(evaluator, coeffs)  # [values, points, groups]
    w = batch_weights(sizes, values.device).to(torch.float64)
    mean = values @ w
    g = len(sizes)
    spread = ((values - mean[..., None]) ** 2) @ (w**2) * (g / max(g - 1, 1))
    se = torch.sqrt(spread * (1.0 - fraction))
    out: dict[str, np.ndarray] = {}
    for name, m, s in zip(evaluator.metric_names, mean.cpu().numpy(), se.cpu().numpy()):
        finite = np.isfinite(m)
        out[name] = np.where(finite, m, np.nan)
        out[name + SE_SUFFIX] = np.where(finite, s, np.nan)
    return out


def _group_values(evaluator: PointEvaluator, coeffs) -> tuple[torch.Tensor, tuple[int, ...]]:
    """``[values, points, groups]`` float64 and the group sizes: from one forward per point
    over the whole sample where the model's outputs are a tensor of rows (the loss of a
    small group is cheap, its forward is not), else group by group."""
    ob = evaluator.objective
    values = _one_forward_per_point(evaluator, coeffs) if ob.tensor_outputs else None
    if values is None:
        values, _ = evaluator.evaluate_batches(coeffs, "loop")
    return values.to(torch.float64), ob.data.sizes


def _one_forward_per_point(evaluator: PointEvaluator, coeffs) -> torch.Tensor | None:
    """Each group's values from its rows of one forward over the whole sample, or None
    when the outputs' first dimension is not the samples (their rows are not the groups')."""
    ob = evaluator.objective
    groups = list(ob.data)
    whole = concat_batches(groups)
    bounds = np.cumsum((0,) + ob.data.sizes)
    per_point = []
    with ob.lock, torch.inference_mode():
        for point in evaluator.points(coeffs).unbind(0):
            ob.set_point(point)
            outputs = ob.outputs(whole)
            if outputs.shape[0] != bounds[-1]:
                return None
            per_point.append(torch.stack([
                ob.value_rows(*ob.point_values(outputs[a:b], group), group)
                for a, b, group in zip(bounds[:-1], bounds[1:], groups)
            ], dim=-1))
    return torch.stack(per_point, dim=1)


def can_sample(data: DataSource, fraction: float, groups: int) -> bool:
    """Whether ``data`` is resident and a ``fraction`` of it gives every group 2 samples."""
    return data.resident and 0 < fraction < 1 and round(fraction * data.n_samples) >= 2 * groups


def refining_chunks(
    evaluator: PointEvaluator,
    grid: Grid,
    strategy: Strategy = "auto",
    chunk_size: int | None = None,
    order: str = "coarse_to_fine",
    skip=None,
    cancel: threading.Event | None = None,
    *,
    fractions: Sequence[float] = FRACTIONS,
    groups: int = GROUPS,
    seed: int = 0,
) -> Iterator[Chunk]:
    """Estimates of the coarse levels on data samples, then every point exactly.

    Parameters
    ----------
    evaluator, grid, strategy, chunk_size, order, skip, cancel
        As :func:`~landscape_widgets.core.streaming.iter_chunks` (which computes the
        exact values). ``order="raster"`` skips the estimates.
    fractions : sequence of float
        Level ``i`` of :func:`~landscape_widgets.core.grids.coarse_to_fine_order` is
        first estimated on a sample of ``fractions[i]`` of the samples (each in
        ``(0, 1)``; e.g. ``(1/16, 1/4)``). Skipped when the data is streamed or a sample
        would give a group fewer than 2 samples.
    groups : int
        Groups per sample, at least 2.
    seed : int
        Seeds the samples.

    Yields
    ------
    Chunk
        Estimates (``final=False``, ``strategy="sample"``, values with ``<metric>_se``),
        then exact chunks as :func:`~landscape_widgets.core.streaming.iter_chunks` gives.
    """
    if groups < 2:
        raise ValueError(f"groups must be at least 2 (the standard error needs a spread), got {groups}")
    for f in fractions:
        if not 0 < f < 1:
            raise ValueError(f"each sample fraction must be in (0, 1), got {f}")
    if order == "coarse_to_fine":
        levels_order, ends = coarse_to_fine_order(grid.shape)
        starts = np.concatenate([[0], ends[:-1]])
        done = np.asarray(skip if skip is not None else [], dtype=np.int64)
        for level, fraction in enumerate(fractions[: len(ends)]):
            if not can_sample(evaluator.objective.data, fraction, groups):
                continue
            todo = levels_order[starts[level]:ends[level]]
            todo = todo[~np.isin(todo, done)]
            if not len(todo):
                continue
            sample = sampled_evaluator(evaluator, fraction, groups, seed + level)
            for start in range(0, len(todo), SAMPLE_CHUNK):
                if cancel is not None and cancel.is_set():
                    return
                idx = todo[start:start + SAMPLE_CHUNK]
                yield Chunk(idx, estimate(sample, grid.coords(idx), fraction), "sample", final=False)
    yield from iter_chunks(evaluator, grid, strategy, chunk_size, order, skip, cancel)

