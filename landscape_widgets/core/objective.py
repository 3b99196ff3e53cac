"""The objective: the loss (and metrics) of a model on fixed data at a parameter point.

Every computation of the package (both evaluation strategies, Hessian-vector products,
curve and tunnel training, sharpness, trajectories, comparisons, the explorer, the CLI
and the Dask workers) goes through one :class:`Objective`. It holds

* a private eval-mode copy of the model on the evaluation device (the caller's model is
  never moved or modified; the copy keeps its module objects, so code that reads a
  layer's weight directly, such as tied embeddings, works as in the original);
* which parameters move (``params=``), their flat layout and their values ``theta``;
* the data (:class:`~landscape_widgets.core.data.DataSource`, resident or streamed);
* how a batch goes through the model and becomes a loss and metrics:

  - the forward: ``model(x)`` for an ``(x, y)`` pair (``model(*inputs)`` for a longer
    tuple, whose last element is the targets), ``model(**batch)`` for a dict, or a
    user ``forward(model, batch)``;
  - the loss: ``loss_fn(outputs, targets)`` (targets: a tuple's last element, a dict's
    ``"labels"``), ``loss_fn(outputs, batch)`` with ``pass_batch=True``, or, without a
    ``loss_fn``, the model's own ``outputs.loss`` (the Hugging Face convention);
  - metrics: accuracy when ``[B, C]`` logits (a tensor output or ``outputs.logits``)
    and integer labels ``[B]`` can be found, and user ``metrics={name: fn}`` called
    like the loss.

Per point, every value is the mean over the batches weighted by their sizes.
"""

from __future__ import annotations

import copy
import functools
import inspect
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .data import Batch, DataSource, prepare_data
from .params import ParamSpec, bind_params_to_flat_, describe_params, flatten_params, model_device_dtype, param_layout

LossFn = Callable[[Any, Any], torch.Tensor]
Forward = Callable[[nn.Module, Batch], Any]
Task = Literal["auto", "classification", "regression"]

#: On some CPUs torch's ``log_softmax`` over a last dimension of fewer than this many
#: classes runs a scalar loop (measured on an earlier CI machine: 140 us for 1797 x 10
#: logits, 4x the time of the same logits viewed as ``[1, classes, samples]``, which gives
#: the same value); on others (an AMD EPYC: 68 us against 89 us) the plain layout is the
#: faster. So cross-entropy over few classes times both layouts once per batch size and
#: keeps the faster.
FEW_CLASSES = 16


class LossShapeError(ValueError):
    """The loss is not a scalar batch mean."""


def resolve_device(device: str | torch.device | None, model: nn.Module | None = None) -> torch.device:
    """The evaluation device: ``None`` means the model's own device; ``"auto"`` CUDA when
    available, else the CPU.

    Raises
    ------
    ValueError
        For CUDA without a CUDA device, or a model on the ``meta`` device (it has no values).
    """
    if device is None and model is not None:
        device = model_device_dtype(model)[0]
        if device.type == "meta":
            raise ValueError("the model is on the meta device and has no values to evaluate: load its weights first")
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but torch sees no CUDA device")
    return device


def _is_cross_entropy(loss_fn) -> bool:
    """``F.cross_entropy`` or an ``nn.CrossEntropyLoss`` (not a subclass): losses whose
    value is the same for logits ``[B, C]`` and their view ``[1, C, B]``."""
    return loss_fn is F.cross_entropy or type(loss_fn) is nn.CrossEntropyLoss


