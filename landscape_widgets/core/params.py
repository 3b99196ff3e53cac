"""Which parameters a landscape moves, and their flat layout.

A landscape moves a *subset* of a model's parameters (all of them by default; LoRA
adapters, one layer, ...) and keeps the rest fixed. :func:`select_params` turns the
user's choice into parameter names; :class:`ParamLayout` lays those tensors end to end
in one flat vector. Buffers (BatchNorm running statistics) are never part of the vector:
they are carried along untouched by every evaluation.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

#: What ``params=`` accepts: ``None`` (all), ``"trainable"``, a name glob or a list of
#: them, a predicate ``(name, parameter) -> bool``, a module or a list of modules.
ParamSpec = None | str | Sequence[str] | Callable[[str, nn.Parameter], bool] | nn.Module | Sequence[nn.Module]


@dataclass(frozen=True)
class ParamLayout:
    """Names and shapes of the moved parameters, in ``named_parameters()`` order.

    Attributes
    ----------
    names : tuple of str
        Parameter names, e.g. ``"0.weight"``.
    shapes : tuple of torch.Size
        The shape of each parameter tensor.
    """

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]

    @property
    def numels(self) -> tuple[int, ...]:
        """Number of elements of each parameter tensor."""
        return tuple(int(torch.Size(s).numel()) for s in self.shapes)

    @property
    def size(self) -> int:
        """Total number of scalar parameters."""
        return sum(self.numels)

    def split(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """Views of ``vector`` (last dimension = ``size``) shaped like each parameter.

        Leading dimensions are kept, so a ``[K, size]`` matrix of K parameter vectors
        gives tensors of shape ``[K, *shape]`` (what ``torch.vmap`` expects).
        """
        if vector.shape[-1] != self.size:
            raise ValueError(
                f"vector has {vector.shape[-1]} entries in its last dimension but the "
                f"landscape moves {self.size} parameters"
            )
        lead = vector.shape[:-1]
        pieces = torch.split(vector, self.numels, dim=-1)
        return {n: p.reshape(*lead, *s) for n, p, s in zip(self.names, pieces, self.shapes)}


def select_params(model: nn.Module, params: ParamSpec = None) -> tuple[str, ...]:
    """Names of the parameters of ``model`` that ``params`` selects.

    Parameters
    ----------
    model : nn.Module
    params : None, str, sequence of str, callable, nn.Module or sequence of modules
        ``None`` or ``"all"``: every parameter. ``"trainable"``: those with ``requires_grad`` (e.g.
        the LoRA adapters of a ``peft`` model). A glob such as ``"encoder.layer.1.*"``
        or a list of globs (matched with :func:`fnmatch.fnmatchcase`). A predicate
        ``params(name, parameter) -> bool``. A submodule, or a list of them: their
        parameters.

    Returns
    -------
    tuple of str
        In ``model.named_parameters()`` order (tied parameters appear once).

    Raises
    ------
    ValueError
        If the model has no parameters or the selection matches none.
    """
    named = list(model.named_parameters())
    if not named:
        raise ValueError(
            f"{type(model).__name__} has no parameters: a loss landscape needs a model "
            "with at least one nn.Parameter"
        )
    if params is None or (isinstance(params, str) and params == "all"):
        chosen = [n for n, _ in named]
    elif isinstance(params, str) and params == "trainable":
        chosen = [n for n, p in named if p.requires_grad]
    elif isinstance(params, nn.Module) or (
        isinstance(params, (list, tuple)) and params and all(isinstance(m, nn.Module) for m in params)
    ):
        modules = [params] if isinstance(params, nn.Module) else list(params)
        ids = {id(p) for m in modules for p in m.parameters()}
        chosen = [n for n, p in named if id(p) in ids]
    elif isinstance(params, str) or (
        isinstance(params, (list, tuple)) and all(isinstance(g, str) for g in params)
    ):
        globs = [params] if isinstance(params, str) else list(params)
        chosen = [n for n, _ in named if any(fnmatch.fnmatchcase(n, g) for g in globs)]
    elif callable(params):
        chosen = [n for n, p in named if params(n, p)]
    else:
        raise TypeError(
            "params must be None or 'all', 'trainable', a name glob or a list of globs, a predicate "
            f"(name, parameter) -> bool, or modules; got {type(params).__name__}"
        )
    if not chosen:
        raise ValueError(
            f"params={describe_params(params)} selects none of the {len(named)} parameters of "
            f"{type(model).__name__} (names look like {[n for n, _ in named[:3]]})"
        )
    return tuple(chosen)


def describe_params(params: ParamSpec) -> str:
    """A short, stable description of a selection, for attributes and messages."""
    if params is None:
        return "all"
    if isinstance(params, str):
        return params
    if isinstance(params, nn.Module):
        return f"module {type(params).__name__}"
    if isinstance(params, (list, tuple)):
        return "[" + ", ".join(describe_params(p) for p in params) + "]"
    return f"predicate {getattr(params, '__qualname__', type(params).__qualname__)}"


def param_layout(model: nn.Module, params: ParamSpec = None) -> ParamLayout:
    """Layout of the parameters of ``model`` that ``params`` selects (default all; a
    layout is returned as it is)."""
    if isinstance(params, ParamLayout):
        return params
    names = select_params(model, params)
    table = dict(model.named_parameters())
    return ParamLayout(names, tuple(table[n].shape for n in names))


def flatten_params(model: nn.Module, layout: ParamLayout | None = None) -> torch.Tensor:
    """The parameters of ``layout`` (default: all) as one detached 1-D tensor (a copy),
    on the model's device and in its dtype."""
    layout = layout or param_layout(model)
    table = dict(model.named_parameters())
    return torch.cat([table[n].detach().reshape(-1) for n in layout.names]).clone()


