"""Permutation symmetry of hidden units, and weight matching (Ainsworth et al. 2022).

Permuting the hidden units of a layer (the rows of its weight and bias, the entries of a
BatchNorm that follows it, and the matching input columns of the next layer) leaves the
network's function unchanged (Brea et al. 2019), yet the straight line between a network
and its permuted copy usually crosses a loss barrier. Weight matching finds, for two
independently trained networks A and B, the permutations of B's hidden units that make
its weights most similar to A's, layer by layer as a linear assignment
(:func:`scipy.optimize.linear_sum_assignment`), iterating over the layers until no
permutation changes; the linear path from A to the permuted B then has a lower barrier.

Supported networks are chains: ``Linear``/``Conv`` layers in the order they are
registered, each feeding the next, with optional BatchNorm layers right after a layer
and parameter-free modules (activations, pooling, flattening) in between. Residual
connections are not recognized: permuting a network with skips changes its function.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

AFFINE_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
NORM_LAYERS = (nn.modules.batchnorm._BatchNorm,)
Permutations = list[np.ndarray]


@dataclass(frozen=True)
class ChainLayer:
    """An affine layer of a chain, and the BatchNorm that directly follows it (if any)."""

    name: str
    module: nn.Module
    norm: nn.Module | None

    @property
    def units(self) -> int:
        """Output units (features or channels)."""
        return self.module.weight.shape[0]


def layer_chain(model: nn.Module) -> list[ChainLayer]:
    """The model's affine layers in order, checked to form a chain (see module docs).

    Raises
    ------
    ValueError
        When the model has a module with parameters that is not a Linear, Conv or a
        BatchNorm after one, a grouped convolution, fewer than two affine layers, or
        consecutive layers whose sizes do not connect.
    """
    found: list[list] = []
    for name, m in model.named_modules():
        if isinstance(m, AFFINE_LAYERS):
            if getattr(m, "groups", 1) != 1:
                raise ValueError(f"{name}: grouped convolutions are not supported by permutation matching")
            found.append([name, m, None])
        elif isinstance(m, NORM_LAYERS):
            if not found or found[-1][2] is not None or m.num_features != found[-1][1].weight.shape[0]:
                raise ValueError(f"{name}: a BatchNorm must directly follow the layer whose outputs it normalizes")
            found[-1][2] = m
        elif any(True for _ in m.parameters(recurse=False)):
            raise ValueError(
                f"{name} ({type(m).__name__}) has parameters but is neither Linear/Conv nor BatchNorm: "
                "permutation matching supports chains of those layers only"
            )
    chain = [ChainLayer(*f) for f in found]
    if len(chain) < 2:
        raise ValueError("the model needs at least two Linear/Conv layers to have hidden units to permute")
    for prev, nxt in zip(chain, chain[1:]):
        fan = nxt.module.weight.shape[1]
        if fan % prev.units:
            raise ValueError(
                f"{nxt.name} reads {fan} inputs, which is not a whole number of the "
                f"{prev.units} outputs of {prev.name}: the layers do not form a chain"
            )
    return chain


def _weight(layer: ChainLayer, in_units: int) -> torch.Tensor:
    """The layer's weight as ``[out, in_units, rest]`` (a Linear after a Conv reads
    each input channel's ``rest`` positions)."""
    w = layer.module.weight.detach()
    return w.reshape(w.shape[0], in_units, -1)


def _unit_params(layer: ChainLayer) -> list[torch.Tensor]:
    """The parameters indexed by the layer's output unit besides its weight: its bias and
    the following BatchNorm's weight and bias."""
    norm = layer.norm
    found = [layer.module.bias] + ([norm.weight, norm.bias] if norm is not None else [])
    return [t for t in found if t is not None]


def _unit_tensors(layer: ChainLayer) -> list[torch.Tensor]:
    """:func:`_unit_params` and the BatchNorm's running statistics."""
    norm = layer.norm
    stats = [norm.running_mean, norm.running_var] if norm is not None else []
    return _unit_params(layer) + [t for t in stats if t is not None]


def _check_permutations(chain: list[ChainLayer], perms: Sequence) -> Permutations:
    perms = [np.asarray(p, dtype=np.int64) for p in perms]
    if len(perms) != len(chain) - 1:
        raise ValueError(f"give one permutation per hidden layer ({len(chain) - 1}), got {len(perms)}")
    for p, layer in zip(perms, chain):
        if sorted(p.tolist()) != list(range(layer.units)):
            raise ValueError(f"the permutation for {layer.name} must be a permutation of 0..{layer.units - 1}")
    return perms


