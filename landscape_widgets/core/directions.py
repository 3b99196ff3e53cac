"""Directions in parameter space (Li et al. 2018; Goodfellow et al. 2015).

Every direction is a flat vector laid out like :func:`~landscape_widgets.core.params.flatten_params`
over the moved parameters (``params=``, all by default). Random directions are drawn on
the CPU from a seeded generator, one Gaussian tensor per moved parameter in
``named_parameters()`` order, so ``(seed, layout)`` always gives the same direction on
every device; they are then normalized on the model's device and in its dtype.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Literal

import torch
from torch import nn

from .params import ParamLayout, ParamSpec, check_same_architecture, flatten_params, param_layout

Normalization = Literal["none", "layer", "filter"]
BiasBN = Literal["ignore", "theta", "random"]

NORMALIZATIONS: tuple[str, ...] = ("none", "layer", "filter")
BIAS_BN_RULES: tuple[str, ...] = ("ignore", "theta", "random")
_EPS = 1e-10


def normalize_direction(
    direction: torch.Tensor,
    theta: torch.Tensor,
    layout: ParamLayout,
    normalization: Normalization = "filter",
    bias_bn: BiasBN = "ignore",
) -> torch.Tensor:
    """Rescale a flat direction tensor by tensor, as in Li et al. 2018.

    Parameters
    ----------
    direction, theta : torch.Tensor
        Flat vectors of the same length (the direction and the centre point).
    layout : ParamLayout
        How the flat vectors split into parameter tensors.
    normalization : {"none", "layer", "filter"}
        ``filter``: each slice along dim 0 (a conv filter, a linear layer's output
        neuron) is rescaled to the norm of the same slice of theta; ``layer``: each
        tensor is rescaled to the norm of theta's tensor; ``none``: unchanged.
    bias_bn : {"ignore", "theta", "random"}
        Rule for 1-D tensors (biases, BatchNorm weight and bias): ``ignore`` sets
        them to zero (the paper's default), ``theta`` uses the parameter's own values
        (the reference code's rule when they are included), ``random`` keeps the
        Gaussian values and normalizes them like the other tensors.

    Returns
    -------
    torch.Tensor
        A new flat direction.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    if bias_bn not in BIAS_BN_RULES:
        raise ValueError(f"bias_bn must be one of {BIAS_BN_RULES}, got {bias_bn!r}")
    if direction.shape != theta.shape or direction.dim() != 1:
        raise ValueError(
            f"direction {tuple(direction.shape)} and theta {tuple(theta.shape)} must be "
            "flat vectors of the same length"
        )
    out = direction.detach().clone()
    d_parts, t_parts = layout.split(out), layout.split(theta.detach())
    for name in layout.names:
        d, t = d_parts[name], t_parts[name]
        if d.dim() <= 1 and bias_bn == "ignore":
            d.zero_()
        elif d.dim() <= 1 and bias_bn == "theta":
            d.copy_(t)
        elif normalization == "layer":
            d.mul_(t.norm() / (d.norm() + _EPS))
        elif normalization == "filter":
            dims = tuple(range(1, d.dim()))
            if dims:
                d_norm = torch.linalg.vector_norm(d, dim=dims, keepdim=True)
                t_norm = torch.linalg.vector_norm(t, dim=dims, keepdim=True)
            else:  # a 1-D tensor: each element is its own "filter"
                d_norm, t_norm = d.abs(), t.abs()
            d.mul_(t_norm / (d_norm + _EPS))
    return out


def random_directions(
    model: nn.Module,
    n: int = 2,
    seed: int = 0,
    normalization: Normalization = "filter",
    bias_bn: BiasBN = "ignore",
    theta: torch.Tensor | None = None,
    orthogonalize: bool = False,
    params: ParamSpec = None,
) -> list[torch.Tensor]:
    """``n`` seeded Gaussian directions, normalized relative to theta.

    Parameters
    ----------
    model : nn.Module
        Gives the parameter layout, and theta when ``theta`` is None.
    n : int
        Number of directions (1 for a line, 2 for a plane, 3 for a volume).
    seed : int
        The directions depend only on ``seed`` and the parameter layout; direction ``i``
        of ``n`` is the same for every ``n > i``.
    normalization, bias_bn
        See :func:`normalize_direction`.
    theta : torch.Tensor, optional
        Flat centre point over the moved parameters; defaults to the model's current
        values of them.
    orthogonalize : bool
        Gram-Schmidt each direction against the previous ones (then restore its norm).
        The reference code does not (random directions are nearly orthogonal in high
        dimension), so the default is False.
    params : optional
        Which parameters move (see :func:`~landscape_widgets.core.params.select_params`);
        the directions cover those only.

    Returns
    -------
    list of torch.Tensor
        Flat directions on theta's device and in its dtype (the model's, by default).

    Raises
    ------
    ValueError
        If a direction comes out all zero (e.g. only 1-D parameters are moved and
        ``bias_bn="ignore"``, or filter normalization of parameters that are zero, such
        as freshly initialized LoRA ``B`` matrices).
    """
    if n < 1:
        raise ValueError(f"need at least one direction, got n={n}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    layout = param_layout(model, params)
    theta = flatten_params(model, layout) if theta is None else theta.detach()
    if theta.dim() != 1 or theta.numel() != layout.size:
        raise ValueError(f"theta has shape {tuple(theta.shape)}; the landscape moves {layout.size} parameters")
    gen = torch.Generator().manual_seed(int(seed))
    dirs: list[torch.Tensor] = []
    for _ in range(n):
        raw = torch.cat([torch.randn(s, generator=gen).reshape(-1) for s in layout.shapes])
        d = normalize_direction(raw.to(theta.device, theta.dtype), theta, layout, normalization, bias_bn)
        if orthogonalize:
            d = orthogonalize_direction(d, dirs)
        if d.device.type != "meta" and not bool(d.any()):
            all_1d = all(len(s) <= 1 for s in layout.shapes)
            raise ValueError(
                f"the random direction is zero everywhere with normalization={normalization!r} and "
                f"bias_bn={bias_bn!r}: " + (
                    "the moved parameters are all 1-D (biases, norms), which bias_bn='ignore' leaves "
                    "still: set bias_bn='random' or 'theta'" if all_1d and bias_bn == "ignore" else
                    "the moved parameters are zero at theta, and normalization scales a direction to "
                    "theta's size: use normalization='none'")
            )
        dirs.append(d)
    if normalization != "none" and theta.device.type != "meta":
        _warn_zero_tensors(theta, layout, normalization, bias_bn)
    return dirs


def _warn_zero_tensors(theta: torch.Tensor, layout, normalization: str, bias_bn: str) -> None:
    """Warn when some moved tensors are zero at theta: normalized, their directions are
    zero too, and the landscape may be flat by construction (a fresh LoRA adapter: its
    ``B`` is zero, so moving its ``A`` changes nothing)."""
    parts = layout.split(theta)
    zero = [n for n, s in zip(layout.names, layout.shapes)
            if (len(s) > 1 or bias_bn == "random") and not bool(parts[n].any())]
    if zero:
        shown = ", ".join(zero[:3]) + (f" and {len(zero) - 3} more" if len(zero) > 3 else "")
        warnings.warn(
            f"{len(zero)} of the {len(layout.names)} moved tensors are zero at theta ({shown}): with "
            f"normalization={normalization!r} their directions are zero too, so they do not move, and the "
            "landscape can be flat by construction (a fresh LoRA adapter's B is zero, so moving its A changes "
            "nothing); use normalization='none', or train first", RuntimeWarning, stacklevel=3)


def resolve_directions(
    model: nn.Module,
    n: int,
    directions=None,
    seed: int = 0,
    normalization: Normalization = "filter",
    bias_bn: BiasBN = "ignore",
    theta: torch.Tensor | None = None,
    params: ParamSpec = None,
) -> tuple[list[torch.Tensor], dict]:
    """The given directions, or ``n`` random ones, with attributes saying which.

    Returns
    -------
    directions : list of torch.Tensor
    how : dict
        ``{"directions": "random", "seed", "normalization", "bias_bn"}`` or
        ``{"directions": "given"}``, for a result's attributes.
    """
    if directions is not None:
        return list(directions), {"directions": "given"}
    dirs = random_directions(model, n, seed=seed, normalization=normalization, bias_bn=bias_bn, theta=theta,
                             params=params)
    return dirs, {"directions": "random", "seed": seed, "normalization": normalization, "bias_bn": bias_bn}


def orthogonalize_direction(
    direction: torch.Tensor, against: list[torch.Tensor] | tuple[torch.Tensor, ...]
) -> torch.Tensor:
    """Remove from ``direction`` its components along ``against`` and keep its norm.

    Raises
    ------
    ValueError
        If the direction lies in the span of the others.
    """
    d = direction.detach().clone().double()
    norm = d.norm()
    for other in against:
        o = other.detach().double()
        d -= (d @ o) / (o @ o) * o
    rest = d.norm()
    if rest <= 1e-8 * max(float(norm), 1e-30):
        raise ValueError("the direction lies in the span of the previous directions")
    return (d * (norm / rest)).to(direction.dtype)


def interpolation_direction(model1: nn.Module, model2: nn.Module, params: ParamSpec = None) -> torch.Tensor:
    """``theta2 - theta1`` for two models of the same architecture.

    With theta1 as the centre, the point at coordinate ``a`` along this direction is
    ``(1 - a) * theta1 + a * theta2`` (Goodfellow et al. 2015). ``params`` restricts it
    to a subset of the parameters (see :func:`~landscape_widgets.core.params.select_params`).

    Raises
    ------
    ValueError
        If the two models do not have the same parameter names and shapes.
    """
    check_same_architecture(model1, model2)
    layout = param_layout(model1, params)
    theta1 = flatten_params(model1, layout)
    return flatten_params(model2, layout).to(theta1.device, theta1.dtype) - theta1


def direction_cosine(d1: torch.Tensor, d2: torch.Tensor) -> float:
    """Cosine similarity of two flat directions (reported by the reference code)."""
    d1, d2 = d1.double(), d2.double()
    return float(d1 @ d2 / (d1.norm() * d2.norm() + _EPS))
