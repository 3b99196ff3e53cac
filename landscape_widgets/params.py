"""Flatten a module's parameters into one vector and back, keeping names and shapes.

Buffers (BatchNorm running statistics) are never part of the vector: they are carried
along untouched by every evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ParamLayout:
    """Names and shapes of a module's parameters, in ``named_parameters()`` order.

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
    def offsets(self) -> tuple[int, ...]:
        """Start offset of each tensor in the flat vector."""
        out, pos = [], 0
        for n in self.numels:
            out.append(pos)
            pos += n
        return tuple(out)

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
                f"model has {self.size} parameters"
            )
        lead = vector.shape[:-1]
        pieces = torch.split(vector, self.numels, dim=-1)
        return {n: p.reshape(*lead, *s) for n, p, s in zip(self.names, pieces, self.shapes)}


def param_layout(model: nn.Module) -> ParamLayout:
    """Layout of ``model``'s parameters.

    Raises
    ------
    ValueError
        If the model has no parameters (there is no landscape to look at).
    """
    named = list(model.named_parameters())
    if not named:
        raise ValueError(
            f"{type(model).__name__} has no parameters: a loss landscape needs a model "
            "with at least one nn.Parameter"
        )
    return ParamLayout(tuple(n for n, _ in named), tuple(p.shape for _, p in named))


def flatten_params(model: nn.Module) -> torch.Tensor:
    """All parameters of ``model`` as one detached 1-D float tensor (a copy)."""
    param_layout(model)  # validates
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).clone()


def unflatten_params(vector: torch.Tensor, layout: ParamLayout) -> dict[str, torch.Tensor]:
    """Split a flat vector into a ``{name: tensor}`` dict shaped like ``layout``."""
    if vector.dim() != 1:
        raise ValueError(f"expected a 1-D parameter vector, got shape {tuple(vector.shape)}")
    return layout.split(vector)


def load_flat_params_(model: nn.Module, vector: torch.Tensor) -> nn.Module:
    """Write a flat vector into ``model``'s parameters in place; returns the model."""
    layout = param_layout(model)
    with torch.no_grad():
        for p, v in zip(model.parameters(), unflatten_params(vector, layout).values()):
            p.copy_(v)
    return model


def bind_params_to_flat_(model: nn.Module) -> torch.Tensor:
    """Make every parameter of ``model`` a view into one flat buffer and return it.

    Writing into the returned vector then sets all parameters at once, with no copies
    per tensor: the per-point evaluation loop uses this on its private model copy.
    """
    flat = flatten_params(model)
    for p, view in zip(model.parameters(), unflatten_params(flat, param_layout(model)).values()):
        p.data = view
    return flat


def check_same_architecture(model0: nn.Module, model1: nn.Module) -> ParamLayout:
    """Layout shared by two models, or a ValueError naming the first difference."""
    a, b = param_layout(model0), param_layout(model1)
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