def permute_units(model: nn.Module, perms: Sequence) -> nn.Module:
    """A copy of ``model`` with the hidden units of each layer reordered.

    Parameters
    ----------
    model : nn.Module
        A chain (see :func:`layer_chain`); it is not changed.
    perms : sequence of int arrays
        One per hidden layer (every affine layer but the last): the new unit ``i`` of
        layer ``l`` is its old unit ``perms[l][i]``.

    Returns
    -------
    nn.Module
        A network computing the same function with permuted weights.
    """
    out = copy.deepcopy(model)
    chain = layer_chain(out)
    perms = _check_permutations(chain, perms)
    with torch.no_grad():
        for l, layer in enumerate(chain):
            w = layer.module.weight
            shape = w.shape
            in_units = chain[l - 1].units if l else shape[1]
            new = _weight(layer, in_units)
            if l:
                new = new[:, torch.as_tensor(perms[l - 1])]
            if l < len(perms):
                index = torch.as_tensor(perms[l])
                new = new[index]
                for t in _unit_tensors(layer):
                    t.copy_(t[index])
            w.copy_(new.reshape(shape))
    return out


def random_permutations(model: nn.Module, seed: int = 0) -> Permutations:
    """Uniformly random permutations of every hidden layer's units."""
    rng = np.random.default_rng(seed)
    return [rng.permutation(layer.units) for layer in layer_chain(model)[:-1]]


def weight_matching(model_a: nn.Module, model_b: nn.Module, max_iter: int = 100, seed: int = 0) -> Permutations:
    """Permutations of ``model_b``'s hidden units that make its weights closest to ``model_a``'s.

    Maximizes ``sum_l <W_l^A, P_l W_l^B P_{l-1}^T>`` (biases and BatchNorm parameters
    included with their layer) by coordinate ascent: each hidden layer's permutation is
    the linear assignment that is best given its neighbours', the layers visited in a
    random order (``seed``) until a whole pass changes nothing or ``max_iter`` passes.

    Returns
    -------
    list of np.ndarray
        Apply them with ``permute_units(model_b, perms)``.
    """
    chain_a, chain_b = layer_chain(model_a), layer_chain(model_b)
    if [(l.units, l.module.weight.shape) for l in chain_a] != [(l.units, l.module.weight.shape) for l in chain_b]:
        raise ValueError("weight matching needs two networks of the same architecture")
    n_hidden = len(chain_a) - 1
    perms = [np.arange(layer.units) for layer in chain_a[:-1]]
    rng = np.random.default_rng(seed)

    def in_units(l: int) -> int:
        return chain_a[l - 1].units if l else chain_a[0].module.weight.shape[1]

    def unit_features(chain, l: int) -> torch.Tensor:
        """Layer l's incoming weights and per-unit parameters, ``[units, features]``."""
        w = _weight(chain[l], in_units(l)).double()
        if chain is chain_b and l:
            w = w[:, torch.as_tensor(perms[l - 1])]
        extra = [t.detach().double()[:, None] for t in _unit_params(chain[l])]
        return torch.cat([w.reshape(w.shape[0], -1), *extra], dim=1)

    for _ in range(max_iter):
        changed = False
        for l in rng.permutation(n_hidden):
            score = unit_features(chain_a, l) @ unit_features(chain_b, l).T
            nxt_a = _weight(chain_a[l + 1], chain_a[l].units).double()
            nxt_b = _weight(chain_b[l + 1], chain_a[l].units).double()
            if l + 1 < n_hidden:
                nxt_b = nxt_b[torch.as_tensor(perms[l + 1])]
            score += torch.einsum("oir,ojr->ij", nxt_a, nxt_b)
            _, cols = linear_sum_assignment(score.cpu().numpy(), maximize=True)
            if not np.array_equal(cols, perms[l]):
                perms[l], changed = cols, True
        if not changed:
            break
    return perms


def align(model_a: nn.Module, model_b: nn.Module, max_iter: int = 100, seed: int = 0) -> nn.Module:
    """``model_b`` with its hidden units permuted to match ``model_a`` (weight matching)."""
    return permute_units(model_b, weight_matching(model_a, model_b, max_iter, seed))