def logits_of(outputs) -> torch.Tensor | None:
    """The logits in a model's outputs: a tensor output, or ``outputs.logits`` / ``["logits"]``."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    value = outputs.get("logits") if isinstance(outputs, Mapping) else getattr(outputs, "logits", None)
    return value if isinstance(value, torch.Tensor) else None


def model_loss(outputs) -> torch.Tensor:
    """``outputs.loss`` (or ``outputs["loss"]``), the loss a Hugging Face model computes."""
    value = outputs.get("loss") if isinstance(outputs, Mapping) else getattr(outputs, "loss", None)
    if not isinstance(value, torch.Tensor):
        raise ValueError(
            f"no loss_fn was given and the model's outputs ({type(outputs).__name__}) have no .loss: "
            "pass loss_fn=..., or batches with 'labels' to a model that computes its own loss"
        )
    return value


def predictions(logits: torch.Tensor) -> torch.Tensor:
    """Predicted classes of logits ``[..., C]``: the first largest, as ``argmax`` picks
    (``max(-1).indices`` is the same and, for few classes, twice as fast on the CPU)."""
    return logits.max(-1).indices


def fraction_correct(predicted: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Share of ``predicted[..., i] == labels[i]`` over the last dimension."""
    return (predicted == labels).sum(-1) / labels.shape[-1]


def describe_batch(batch) -> str:
    """A batch's structure and tensor shapes in words, e.g. ``"inputs [2, 4], targets [2]"``."""
    def shape(x) -> str:
        return str(list(x.shape)) if hasattr(x, "shape") else type(x).__name__

    if isinstance(batch, dict):
        return ", ".join(f"{key} {shape(value)}" for key, value in batch.items())
    if isinstance(batch, (tuple, list)):
        if len(batch) == 2:
            return f"inputs {shape(batch[0])}, targets {shape(batch[1])}"
        return "a tuple of " + ", ".join(shape(x) for x in batch)
    return shape(batch) if not hasattr(batch, "logits") else f"an object with logits {shape(batch.logits)}"


def _add_note(err: BaseException, note: str) -> None:
    """Say where ``err`` arose, keeping its type and message (Python 3.11's notes; a no-op before)."""
    if hasattr(err, "add_note"):
        err.add_note(note)


def call_model(model: nn.Module, batch: Batch, forward: Forward | None = None):
    """``forward(model, batch)``, or the default call: ``model(**batch)`` for a dict,
    ``model(*inputs)`` for a tuple ``(*inputs, targets)``, ``model(x)`` for ``(x,)`` or a tensor."""
    if forward is not None:
        return forward(model, batch)
    if isinstance(batch, dict):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch[:-1]) if len(batch) > 1 else model(batch[0])
    return model(batch)


class _BatchForward(nn.Module):
    """Holds the model as a submodule so that ``functional_call`` runs :func:`call_model`
    on a whole batch (the model's parameters are then named ``model.<name>``)."""

    def __init__(self, model: nn.Module, forward: Forward | None) -> None:
        super().__init__()
        self.model = model
        self.user_forward = forward

    def forward(self, batch):
        return call_model(self.model, batch, self.user_forward)


