"""Loss (and accuracy) at points ``theta + sum_i c_i d_i`` of parameter space.

Two strategies compute the same numbers:

``loop``
    one point at a time: the point's parameters are written into a private copy of the
    model (whose parameters are views of one flat buffer, so this is a single
    ``addmv``) and the data goes through an ordinary forward. Lean in memory, and on a
    CPU already near the matrix-multiply peak for a full-batch forward.
``batched``
    many points per forward with ``torch.func.functional_call`` + ``torch.vmap``.
    This pays off on a GPU, where a small model's per-point forward is bound by kernel
    launches. Chunks are sized so that no intermediate tensor exceeds a per-tensor
    limit (on CPU a few MB, below glibc's 32 MB mmap threshold, so buffers are reused
    rather than page-faulted in afresh).

On the CPU the evaluator also asks glibc to keep freed memory for reuse
(:func:`landscape_widgets.allocator.retain_freed_memory`), so that a forward's
activations do not page-fault in afresh at every point.
"""

from __future__ import annotations

import contextlib
import copy
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .allocator import retain_freed_memory
from .data import Batches, as_batches
from .input_layer import CachedInputLayer, find_input_layer
from .params import bind_params_to_flat_, flatten_params, param_layout

Strategy = Literal["auto", "loop", "batched"]
STRATEGIES: tuple[str, ...] = ("auto", "loop", "batched")
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: Largest intermediate tensor a batched chunk may create on the CPU (bytes): small
#: enough to stay in cache-friendly sizes, far below glibc's 32 MB mmap threshold, so
#: buffers are reused rather than page-faulted in afresh.
CPU_TENSOR_LIMIT = 4 * 2**20
#: Points per batched chunk on the CPU (the data rows per forward adapt to the limit).
CPU_CHUNK = 16
#: Most points in one batched chunk.
MAX_CHUNK = 1024
#: torch's CPU ``log_softmax`` over a last dimension of fewer than this many classes runs
#: a scalar loop (about 8 ns an element: 140 us for 1797 x 10 logits, more than the last
#: Linear layer). Cross-entropy over the same logits viewed as ``[1, classes, samples]``
#: is vectorized, 4x faster and gives the same value.
FEW_CLASSES = 16
#: Most bytes of cached input-layer outputs (theta and each direction, all batches).
INPUT_CACHE_BYTES = 256 * 2**20


class LossShapeError(ValueError):
    """``loss_fn`` returned something other than a scalar batch mean."""


@dataclass(frozen=True)
class PointValues:
    """Loss and accuracy at a set of points (NaN where the loss is not finite)."""

    loss: np.ndarray
    accuracy: np.ndarray | None


def _is_cross_entropy(loss_fn) -> bool:
    """``F.cross_entropy`` or an ``nn.CrossEntropyLoss`` (not a subclass): losses whose
    value is the same for logits ``[B, C]`` and their view ``[1, C, B]``."""
    return loss_fn is F.cross_entropy or type(loss_fn) is nn.CrossEntropyLoss


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"auto"`` picks CUDA when available, else the CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but torch sees no CUDA device")
    return device


