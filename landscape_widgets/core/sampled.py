"""Pictures from data samples first: estimates of the coarse levels on a random sample of
the data, with standard errors, before every point is computed exactly on all of it.

:func:`refining_chunks` streams like :func:`~landscape_widgets.core.streaming.iter_chunks`
(and is a ``backend`` for :func:`~landscape_widgets.core.landscape.compute_landscape`),
refining grid and data together along the levels of
:func:`~landscape_widgets.core.grids.coarse_to_fine_order`: level 0 estimated on a
seeded random sample of ``fractions[0]`` of the samples, level 0 exact, level 1
estimated on ``fractions[1]``, level 1 exact, and so on; then every other point exactly.
Estimates are ``Chunk.final = False`` and are replaced by the exact values. The result
marks the exact points ``done``; ``<metric>_se`` holds each shown value's standard error
(0 once exact).

The sample is split into ``groups`` groups, each a simple random sample, and a point's
estimate is the mean over the groups' losses (the loss is a batch mean, so any
``loss_fn`` works); its standard error is the groups' spread, ``std / sqrt(groups)``,
times the finite-population factor ``sqrt(1 - fraction)``.

A sample's picture alone is far off: on the demo digits MLP a sixteenth of the training
digits gives a picture about 13% off the exact one (relative RMS), a quarter still about
10%, because far from the minimum a few samples carry most of the loss. But the same
sample is used at every point, so its error is a smooth function over the plane. From
level 1 on, each estimate is therefore corrected by that error where it is known: the
sample's values minus the exact ones at the points of the exact coarser levels,
interpolated (cubic) to the new points and subtracted, group by group, so that the
standard error is the spread of the corrected group values. A corrected level is close
to the exact one at a fraction of its cost (``benchmarks/bench_previews.py`` measures
it); a level whose coarser points were not all computed exactly in this run (a resumed
run) is not estimated.

A sample is small, so one forward per point is bound by per-call costs rather than
arithmetic; ``strategy="batched"`` vmaps the points' forwards, and ``auto`` times both
ways on the first points of each sample and keeps the faster (:func:`sample_values`).
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import numpy as np
import torch

from .data import DataSource, concat_batches, n_rows, sample_groups
from .evaluation import STRATEGIES, PointEvaluator, Strategy
from .grids import Grid, coarse_to_fine_order, level_axes
from .objective import Objective, batch_weights
from .results import SE_SUFFIX
from .strategies import batched_setup_seconds, vmapped_outputs
from .streaming import Chunk, iter_chunks

#: Default data fractions of the sampled levels: level 0 on a sixteenth, level 1 on an
#: eighth (whose error after the correction is about two thirds of a sixteenth's).
FRACTIONS: tuple[float, ...] = (1 / 16, 1 / 8)
#: Default groups of a sample (its standard error comes from their spread).
GROUPS = 8
#: Most points per estimated chunk (a Stop waits for at most one chunk).
SAMPLE_CHUNK = 64
#: Points of each way timed by ``auto`` on a kind of sample (see :func:`sample_values`).
TRIAL_POINTS = 8
#: Seconds per point of the two ways (``loop``, ``batched``) of computing the group values
#: of each kind of sample (:meth:`PointEvaluator.speed_key`) timed so far in this process.
_SAMPLE_SPEEDS: dict[tuple, dict[str, float]] = {}


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
    return group_summary(evaluator.metric_names, values, sizes, fraction)


def group_summary(names: Sequence[str], values: torch.Tensor, sizes: Sequence[int],
                  fraction: float) -> dict[str, np.ndarray]:
    """``values`` ``[values, points, groups]`` (groups of ``sizes`` samples, a ``fraction``
    of the data): each value's sample-weighted mean over the groups and its standard
    error (``<metric>_se``); NaN where the mean is not finite."""
    values = torch.as_tensor(values, dtype=torch.float64)
    w = batch_weights(sizes, values.device).to(torch.float64)
    mean = values @ w
    g = len(sizes)
    spread = ((values - mean[..., None]) ** 2) @ (w**2) * (g / max(g - 1, 1))
    se = torch.sqrt(spread * (1.0 - fraction))
    out: dict[str, np.ndarray] = {}
    for name, m, s in zip(names, mean.cpu().numpy(), se.cpu().numpy()):
        finite = np.isfinite(m)
        out[name] = np.where(finite, m, np.nan)
        out[name + SE_SUFFIX] = np.where(finite, s, np.nan)
    return out


def _group_values(evaluator: PointEvaluator, coeffs,
                  strategy: Literal["loop", "batched"] = "loop") -> tuple[torch.Tensor, tuple[int, ...]]:
    """``[values, points, groups]`` float64 and the group sizes: from one forward per point
    over the whole sample where the model's outputs are a tensor of rows (the loss of a
    small group is cheap, its forward is not), else group by group. ``batched``: the
    points' forwards vmapped, many points per forward (the loop where vmap fails)."""
    ob = evaluator.objective
    values = _one_forward_per_point(evaluator, coeffs, strategy) if ob.tensor_outputs else None
    if values is None:
        values, _ = evaluator.evaluate_batches(coeffs, "loop")
    return values.to(torch.float64), ob.data.sizes