class Objective:
    """Loss and metrics of a model on fixed data, as a function of its moved parameters.

    Parameters
    ----------
    model : nn.Module
        The network. A private eval-mode copy is used (BatchNorm uses its running
        statistics, dropout is off); the caller's model is never moved or modified.
    loss_fn : callable, optional
        ``loss_fn(outputs, targets)`` returning the *mean* loss over the batch, e.g.
        ``F.cross_entropy``; ``loss_fn(outputs, batch)`` with ``pass_batch``; ``None``:
        the model's own ``outputs.loss``.
    data : one batch or an iterable of batches
        See :func:`~landscape_widgets.core.data.prepare_data`.
    params : optional
        Which parameters move (see :func:`~landscape_widgets.core.params.select_params`):
        ``None`` all, ``"trainable"``, globs, a predicate or modules. The rest stay fixed.
    forward : callable, optional
        ``forward(model, batch) -> outputs`` instead of the default call.
    pass_batch : bool
        Give ``loss_fn`` and ``metrics`` the whole batch instead of the targets.
    metrics : mapping of name -> callable, optional
        Extra per-point values, each a batch mean, called like ``loss_fn``.
    accuracy : bool
        Report accuracy when the task is classification.
    task : {"auto", "classification", "regression"}
        ``auto``: classification when ``[B, C]`` logits and integer labels are found.
    device : str or torch.device, optional
        Default: the model's device.
    dtype : torch.dtype, optional
        Evaluation dtype (e.g. ``torch.bfloat16`` on a GPU); default the model's. Theta
        and the directions stay in the model's dtype.
    batch_size, max_batches, max_samples, data_budget
        How the data is read (see :func:`~landscape_widgets.core.data.prepare_data`).

    Attributes
    ----------
    model : nn.Module
        The private copy; its moved parameters are views of :attr:`flat`.
    layout, theta, device, dtype, data, metric_names, classification
    lock : threading.RLock
        Held while a computation uses the private copy (so two analyses of one
        objective in two threads take turns).
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn | None = None,
        data=None,
        *,
        params: ParamSpec = None,
        forward: Forward | None = None,
        pass_batch: bool = False,
        metrics: Mapping[str, LossFn] | None = None,
        accuracy: bool = True,
        task: Task = "auto",
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        batch_size: int | None = None,
        max_batches: int | None = None,
        max_samples: int | None = None,
        data_budget: int | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got a {type(model).__name__} (wrap a function in an "
                            "nn.Module whose parameters it uses)")
        if data is None:
            raise TypeError("give the data the loss is computed on (an (X, y) pair, a dict or a DataLoader)")
        if isinstance(dtype, str):
            named = getattr(torch, dtype, None)
            if not isinstance(named, torch.dtype):
                raise ValueError(f"dtype {dtype!r} is not a torch dtype; give e.g. torch.bfloat16 or 'float64'")
            dtype = named
        if task not in ("auto", "classification", "regression"):
            raise ValueError(f"task must be auto, classification or regression, got {task!r}")
        if loss_fn is not None and not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
        self.metrics = dict(metrics or {})
        reserved = {"loss", "accuracy", "done"} & set(self.metrics)
        if reserved:
            raise ValueError(f"metric names {sorted(reserved)} are reserved; choose other names")
        self.device = resolve_device(device, model)
        self.model_name = type(model).__name__
        self.layout = param_layout(model, params)
        self.params = describe_params(params)
        self.n_params_total = sum(p.numel() for p in model.parameters())
        point_dtype = model_device_dtype(model)[1]
        self.theta = flatten_params(model, self.layout).to(self.device, point_dtype)
        self.dtype = dtype or point_dtype
        self.model = copy.deepcopy(model).to(self.device).eval()
        if dtype is not None:
            self.model.to(dtype)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.flat = bind_params_to_flat_(self.model, self.layout)
        self.loss_fn, self.forward, self.pass_batch = loss_fn, forward, pass_batch
        #: Cross-entropy layout per batch size: True for ``[1, C, B]`` (see FEW_CLASSES).
        self._classes_first: dict[int, bool] | None = {} if _is_cross_entropy(loss_fn) else None
        self._functional_module = _BatchForward(self.model, forward)
        self.data: DataSource = prepare_data(
            data, self.device, batch_size=batch_size, max_batches=max_batches, max_samples=max_samples,
            budget=data_budget, dtype=dtype,
        )
        self.lock = threading.RLock()
        self._train_buffers: dict[str, torch.Tensor] | None = None
        with torch.inference_mode():
            self.set_point(self.theta)
            probe = self.data.probe()
            try:
                outputs = self.outputs(probe)
            except Exception as err:
                _add_note(err, f"landscape-widgets: raised by the model on the first samples of the data "
                               f"({describe_batch(probe)}, at theta)")
                raise
            self.tensor_outputs = isinstance(outputs, torch.Tensor)
            self.classification = accuracy and self._detect_classification(task, outputs, probe)
            if self.classification and (self.labels(probe) is None or logits_of(outputs) is None):
                raise ValueError(
                    "accuracy needs [B, C] logits (a tensor output or outputs.logits) and integer labels "
                    "(a tuple's last element or a dict's 'labels'); set accuracy=False or task='regression'"
                )
            try:
                self.loss(outputs, probe)  # a wrong loss fails here, with its message
            except Exception as err:
                if not isinstance(err, LossShapeError):  # that one says what to fix already
                    _add_note(err, f"landscape-widgets: raised by loss_fn on the model's outputs for the first "
                                   f"samples of the data ({describe_batch(probe)}; outputs {describe_batch(outputs)})")
                raise
        self.metric_names: tuple[str, ...] = (
            ("loss",) + (("accuracy",) if self.classification else ()) + tuple(self.metrics)
        )

    # -- one batch ----------------------------------------------------------------------
    def set_point(self, point: torch.Tensor) -> None:
        """Write a flat point (in the model's dtype) into the private copy."""
        self.flat.copy_(point)

    def outputs(self, batch: Batch):
        """The model's outputs on ``batch`` (the private copy, at the current point)."""
        return call_model(self.model, batch, self.forward)

    def functional_outputs(self, params: dict[str, torch.Tensor], batch: Batch):
        """The outputs with the moved parameters replaced by ``params`` (``{name: tensor}``),
        through ``torch.func.functional_call`` (differentiable, vmappable)."""
        return functional_call(self._functional_module, {f"model.{k}": v for k, v in params.items()}, (batch,))

    @staticmethod
    def targets(batch: Batch):
        """A tuple's last element, a dict's ``"labels"``, else None."""
        if isinstance(batch, dict):
            return batch.get("labels")
        if isinstance(batch, (tuple, list)) and len(batch) > 1:
            return batch[-1]
        return None

    def _second(self, batch: Batch):
        if self.pass_batch:
            return batch
        y = self.targets(batch)
        if y is None:
            raise ValueError(
                "the batch has no targets for loss_fn(outputs, targets): give (inputs, targets) pairs, "
                "dicts with 'labels', or pass_batch=True to call loss_fn(outputs, batch)"
            )
        return y

    def loss(self, outputs, batch: Batch) -> torch.Tensor:
        """The batch-mean loss of ``outputs`` (a scalar tensor)."""
        if self.loss_fn is None:
            loss = model_loss(outputs)
        else:
            y = self._second(batch)
            if (
                self._classes_first is not None and isinstance(outputs, torch.Tensor)
                and outputs.device.type == "cpu" and outputs.dim() == 2 and outputs.shape[1] < FEW_CLASSES
                and y.dim() == 1 and self._faster_classes_first(outputs, y)
            ):
                loss = self.loss_fn(outputs.t().unsqueeze(0), y.unsqueeze(0))  # see FEW_CLASSES
            else:
                try:
                    loss = self.loss_fn(outputs, y)
                except TypeError as err:
                    if isinstance(outputs, torch.Tensor):
                        raise
                    raise TypeError(
                        "loss_fn(outputs, targets) failed on the model's outputs "
                        f"(of type {type(outputs).__name__}): {err}. "
                        "Pass loss_fn=None to use outputs.loss, a loss_fn that takes these outputs (e.g. of "
                        "outputs.logits), or forward=lambda model, batch: model(**batch).logits") from err
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise LossShapeError(
                f"the loss is {shape}; it must be the mean loss over the batch as a scalar tensor "
                "(reduction='mean')"
            )
        return loss

    def _faster_classes_first(self, logits: torch.Tensor, y: torch.Tensor) -> bool:
        """Whether cross-entropy of these logits is faster viewed as ``[1, C, B]`` (timed
        once per batch size, best of a few calls of each layout)."""
        rows = len(logits)
        if rows not in self._classes_first:
            with torch.no_grad():
                z = logits.detach()
                calls = {False: lambda: self.loss_fn(z, y),
                         True: lambda: self.loss_fn(z.t().unsqueeze(0), y.unsqueeze(0))}
                best = {}
                for layout, call in calls.items():
                    call()
                    times = []
                    for _ in range(5):
                        start = time.perf_counter()
                        call()
                        times.append(time.perf_counter() - start)
                    best[layout] = min(times)
            self._classes_first[rows] = best[True] < best[False]
        return self._classes_first[rows]

    def labels(self, batch: Batch) -> torch.Tensor | None:
        """Integer class labels of a batch (for accuracy), or None."""
        y = self.targets(batch)
        if isinstance(y, torch.Tensor) and y.dim() == 1 and not (y.is_floating_point() or y.is_complex()):
            return y
        return None

    def point_values(self, outputs, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor]]:
        """Loss, predicted classes (classification) and user metrics of one point's outputs."""
        loss = self.loss(outputs, batch)
        pred = predictions(logits_of(outputs)) if self.classification else None
        return loss, pred, self.metric_values(outputs, batch)

    def metric_values(self, outputs, batch: Batch) -> list[torch.Tensor]:
        """The user metrics of one point's outputs on a batch (scalars)."""
        extra = []
        for name, fn in self.metrics.items():
            value = fn(outputs, batch if self.pass_batch else self.targets(batch))
            if not isinstance(value, torch.Tensor) or value.dim() != 0:
                raise LossShapeError(f"metric {name!r} must return a scalar tensor (a batch mean)")
            extra.append(value)
        return extra

    def group_rows(self, outputs: torch.Tensor, spans: list[tuple[int, int, Batch]],
                   labels: torch.Tensor | None, group_ids: torch.Tensor) -> torch.Tensor:
        """:attr:`metric_names` values ``[values, groups]`` (float64) of one point's
        ``outputs`` over batches laid end to end: group ``g`` is rows ``a:b`` of ``spans[g] =
        (a, b, batch)``. Each group's loss and metrics on its rows; the accuracies from one
        comparison of all rows with ``labels``, summed by ``group_ids`` (each row's group);
        so are the losses where the loss is a plain cross-entropy (:meth:`_row_losses`)."""
        per_row = self._row_losses(outputs, labels)
        if per_row is None:
            rows = [torch.stack([self.loss(outputs[a:b], batch) for a, b, batch in spans]).double()]
        else:
            rows = [torch.bincount(group_ids, weights=per_row.double(), minlength=len(spans))
                    / torch.bincount(group_ids, minlength=len(spans))]
        if self.classification:
            correct = (predictions(logits_of(outputs)) == labels).double()
            rows.append(torch.bincount(group_ids, weights=correct, minlength=len(spans))
                        / torch.bincount(group_ids, minlength=len(spans)))
        extra = [self.metric_values(outputs[a:b], batch) for a, b, batch in spans]
        return torch.stack(rows + [torch.stack(col).double() for col in zip(*extra)])

    def _row_losses(self, outputs: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
        """Each row's loss, where the loss of a batch is their mean: ``F.cross_entropy`` or
        an ``nn.CrossEntropyLoss`` without class weights, of ``[B, C]`` logits and class
        labels none of which is ignored; else None."""
        fn = self.loss_fn
        if labels is None or not _is_cross_entropy(fn) or outputs.dim() != 2:
            return None
        if fn is F.cross_entropy:
            ignore, smoothing = -100, 0.0
        elif fn.weight is None and fn.reduction == "mean":
            ignore, smoothing = fn.ignore_index, fn.label_smoothing
        else:
            return None
        if (labels == ignore).any():
            return None
        return F.cross_entropy(outputs, labels, reduction="none", ignore_index=ignore, label_smoothing=smoothing)

    def value_rows(self, loss: torch.Tensor, pred: torch.Tensor | None, extra: list[torch.Tensor],
                   batch: Batch) -> torch.Tensor:
        """:attr:`metric_names` values stacked along a first dimension (float64): the loss,
        the accuracy of ``pred`` (classification) and the user metrics, for one point
        (scalars) or for several points of one batch (``[points]`` each)."""
        rows = [loss.double()]
        if self.classification:
            rows.append(fraction_correct(pred, self.labels(batch)).double())
        return torch.stack(rows + [e.double() for e in extra])

    def _detect_classification(self, task: str, outputs, batch: Batch) -> bool:
        if task != "auto":
            return task == "classification"
        logits, y = logits_of(outputs), self.labels(batch)
        return (
            logits is not None and y is not None and logits.dim() == 2 and logits.shape[1] > 1
            and len(logits) == len(y)
        )

    # -- whole data -----------------------------------------------------------------------
    def point_loss(self, point: torch.Tensor, batch: Batch, train: bool = False) -> torch.Tensor:
        """Batch-mean loss at the flat ``point`` (differentiable in ``point``).

        ``train=True`` runs the model in train mode (batch statistics in BatchNorm,
        dropout on), as curve and tunnel training do; the running statistics it updates
        are a private copy, so the objective's own buffers never change. Hold
        :attr:`lock` around it when other threads may use the objective.
        """
        params = self.layout.split(point)
        if not train:
            return self.loss(self.functional_outputs(params, batch), batch)
        if self._train_buffers is None:
            self._train_buffers = {n: b.clone() for n, b in self.model.named_buffers()}
        self.model.train()
        try:
            return self.loss(self.functional_outputs({**params, **self._train_buffers}, batch), batch)
        finally:
            self.model.eval()

    def gradient(self, point: torch.Tensor | None = None) -> tuple[float, torch.Tensor]:
        """The mean loss over all the data at ``point`` (default theta) and its gradient
        with respect to the flat moved parameters (sample-weighted over the batches,
        like the evaluated loss; eval mode)."""
        point = self.as_point(point)
        weights = batch_weights(self.data.sizes, self.device).tolist()
        total, grad = 0.0, torch.zeros_like(point)
        with self.lock:
            for w, batch in zip(weights, self.data):
                p = point.clone().requires_grad_(True)
                loss = self.point_loss(p, batch)
                (g,) = torch.autograd.grad(loss, p)
                total += w * float(loss.detach())
                grad += w * g
        return total, grad

    def as_point(self, point: torch.Tensor | None) -> torch.Tensor:
        """``point`` (default theta) as a flat vector on the device, in theta's dtype."""
        if point is None:
            return self.theta
        if point.dim() != 1 or point.numel() != self.layout.size:
            raise ValueError(f"a point has shape {tuple(point.shape)}; expected ({self.layout.size},)")
        return point.detach().to(self.device, self.theta.dtype)

    def attrs(self) -> dict:
        """What a result records about the objective."""
        return {
            "model": self.model_name,
            "loss_fn": loss_name(self.loss_fn),
            "params": self.params,
            "n_params": self.layout.size,
            "n_params_fixed": self.n_params_total - self.layout.size,
            "n_samples": self.data.n_samples,
            "data": "resident" if self.data.resident else "streamed",
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
        }


def loss_name(loss_fn) -> str:
    """How a result names its loss: the function's or the loss module's name
    (``"partial(cross_entropy)"`` for a ``functools.partial``), ``"outputs.loss"`` for the
    model's own."""
    if loss_fn is None:
        return "outputs.loss"
    if isinstance(loss_fn, functools.partial):
        return f"partial({loss_name(loss_fn.func)})"
    return getattr(loss_fn, "__qualname__", None) or type(loss_fn).__qualname__


def as_objective(model, loss_fn=None, data=None, **kwargs) -> Objective:
    """``model`` itself when it is an :class:`Objective` (then nothing else may be given),
    else ``Objective(model, loss_fn, data, **kwargs)``."""
    if isinstance(model, Objective):
        defaults = {k: p.default for k, p in inspect.signature(Objective).parameters.items()}
        given = [k for k, v in kwargs.items() if k not in defaults or v is not defaults[k]]
        given += [k for k, v in (("loss_fn", loss_fn), ("data", data)) if v is not None]
        if given:
            raise TypeError(f"an Objective already holds its loss, data and options; do not also pass {given}")
        return model
    return Objective(model, loss_fn, data, **kwargs)


def batch_weights(sizes, device: torch.device) -> torch.Tensor:
    """Each batch's share of the samples (float64, on ``device``)."""
    w = torch.tensor(sizes, dtype=torch.float64)
    return (w / w.sum()).to(device)


def mean_over_batches(values: torch.Tensor, weights: torch.Tensor) -> np.ndarray:
    """``[..., batches]`` values averaged with the batch weights, on the host (float64);
    non-finite results become NaN."""
    means = (values.double() @ weights).cpu().numpy()
    means[~np.isfinite(means)] = np.nan
    return means