def model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and dtype of a model's first parameter (where its computation lives)."""
    p = next(model.parameters(), None)
    if p is None:
        raise ValueError(f"{type(model).__name__} has no parameters")
    return p.device, p.dtype


def load_flat_params_(model: nn.Module, vector: torch.Tensor, layout: ParamLayout | None = None) -> nn.Module:
    """Write a flat vector into the parameters of ``layout`` (default: all), in place."""
    layout = layout or param_layout(model)
    table = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in layout.split(vector).items():
            table[name].copy_(value)
    return model


def model_at(model: nn.Module, vector: torch.Tensor, layout: ParamLayout | None = None) -> nn.Module:
    """A deep copy of ``model`` with the parameters of ``layout`` (default all) set to ``vector``."""
    import copy

    return load_flat_params_(copy.deepcopy(model), vector, layout)


def bind_params_to_flat_(model: nn.Module, layout: ParamLayout, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Make the parameters of ``layout`` views into one flat buffer and return it.

    Writing into the returned vector then sets all of them at once, with no copies per
    tensor: the per-point loop uses this on its private model copy. The module objects
    and their ``Parameter`` objects stay the same (only ``.data`` changes), so code that
    reads ``layer.weight`` directly (tied weights) sees the current point.
    """
    flat = flatten_params(model, layout)
    if dtype is not None:
        flat = flat.to(dtype)
    table = dict(model.named_parameters())
    for name, view in layout.split(flat).items():
        table[name].data = view
    return flat


def check_same_architecture(model1: nn.Module, model2: nn.Module) -> ParamLayout:
    """Layout shared by two models, or a ValueError naming the first difference."""
    a, b = param_layout(model1), param_layout(model2)
    if a.names != b.names:
        only_a = sorted(set(a.names) - set(b.names))
        only_b = sorted(set(b.names) - set(a.names))
        raise ValueError(
            "the two models have different parameters: "
            f"only in the first {only_a[:5]}, only in the second {only_b[:5]}"
            if only_a or only_b
            else "the two models list their parameters in a different order"
        )
    for name, sa, sb in zip(a.names, a.shapes, b.shapes):
        if sa != sb:
            raise ValueError(
                f"the two models differ in parameter {name!r}: shape {tuple(sa)} vs "
                f"{tuple(sb)}; both must have the same architecture"
            )
    return a