def _one_forward_per_point(evaluator: PointEvaluator, coeffs,
                           strategy: Literal["loop", "batched"]) -> torch.Tensor | None:
    """Each group's values from its rows of one forward over the whole sample, or None
    when the outputs' first dimension is not the samples (their rows are not the groups')."""
    ob = evaluator.objective
    groups = list(ob.data)
    whole = concat_batches(groups)
    bounds = np.cumsum((0,) + ob.data.sizes).tolist()
    spans = list(zip(bounds[:-1], bounds[1:], groups))
    labels = ob.labels(whole) if ob.classification else None
    group_ids = torch.repeat_interleave(torch.arange(len(groups), device=ob.device),
                                        torch.tensor(ob.data.sizes, device=ob.device))
    points = evaluator.points(coeffs)
    per_point = []
    with ob.lock, torch.inference_mode():
        outputs = _vmapped(evaluator, points, whole) if strategy == "batched" else None
        for out in outputs if outputs is not None else _looped(ob, points, whole):
            if out.shape[0] != bounds[-1]:
                return None
            per_point.append(ob.group_rows(out, spans, labels, group_ids))
    return torch.stack(per_point, dim=1)


def _looped(ob: Objective, points: torch.Tensor, whole) -> Iterator[torch.Tensor]:
    """The outputs on ``whole`` at each of ``points`` in turn (the caller holds the lock)."""
    for point in points.unbind(0):
        ob.set_point(point)
        yield ob.outputs(whole)


def _vmapped(evaluator: PointEvaluator, points: torch.Tensor, whole) -> list[torch.Tensor] | None:
    """The outputs on ``whole`` at each of ``points`` from vmapped forwards of as many
    points as the memory plan allows; None where vmap cannot run the model (noted in
    ``evaluator.batched_failed``)."""
    if evaluator.batched_failed:
        return None
    ob = evaluator.objective
    k = min(SAMPLE_CHUNK, evaluator.points_per_forward(n_rows(whole)))
    try:
        return [out for piece in points.split(k)
                for out in vmapped_outputs(ob, ob.layout.split(piece.to(ob.dtype)), whole).unbind(0)]
    except (RuntimeError, NotImplementedError, TypeError, ValueError) as err:
        evaluator.batched_failed = f"{type(err).__name__}: {err}"
        return None


