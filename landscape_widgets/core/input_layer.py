"""A first layer that reads the data is computed once per direction, not once per point.

A ``Linear`` or ``Conv`` layer is linear in its parameters (weight and bias together),
so on fixed data ``x`` its output at ``theta + sum_i c_i d_i`` is
``f(x; theta) + sum_i c_i f(x; d_i)``. For the layer that receives a data tensor itself,
those ``1 + k`` outputs are computed once per batch (resident data) or once per batch
and pass (streamed data, where a pass evaluates each batch at a chunk of points); each
point then costs a ``k``-term sum over the layer's output instead of the layer's product.

While the per-point loop runs, :meth:`CachedInputLayer.standing_in` replaces only the
layer's ``forward`` (an attribute of the layer object); the module object, its
``weight`` and ``bias`` stay in place and hold the current point, so a model that reads
them directly (tied embeddings, ``F.linear(h, self.proj.weight)``) sees the right values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.func import functional_call

from .data import tensor_leaves
from .memory import run_hooked
from .params import ParamLayout

AFFINE_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
#: Layers with fewer multiply-adds per output element than this are as cheap to
#: recompute as the cached sum is to read, so they are left alone.
MIN_FAN_IN = 32
#: Up to this many directions the cached output is summed term by term (``add``);
#: beyond, with one matrix product.
ADD_TERMS = 3


def fan_in(module: nn.Module) -> int:
    """Multiply-adds per output element of a Linear or Conv layer."""
    if isinstance(module, nn.Linear):
        return module.in_features
    k = 1
    for s in module.kernel_size:
        k *= s
    return module.in_channels // module.groups * k


def find_input_layer(model: nn.Module, run: Callable[[], object], leaves: list[torch.Tensor]) -> tuple[str, int] | None:
    """The Linear/Conv module that ``run()`` (a forward of ``model``) calls once, on one of
    the batch's tensors ``leaves`` itself: its name and the index of that tensor.

    ``None`` when there is none (a first layer that reads a transformed input, a layer
    called twice, the model being the layer itself) or when it is too cheap to cache
    (fan-in below :data:`MIN_FAN_IN`).
    """
    ids = {id(t): j for j, t in enumerate(leaves)}
    calls: list[tuple[str, int | None]] = []
    run_hooked(run, [
        m.register_forward_pre_hook(
            lambda _m, args, name=name: calls.append((name, ids.get(id(args[0])) if args else None))
        )
        for name, m in model.named_modules()
        if isinstance(m, AFFINE_LAYERS) and name
    ])
    readers = [(name, j) for name, j in calls if j is not None]
    if len(readers) != 1 or [name for name, _ in calls].count(readers[0][0]) != 1:
        return None
    return readers[0] if fan_in(model.get_submodule(readers[0][0])) >= MIN_FAN_IN else None


class CachedInputLayer:
    """The input layer's output at the current point, from its cached outputs.

    For each data batch the layer's output at theta and at each direction is computed
    once, when :meth:`use` first meets the batch's input tensor: ``[1 + k, numel]``. With
    ``keep`` (resident data, the same batch objects at every pass) every batch's outputs
    are kept; otherwise (streamed data, read again at every pass) only the current
    batch's, recomputed at each pass and reused at all its points. Call :meth:`use`
    before a batch's forwards and :meth:`at` before each forward.
    """

    def __init__(self, module: nn.Module, values: list[dict[str, torch.Tensor]], leaf: int, keep: bool) -> None:
        self.module = module
        self.values = values
        self.leaf = leaf
        self.keep = keep
        self._outputs: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Size]] = {}
        self._current: tuple[torch.Tensor, torch.Tensor, torch.Size] | None = None
        self.coeffs: torch.Tensor | None = None

    @classmethod
    def build(
        cls,
        model: nn.Module,
        name: str,
        layout: ParamLayout,
        theta: torch.Tensor,
        directions: torch.Tensor,
        leaf: int,
        keep: bool,
    ) -> CachedInputLayer:
        """The cache of layer ``name`` of ``model``, which reads the batches' tensor leaf
        ``leaf``, at ``theta`` and at each of the ``directions`` (rows). Parameters of the
        layer that do not move keep their value at theta and are zero in the directions."""
        module = model.get_submodule(name)
        table = {id(p): n for n, p in model.named_parameters()}
        moved = set(layout.names)
        dtype = next(module.parameters()).dtype
        stacked = layout.split(torch.cat([theta[None], directions]).to(dtype))
        values: list[dict[str, torch.Tensor]] = [{} for _ in range(len(directions) + 1)]
        for own, p in module.named_parameters(recurse=False):
            full = table[id(p)]
            for j in range(len(values)):
                if full in moved:
                    values[j][own] = stacked[full][j]
                else:
                    values[j][own] = p.detach() if j == 0 else torch.zeros_like(p)
        return cls(module, values, leaf, keep)

    def use(self, index: int, batch) -> None:
        """The data batch (number ``index`` of the pass) of the next forwards: its outputs
        are computed unless they are kept from an earlier pass over the same tensor."""
        x = tensor_leaves(batch)[self.leaf]
        self._current = None  # so that the layer computes its own forward below
        entry = self._outputs.get(index)
        if entry is None or entry[0] is not x:
            if not self.keep:
                self._outputs.clear()
            with torch.inference_mode():
                zs = [functional_call(self.module, values, (x,)) for values in self.values]
            entry = (x, torch.stack([z.reshape(-1) for z in zs]), zs[0].shape)
            self._outputs[index] = entry
        self._current = entry

    def at(self, coeffs: torch.Tensor) -> None:
        """The point of the next forward."""
        dtype = self._current[1].dtype
        self.coeffs = coeffs if coeffs.dtype == dtype else coeffs.to(dtype)

    def output(self) -> torch.Tensor:
        """The layer's output at the current point on the current batch (a new tensor, so
        that an in-place operation of the model cannot change the cache)."""
        _, z, shape = self._current
        c = self.coeffs
        if len(c) > ADD_TERMS:
            out = torch.addmm(z[:1], c[None], z[1:])
        else:  # one pass over the output per term, but no broadcast copy and no GEMV set-up
            first, *rest = c.tolist()
            out = torch.add(z[0], z[1], alpha=first)
            for j, w in enumerate(rest, start=2):
                out.add_(z[j], alpha=w)
        return out.view(shape)

    def _forward(self, original):
        def forward(x, *args, **kwargs):
            if args or kwargs or self._current is None or x is not self._current[0]:
                return original(x, *args, **kwargs)
            return self.output()
        return forward

    @contextlib.contextmanager
    def standing_in(self) -> Iterator[None]:
        """Compute the layer from the cache while the block runs (its ``forward`` only)."""
        module = self.module
        own = module.__dict__.get("forward")
        module.forward = self._forward(module.forward)
        try:
            yield
        finally:
            if own is None:
                del module.forward
            else:
                module.forward = own