class PointEvaluator:
    """A model, loss and data prepared for evaluation at many parameter points.

    Parameters
    ----------
    model : nn.Module
        The network. It is copied (the caller's model is never modified) and put in
        eval mode, so BatchNorm uses its running statistics and dropout is off.
    loss_fn : callable
        ``loss_fn(outputs, targets)`` returning the *mean* loss over the batch, e.g.
        ``torch.nn.functional.cross_entropy``.
    data : (inputs, targets) or iterable of batches
        See :func:`landscape_widgets.data.as_batches`.
    directions : sequence of torch.Tensor
        1 to 3 flat directions (see :mod:`landscape_widgets.directions`).
    theta : torch.Tensor, optional
        Flat centre point; defaults to the model's parameters.
    device : str or torch.device, optional
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default: CUDA when available.
    task : {"auto", "classification", "regression"}
        Whether to report accuracy (``auto``: when outputs are ``[B, C]`` logits and
        targets are integer class labels).
    accuracy : bool
        Report accuracy for a classification task (``False``: the loss only, which
        saves an ``argmax`` per point, about 5% on a small model).
    max_batches, max_samples : int, optional
        Cap on the data read.
    memory_budget : int, optional
        Bytes a batched chunk may use (default: 64 MB on CPU, a quarter of the free
        GPU memory on CUDA).
    cache_input_layer : bool
        In the ``loop`` strategy, compute a Linear/Conv layer that reads the data once
        per direction instead of once per point (see
        :mod:`landscape_widgets.input_layer`; up to :data:`INPUT_CACHE_BYTES`).
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        data,
        directions,
        theta: torch.Tensor | None = None,
        device: str | torch.device | None = None,
        task: Literal["auto", "classification", "regression"] = "auto",
        accuracy: bool = True,
        max_batches: int | None = None,
        max_samples: int | None = None,
        memory_budget: int | None = None,
        cache_input_layer: bool = True,
    ) -> None:
        self.layout = param_layout(model)
        self.device = resolve_device(device)
        directions = list(directions)
        if not 1 <= len(directions) <= 3:
            raise ValueError(f"give 1, 2 or 3 directions, got {len(directions)}")
        for i, d in enumerate(directions):
            if d.dim() != 1 or d.numel() != self.layout.size:
                raise ValueError(
                    f"direction {i} has shape {tuple(d.shape)}; it must be a flat vector of "
                    f"the model's {self.layout.size} parameters (see random_directions)"
                )
        if self.device.type == "cpu":
            retain_freed_memory()  # activations are reused, not page-faulted in afresh
        self.model = copy.deepcopy(model).to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self._flat = bind_params_to_flat_(self.model)
        dtype = self._flat.dtype
        theta = flatten_params(model) if theta is None else theta.detach()
        if theta.dim() != 1 or theta.numel() != self.layout.size:
            raise ValueError(
                f"theta has shape {tuple(theta.shape)}; expected ({self.layout.size},)"
            )
        self.theta = theta.to(self.device, dtype)
        self.directions = torch.stack([d.detach().to(self.device, dtype) for d in directions])
        self.loss_fn = loss_fn
        self.batches = as_batches(data, max_batches=max_batches, max_samples=max_samples).to(
            self.device
        )
        self.buffers = dict(self.model.named_buffers())
        self.classification = self._detect_task(task) and accuracy
        self._classes_first = self.device.type == "cpu" and _is_cross_entropy(loss_fn)
        self.activation_floats = self._largest_activation_per_sample()
        self.memory_budget = memory_budget or self._default_budget()
        self.batched_failed: str | None = None
        self._input_layer: CachedInputLayer | None = None
        self._input_layer_tried = not cache_input_layer

    @property
    def n_directions(self) -> int:
        return int(self.directions.shape[0])

    def _detect_task(self, task: str) -> bool:
        if task not in ("auto", "classification", "regression"):
            raise ValueError(f"task must be auto, classification or regression, got {task!r}")
        if task != "auto":
            return task == "classification"
        x, y = self.batches.batches[0]
        with torch.inference_mode():
            self._flat.copy_(self.theta)
            out = self.model(x[:2])
        return (
            out.dim() == 2
            and out.shape[1] > 1
            and y.dim() == 1
            and not torch.is_floating_point(y)
            and not torch.is_complex(y)
        )

    def _largest_activation_per_sample(self) -> int:
        """Largest per-sample output of any module, in floats (for chunk sizing)."""
        sizes = [1]

        def hook(_m, _inp, out):
            if isinstance(out, torch.Tensor) and out.dim() > 0 and len(out):
                sizes.append(out.numel() // len(out))

        handles = [m.register_forward_hook(hook) for m in self.model.modules()]
        try:
            with torch.inference_mode():
                self.model(self.batches.batches[0][0][:1])
        finally:
            for h in handles:
                h.remove()
        return max(sizes)

    def _default_budget(self) -> int:
        if self.device.type == "cuda":
            free, _total = torch.cuda.mem_get_info(self.device)
            return int(free // 4)
        return 4 * CPU_TENSOR_LIMIT

    def chunk_plan(self, chunk_size: int | None = None) -> tuple[int, int]:
        """Points per batched chunk and data rows per vmapped forward.

        On CPU a chunk has :data:`CPU_CHUNK` points and as many data rows per forward as
        keep each intermediate tensor (points x rows x widest activation) below
        :data:`CPU_TENSOR_LIMIT`; on GPU the chunk fills ``memory_budget``.
        """
        rows = max(len(x) for x, _ in self.batches.batches)
        per_point_row = 4 * self.activation_floats
        params_bytes = 4 * self.layout.size
        if self.device.type == "cuda":
            per_point = 3 * per_point_row * rows + 2 * params_bytes
            k = chunk_size or int(np.clip(self.memory_budget // per_point, 1, MAX_CHUNK))
            return k, rows
        limit = min(CPU_TENSOR_LIMIT, self.memory_budget)
        k = chunk_size or CPU_CHUNK
        k = int(min(k, max(1, self.memory_budget // (2 * params_bytes))))
        rows = int(np.clip(limit // (per_point_row * k), 1, rows))
        return k, rows

    # -- the two strategies -------------------------------------------------------------

    def points(self, coeffs: torch.Tensor) -> torch.Tensor:
        """Parameter vectors ``theta + coeffs @ directions`` as a ``[k, n]`` matrix."""
        return torch.addmm(self.theta, coeffs, self.directions)

    def _loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self._classes_first and out.dim() == 2 and out.shape[1] < FEW_CLASSES and y.dim() == 1:
            loss = self.loss_fn(out.t().unsqueeze(0), y.unsqueeze(0))  # see FEW_CLASSES
        else:
            loss = self.loss_fn(out, y)
        if loss.dim() != 0:
            raise LossShapeError(
                f"loss_fn returned shape {tuple(loss.shape)}; it must return the mean loss "
                "over the batch as a scalar (reduction='mean')"
            )
        return loss

    def _metrics(self, out: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and accuracy (0 unless classification) of one point's outputs."""
        loss = self._loss(out, y)
        if not self.classification:
            return loss, torch.zeros((), dtype=loss.dtype, device=loss.device)
        return loss, _fraction_correct(_predictions(out), y)

    def evaluate_loop(self, coeffs: torch.Tensor) -> PointValues:
        """One forward per point on the private model copy.

        Per point and batch only the loss and the predicted classes are computed; each
        batch's accuracies are compared with the targets once per chunk, for all points.
        """
        coeffs = self._as_coeffs(coeffs)
        losses: list[torch.Tensor] = []
        predictions: list[torch.Tensor] = []
        cached = self.cached_input_layer()
        with torch.inference_mode(), (
            cached.standing_in(self.model) if cached else contextlib.nullcontext()
        ):
            for c in coeffs.unbind(0):
                torch.addmv(self.theta, self.directions.T, c, out=self._flat)
                for b, (x, y) in enumerate(self.batches.batches):
                    if cached:
                        cached.at(c, b)
                    out = self.model(x)
                    losses.append(self._loss(out, y))
                    if self.classification:
                        predictions.append(_predictions(out))
            n_batches = len(self.batches.batches)
            loss = torch.stack(losses).view(len(coeffs), n_batches)
            acc = None
            if self.classification:  # [points, batches]
                acc = torch.stack(
                    [_fraction_correct(torch.stack(predictions[b::n_batches]), y)
                     for b, (_x, y) in enumerate(self.batches.batches)],
                    dim=1,
                )
        return self._finish(loss, acc, self.batches)

    def cached_input_layer(self) -> CachedInputLayer | None:
        """The loop's stand-in for the layer that reads the data, built on first use;
        ``None`` when the model has no such layer worth caching or it would not fit."""
        if self._input_layer_tried:
            return self._input_layer
        self._input_layer_tried = True
        inputs = [x for x, _ in self.batches.batches]
        name = find_input_layer(self.model, inputs[0][:2])
        if name is None:
            return None
        module = self.model.get_submodule(name)
        own = [f"{name}.{p}" for p, _ in module.named_parameters(recurse=False)]
        if not own or not set(own) <= set(self.layout.names):  # shared (tied) weights
            return None
        with torch.inference_mode():
            per_sample = module(inputs[0][:1]).numel()
        size = self.theta.element_size() * (1 + self.n_directions) * per_sample * self.batches.n_samples
        if size > INPUT_CACHE_BYTES:
            return None
        self._input_layer = CachedInputLayer.build(
            module, name, self.layout, self.theta, self.directions, inputs
        )
        return self._input_layer

    def evaluate_batched(self, coeffs: torch.Tensor, rows: int | None = None) -> PointValues:
        """All points of ``coeffs`` through one vmapped forward per data batch."""
        coeffs = self._as_coeffs(coeffs)
        batches = self.batches if rows is None else self.batches.rebatch(rows)

        def forward(params, x):
            return functional_call(self.model, (params, self.buffers), (x,))

        vmapped = torch.vmap(forward, in_dims=(0, None))
        with torch.inference_mode():
            params = self.layout.split(self.points(coeffs))
            per_batch = [self._batched_metrics(vmapped(params, x), y) for x, y in batches.batches]
            loss = torch.stack([loss for loss, _acc in per_batch], dim=1)  # [points, batches]
            acc = torch.stack([acc for _loss, acc in per_batch], dim=1)
        return self._finish(loss, acc if self.classification else None, batches)

    def _batched_metrics(self, outs: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and accuracy of each point's outputs ``outs[k]``.

        On CUDA the loss is vmapped too (thousands of points per chunk). CPU chunks hold
        a few points, so one loss call per point costs little and avoids vmap's one-off
        set-up of the loss decomposition (about 0.4 s: it imports sympy), which would
        otherwise delay the first picture.
        """
        if self.device.type == "cuda":
            return torch.vmap(self._metrics, in_dims=(0, None))(outs, y)
        losses, accs = zip(*(self._metrics(out, y) for out in outs.unbind(0)))
        return torch.stack(losses), torch.stack(accs)

    def evaluate(self, coeffs, strategy: Literal["loop", "batched"] = "loop") -> PointValues:
        """Evaluate with one strategy; ``batched`` falls back to ``loop`` (with a warning)
        when ``torch.vmap`` cannot handle the model."""
        if strategy == "loop" or self.batched_failed:
            return self.evaluate_loop(coeffs)
        if strategy != "batched":
            raise ValueError(f"strategy must be 'loop' or 'batched', got {strategy!r}")
        try:
            return self.evaluate_batched(coeffs, rows=self.chunk_plan()[1])
        except LossShapeError:
            raise  # the user's loss is wrong, not vmap: no fallback
        except (RuntimeError, NotImplementedError, TypeError, ValueError) as err:
            self.batched_failed = f"{type(err).__name__}: {err}"
            warnings.warn(
                f"{type(self.model).__name__} cannot be evaluated with torch.vmap "
                f"({self.batched_failed.splitlines()[0]}); falling back to the per-point loop",
                RuntimeWarning,
                stacklevel=2,
            )
            return self.evaluate_loop(coeffs)

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

    def _finish(
        self, loss: torch.Tensor, acc: torch.Tensor | None, batches: Batches
    ) -> PointValues:
        """Sample-weighted mean over the batches of each point's loss and accuracy
        (``[points, batches]`` each): one float64 matrix-vector product and one transfer
        to the host per chunk, whatever the number of points and batches."""
        sizes = torch.tensor([len(x) for x, _ in batches.batches], dtype=torch.float64)
        weights = (sizes / sizes.sum()).to(self.device)
        values = torch.stack([loss] if acc is None else [loss, acc]).double()
        means = (values @ weights).cpu().numpy()
        means[0][~np.isfinite(means[0])] = np.nan
        return PointValues(means[0], None if acc is None else means[1])


def _predictions(out: torch.Tensor) -> torch.Tensor:
    """Predicted classes of logits ``[..., C]``: the first largest, as ``argmax`` picks
    (``max(-1).indices`` is the same and, for few classes, twice as fast on the CPU)."""
    return out.max(-1).indices


def _fraction_correct(predictions: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Share of ``predictions[..., i] == y[i]`` over the last dimension."""
    return (predictions == y).sum(-1) / y.shape[-1]