def sample_values(sample: PointEvaluator, coeffs, strategy: Strategy = "auto") -> torch.Tensor:
    """:func:`_group_values` of a :func:`sampled_evaluator` at ``coeffs`` by ``strategy``.

    ``auto`` takes the faster of the two for this kind of sample (its
    :meth:`~PointEvaluator.speed_key`): where this process has not timed both yet and
    there are enough points, it times :data:`TRIAL_POINTS` points of each (after a
    two-point batched warm-up where vmap has not run in the process yet), keeps their
    values and computes the rest the faster way. Vmapped forwards win on small samples
    of many models (a small CNN) and lose on others (BatchNorm, wide layers).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    coeffs = np.asarray(coeffs, dtype=np.float64)
    if strategy != "auto" or not sample.objective.tensor_outputs:
        return _group_values(sample, coeffs, "batched" if strategy == "batched" else "loop")[0]
    speeds = _SAMPLE_SPEEDS.setdefault(sample.speed_key(), {})
    parts, start = [], 0
    if len(speeds) < 2 and len(coeffs) >= 3 * TRIAL_POINTS:
        if batched_setup_seconds(False):
            parts.append(_group_values(sample, coeffs[:2], "batched")[0])
            start = 2
        for use in ("batched", "loop"):
            began = time.perf_counter()
            parts.append(_group_values(sample, coeffs[start:start + TRIAL_POINTS], use)[0])
            speeds[use] = np.inf if sample.batched_failed else (time.perf_counter() - began) / TRIAL_POINTS
            start += TRIAL_POINTS
    use = "batched" if speeds.get("batched", np.inf) < speeds.get("loop", np.inf) else "loop"
    if start < len(coeffs):
        parts.append(_group_values(sample, coeffs[start:], use)[0])
    return torch.cat(parts, dim=1)


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
        exact values). ``order="raster"`` skips the estimates. ``strategy`` also says
        how the samples' points are computed (:func:`sample_values`).
    fractions : sequence of float
        Level ``i`` of :func:`~landscape_widgets.core.grids.coarse_to_fine_order` is
        first estimated on a sample of ``fractions[i]`` of the samples (each in
        ``(0, 1)``; e.g. ``(1/16, 1/4)``): level 0 at once, level ``i >= 1`` once the
        coarser levels are exact, corrected by the sample's error on them (see the
        module text). Skipped when the data is streamed or a sample would give a group
        fewer than 2 samples; ``()`` computes exact values only.
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
    exact_chunks = iter_chunks(evaluator, grid, strategy, chunk_size, order, skip, cancel)
    if order != "coarse_to_fine":
        yield from exact_chunks
        return
    refinement = _Refinement(evaluator, grid, strategy, fractions, groups, seed, skip)
    yield from refinement.estimates(0, cancel)
    for chunk in exact_chunks:
        refinement.record(chunk)
        yield chunk
        while refinement.next_level_ready():
            yield from refinement.estimates(refinement.level, cancel)


class _Refinement:
    """What :func:`refining_chunks` knows between its chunks: the exact values computed so
    far and each sample's group values, per grid point."""

    def __init__(self, evaluator: PointEvaluator, grid: Grid, strategy: Strategy, fractions: Sequence[float],
                 groups: int, seed: int, skip) -> None:
        self.evaluator, self.grid, self.strategy, self.groups, self.seed = evaluator, grid, strategy, groups, seed
        order, ends = coarse_to_fine_order(grid.shape)
        self.levels = [order[a:b] for a, b in zip(np.concatenate([[0], ends[:-1]]), ends)]
        self.fractions = list(fractions[: len(self.levels)])
        n_values = len(evaluator.metric_names)
        self.exact = np.full((n_values, grid.size), np.nan)
        self.computed = np.zeros(grid.size, dtype=bool)  # exact in this run
        self.skipped = np.zeros(grid.size, dtype=bool)
        self.skipped[np.asarray(skip if skip is not None else [], dtype=np.int64)] = True
        self.samples: dict[float, tuple[PointEvaluator, np.ndarray, np.ndarray]] = {}
        self.level = 0  # the next level to estimate

    def record(self, chunk: Chunk) -> None:
        """Keep an exact chunk's values."""
        for i, name in enumerate(self.evaluator.metric_names):
            self.exact[i, chunk.indices] = chunk.values[name]
        self.computed[chunk.indices] = True

    def next_level_ready(self) -> bool:
        """Whether the next level is to be estimated now: every point of the coarser
        levels is exact (those of a resumed run are not known here: no estimates)."""
        if self.level >= len(self.fractions):
            return False
        coarser = np.concatenate(self.levels[: self.level]) if self.level else np.zeros(0, np.int64)
        if (self.skipped[coarser] & ~self.computed[coarser]).any():
            self.level = len(self.fractions)  # resumed: no more estimates
            return False
        return bool(self.computed[coarser].all())

    def estimates(self, level: int, cancel: threading.Event | None) -> Iterator[Chunk]:
        """The chunks of ``level``'s estimates (corrected from level 1 on), if any."""
        self.level = level + 1
        fraction = self.fractions[level] if level < len(self.fractions) else None
        if fraction is None or not can_sample(self.evaluator.objective.data, fraction, self.groups):
            return
        todo = self.levels[level][~(self.computed | self.skipped)[self.levels[level]]]
        if not len(todo):
            return
        error = self._sample_error(fraction, level) if level else None
        if level and error is None:
            return
        for start in range(0, len(todo), SAMPLE_CHUNK):
            if cancel is not None and cancel.is_set():
                return
            idx = todo[start:start + SAMPLE_CHUNK]
            values = self._sample_values(fraction, idx)  # [values, points, groups]
            if error is not None:
                values = values - error(idx)
            sample = self.samples[fraction][0]
            yield Chunk(idx, group_summary(sample.metric_names, values, sample.objective.data.sizes, fraction),
                        "sample", final=False)

    def _sample_values(self, fraction: float, idx: np.ndarray) -> np.ndarray:
        """Group values ``[values, points, groups]`` of the sample ``fraction`` at ``idx``,
        computed where they are not known yet."""
        if fraction not in self.samples:
            sample = sampled_evaluator(self.evaluator, fraction, self.groups, self.seed)
            n_values = len(sample.metric_names)
            self.samples[fraction] = (sample, np.full((n_values, self.grid.size, self.groups), np.nan),
                                      np.zeros(self.grid.size, dtype=bool))
        sample, table, have = self.samples[fraction]
        missing = idx[~have[idx]]
        if len(missing):
            table[:, missing] = sample_values(sample, self.grid.coords(missing), self.strategy).cpu().numpy()
            have[missing] = True
        return table[:, idx]

    def _sample_error(self, fraction: float, level: int) -> Callable[[np.ndarray], np.ndarray] | None:
        """The sample's error (its group values minus the exact values) on the points of
        the levels below ``level`` (a sub-grid), interpolated: a function of flat indices
        giving ``[values, points, groups]``. Computes the sample's values there where they
        are missing; None where a value there is not finite."""
        from scipy.interpolate import RegularGridInterpolator

        axes = level_axes(self.grid.shape, level - 1)
        points = np.ravel_multi_index(np.meshgrid(*axes, indexing="ij"), self.grid.shape).reshape(-1)
        error = self._sample_values(fraction, points) - self.exact[:, points, None]  # [values, coarse, groups]
        if not np.isfinite(error).all():
            return None
        shape = [len(a) for a in axes]
        dims = [d for d, n in enumerate(shape) if n > 1]  # an axis of 1 point drops out
        nodes = np.moveaxis(error, 1, 0).reshape(*[shape[d] for d in dims], -1)
        method = "cubic" if min(shape[d] for d in dims) >= 4 else "linear"
        values = [np.asarray(self.grid.axes[d].values) for d in dims]
        interpolate = RegularGridInterpolator([v[axes[d]] for v, d in zip(values, dims)], nodes, method=method)

        def at(idx: np.ndarray) -> np.ndarray:
            where = np.unravel_index(idx, self.grid.shape)
            out = interpolate(np.stack([v[where[d]] for v, d in zip(values, dims)], axis=-1))
            return np.moveaxis(out.reshape(len(idx), *error.shape[::2]), 0, 1)

        return at
