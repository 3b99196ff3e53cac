"""Values of an objective at points ``theta + sum_i c_i d_i``: the evaluator the streams use.

:class:`PointEvaluator` puts together an :class:`~landscape_widgets.core.objective.Objective`
(model copy, data, loss and metrics), a centre point and directions, the memory plan of
:mod:`~landscape_widgets.core.memory` and the two strategies of
:mod:`~landscape_widgets.core.strategies`. On the CPU it also asks glibc to keep freed
memory for reuse (:func:`~landscape_widgets.core.allocator.retain_freed_memory`), so that
a forward's activations do not page-fault in afresh at every point.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from .allocator import retain_freed_memory
from .data import n_rows, tensor_leaves
from .input_layer import CachedInputLayer, find_input_layer
from .memory import MAX_CHUNK, chunk_plan, chunk_points, default_budget, largest_activation
from .objective import LossShapeError, Objective, as_objective, batch_weights, mean_over_batches
from .strategies import batched_setup_seconds, evaluate_batched, evaluate_loop

Strategy = Literal["auto", "loop", "batched"]
STRATEGIES: tuple[str, ...] = ("auto", "loop", "batched")
#: Most bytes of cached input-layer outputs (theta and each direction, all batches).
INPUT_CACHE_BYTES = 256 * 2**20


class HasValues:
    """``loss`` and ``accuracy`` (None for regression) read from a ``values`` dict."""

    values: dict[str, np.ndarray]

    @property
    def loss(self) -> np.ndarray:
        return self.values["loss"]

    @property
    def accuracy(self) -> np.ndarray | None:
        return self.values.get("accuracy")


@dataclass(frozen=True)
class PointValues(HasValues):
    """Values at a set of points: ``{"loss": ..., "accuracy": ..., metric: ...}`` arrays
    (NaN where the value is not finite)."""

    values: dict[str, np.ndarray]


class PointEvaluator:
    """An objective, a centre point and directions, prepared for many points.

    Parameters
    ----------
    model : nn.Module or Objective
        The network (then ``loss_fn``, ``data`` and ``objective_kwargs`` build the
        :class:`~landscape_widgets.core.objective.Objective`), or an objective.
    loss_fn, data
        See :class:`~landscape_widgets.core.objective.Objective`.
    directions : sequence of torch.Tensor
        Flat directions over the moved parameters (see
        :mod:`landscape_widgets.core.directions`).
    theta : torch.Tensor, optional
        Flat centre point; default the objective's theta.
    memory_budget : int, optional
        Bytes a batched chunk may use (default
        :func:`~landscape_widgets.core.memory.default_budget`).
    cache_input_layer : bool
        In the ``loop`` strategy, compute a Linear/Conv layer that reads the data once
        per direction and data batch instead of once per point (see
        :mod:`landscape_widgets.core.input_layer`; up to :data:`INPUT_CACHE_BYTES`).
    **objective_kwargs
        ``params``, ``forward``, ``pass_batch``, ``metrics``, ``accuracy``, ``task``,
        ``device``, ``dtype``, ``batch_size``, ``max_batches``, ``max_samples``,
        ``data_budget``: see :class:`~landscape_widgets.core.objective.Objective`.
    """

    def __init__(
        self,
        model,
        loss_fn=None,
        data=None,
        directions=None,
        *,
        theta: torch.Tensor | None = None,
        memory_budget: int | None = None,
        cache_input_layer: bool = True,
        **objective_kwargs,
    ) -> None:
        self.objective: Objective = as_objective(model, loss_fn, data, **objective_kwargs)
        ob = self.objective
        directions = list(directions or [])
        if not directions:
            raise ValueError("give at least one direction (see random_directions)")
        for i, d in enumerate(directions):
            if not isinstance(d, torch.Tensor) or d.dim() != 1 or d.numel() != ob.layout.size:
                shape = tuple(d.shape) if isinstance(d, torch.Tensor) else type(d).__name__
                raise ValueError(
                    f"direction {i} has shape {shape}; it must be a flat vector of the "
                    f"{ob.layout.size} moved parameters (see random_directions)"
                )
        self.theta = ob.as_point(theta)
        self.directions = torch.stack([d.detach().to(ob.device, self.theta.dtype) for d in directions])
        if ob.device.type == "cpu":
            retain_freed_memory()  # activations are reused, not page-faulted in afresh
        self._activation: int | None = None
        self.memory_budget = memory_budget or default_budget(ob.device)
        self.batched_failed: str | None = None
        self._input_layer: CachedInputLayer | None = None
        self._input_layer_tried = not cache_input_layer
        self._cache_input_layer = cache_input_layer

    @property
    def n_directions(self) -> int:
        return int(self.directions.shape[0])

    @property
    def device(self) -> torch.device:
        return self.objective.device

    @property
    def metric_names(self) -> tuple[str, ...]:
        return self.objective.metric_names

    @property
    def activation(self) -> int:
        """Largest per-sample activation of the model (elements), from a hooked forward
        of the probe batch on first use (only the batched strategy's memory plan needs it)."""
        if self._activation is None:
            ob = self.objective
            probe = ob.data.probe()
            with ob.lock:
                ob.set_point(self.theta)
                self._activation = largest_activation(ob.model, lambda: ob.outputs(probe), n_rows(probe))
        return self._activation

    def chunk_plan(self, chunk_size: int | None = None) -> tuple[int, int]:
        """Points per batched chunk and data rows per vmapped forward (see
        :func:`~landscape_widgets.core.memory.chunk_plan`)."""
        ob = self.objective
        return chunk_plan(ob.device, max(ob.data.sizes), lambda: self.activation, ob.flat.element_size(),
                          ob.layout.size, self.memory_budget, chunk_size)

    def points_per_forward(self, rows: int) -> int:
        """Most points one vmapped forward over ``rows`` samples may take: the memory
        plan's points times rows per forward (on the CPU up to :data:`MAX_CHUNK` points,
        its intermediate tensors below its limit), spread over ``rows``."""
        ob = self.objective
        k, fit = chunk_plan(ob.device, rows, lambda: self.activation, ob.flat.element_size(), ob.layout.size,
                            self.memory_budget, MAX_CHUNK if ob.device.type == "cpu" else None)
        return max(1, k * fit // rows)

    def chunk_points(self, chunk_size: int | None = None) -> int:
        """Points per chunk (the first half of :meth:`chunk_plan`; on the CPU without the
        activation probe, which only the rows per vmapped forward depend on)."""
        ob = self.objective
        return chunk_points(ob.device, max(ob.data.sizes), lambda: self.activation, ob.flat.element_size(),
                            ob.layout.size, self.memory_budget, chunk_size)

    @property
    def vmap_values(self) -> bool:
        """Whether the batched strategy vmaps the loss too (see
        :func:`~landscape_widgets.core.strategies.evaluate_batched`)."""
        ob = self.objective
        return ob.device.type != "cpu" or not ob.tensor_outputs

    def speed_key(self) -> tuple:
        """What the speed of the two strategies depends on: the model's class and moved
        parameters, the data's batches and shapes, device, dtype, directions, the values
        computed and the input-layer cache (``auto`` remembers the speeds measured in this
        process under this key)."""
        ob = self.objective
        leaves = tuple((tuple(t.shape), str(t.dtype)) for t in tensor_leaves(ob.data.first))
        loss = getattr(ob.loss_fn, "__qualname__", type(ob.loss_fn).__name__)
        return (ob.model_name, ob.layout.names, tuple(tuple(s) for s in ob.layout.shapes), ob.n_params_total,
                ob.data.sizes, ob.data.resident, leaves, str(ob.device), str(ob.dtype), self.n_directions,
                ob.metric_names, loss, ob.forward is not None, self._cache_input_layer)

    def batched_setup_seconds(self) -> float:
        """Estimated one-off seconds of this evaluator's first batched chunk (vmap's first
        call in the process, sympy's import): what ``auto`` weighs before a batched trial.
        ``inf`` once vmap failed on this model."""
        if self.batched_failed:
            return float("inf")
        return batched_setup_seconds(self.vmap_values)

    def points(self, coeffs) -> torch.Tensor:
        """Parameter vectors ``theta + coeffs @ directions`` as a ``[k, n]`` matrix."""
        return torch.addmm(self.theta, self._as_coeffs(coeffs), self.directions)

    def cached_input_layer(self) -> CachedInputLayer | None:
        """The loop's cache of the layer that reads the data, built on first use; ``None``
        when the model has no such layer worth caching or it would not fit."""
        if self._input_layer_tried:
            return self._input_layer
        self._input_layer_tried = True
        ob = self.objective
        first = ob.data.probe()
        with ob.lock:
            ob.set_point(self.theta)
            found = find_input_layer(ob.model, lambda: ob.outputs(first), tensor_leaves(first))
        if found is None:
            return None
        name, leaf = found
        module = ob.model.get_submodule(name)
        with torch.inference_mode():
            per_sample = module(tensor_leaves(first)[leaf][:1]).numel()
        kept = ob.data.n_samples if ob.data.resident else max(ob.data.sizes)  # streamed: one batch at a time
        size = ob.flat.element_size() * (1 + self.n_directions) * per_sample * kept
        if size > INPUT_CACHE_BYTES:
            return None
        self._input_layer = CachedInputLayer.build(ob.model, name, ob.layout, self.theta, self.directions, leaf,
                                                   keep=ob.data.resident)
        return self._input_layer

    def evaluate(self, coeffs, strategy: Literal["loop", "batched"] = "loop", rows: int | None = None) -> PointValues:
        """Evaluate with one strategy; ``batched`` falls back to ``loop`` (with a warning)
        when ``torch.vmap`` cannot handle the model. ``rows``: data rows per vmapped
        forward (default from the memory plan)."""
        return self._finish(*self.evaluate_batches(coeffs, strategy, rows))

    def evaluate_batches(self, coeffs, strategy: Literal["loop", "batched"] = "loop",
                         rows: int | None = None) -> tuple[torch.Tensor, tuple[int, ...]]:
        """Like :meth:`evaluate`, before the mean over the data: each value on each batch.

        Returns
        -------
        values : torch.Tensor
            ``[values, points, batches]`` float64 (:attr:`metric_names` order).
        sizes : tuple of int
            Samples per batch (the batched strategy's pieces when it splits batches).
        """
        coeffs = self._as_coeffs(coeffs)
        if strategy not in ("loop", "batched"):
            raise ValueError(f"strategy must be 'loop' or 'batched', got {strategy!r}")
        if strategy == "batched" and not self.batched_failed:
            ob = self.objective
            try:
                return evaluate_batched(ob, self.theta, self.directions, coeffs, rows or self.chunk_plan()[1],
                                        self.vmap_values)
            except LossShapeError:
                raise  # the user's loss is wrong, not vmap: no fallback
            except (RuntimeError, NotImplementedError, TypeError, ValueError) as err:
                self.batched_failed = f"{type(err).__name__}: {err}"
                warnings.warn(
                    f"{ob.model_name} cannot be evaluated with torch.vmap "
                    f"({self.batched_failed.splitlines()[0]}); falling back to the per-point loop",
                    RuntimeWarning,
                    stacklevel=3,
                )
        cached = self.cached_input_layer()
        return evaluate_loop(self.objective, self.theta, self.directions, coeffs, cached)

    def timed(self, coeffs, strategy: Literal["loop", "batched"]) -> tuple[PointValues, float]:
        """Evaluate and return seconds per point (device work included)."""
        start = time.perf_counter()
        values = self.evaluate(coeffs, strategy)
        return values, (time.perf_counter() - start) / max(len(values.loss), 1)

    def _as_coeffs(self, coeffs) -> torch.Tensor:
        c = torch.as_tensor(np.asarray(coeffs, dtype=np.float64)).to(self.device, self.theta.dtype)
        if c.dim() != 2 or c.shape[1] != self.n_directions:
            raise ValueError(
                f"coefficients must have shape [points, {self.n_directions}], got {tuple(c.shape)}"
            )
        return c

    def _finish(self, values: torch.Tensor, sizes: tuple[int, ...]) -> PointValues:
        """Sample-weighted mean over the batches of each value (``[values, points, batches]``):
        one float64 product and one transfer to the host per chunk."""
        means = mean_over_batches(values, batch_weights(sizes, values.device))
        return PointValues(dict(zip(self.metric_names, means)))


def values_at(objective: Objective, point: torch.Tensor | None = None) -> dict[str, float]:
    """Loss and metrics of ``objective`` at one flat ``point`` (default theta)."""
    centre = objective.as_point(point)
    evaluator = PointEvaluator(objective, directions=[torch.zeros_like(centre)], theta=centre,
                               cache_input_layer=False)
    return {k: float(v[0]) for k, v in evaluator.evaluate(np.zeros((1, 1))).values.items()}
