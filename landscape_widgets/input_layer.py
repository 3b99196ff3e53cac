"""A first layer that reads the data is computed once per direction, not once per point.

A ``Linear`` or ``Conv`` layer is linear in its parameters (weight and bias together),
so on fixed data ``x`` its output at ``theta + sum_i c_i d_i`` is
``f(x; theta) + sum_i c_i f(x; d_i)``. For the layer that receives the data tensor itself,
those ``1 + k`` outputs are computed once per batch; each point then costs a ``k``-term
sum over the layer's output instead of the layer's product (on the digits MLP, 64 inputs:
about 45 us instead of 190 us a point, 15% of the time per point).

The per-point loop puts a :class:`CachedInputLayer` in the layer's place while it runs
(:meth:`CachedInputLayer.standing_in`); the evaluator's model is otherwise left as it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.func import functional_call

from .params import ParamLayout

AFFINE_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
#: Layers with fewer multiply-adds per output element than this are as cheap to
#: recompute as the cached sum is to read, so they are left alone.
MIN_FAN_IN = 32


def fan_in(module: nn.Module) -> int:
    """Multiply-adds per output element of a Linear or Conv layer."""
    if isinstance(module, nn.Linear):
        return module.in_features
    k = 1
    for s in module.kernel_size:
        k *= s
    return module.in_channels // module.groups * k


def find_input_layer(model: nn.Module, x: torch.Tensor) -> str | None:
    """Name of the Linear/Conv module that a forward of ``x`` calls once, on ``x`` itself.

    ``None`` when there is none (a first layer that reads a transformed input, a layer
    called twice, the model being the layer itself) or when it is too cheap to cache
    (fan-in below :data:`MIN_FAN_IN`).
    """
    calls: list[tuple[str, bool]] = []
    handles = [
        m.register_forward_pre_hook(
            lambda _m, args, name=name: calls.append((name, bool(args) and args[0] is x))
        )
        for name, m in model.named_modules()
        if isinstance(m, AFFINE_LAYERS) and name
    ]
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in handles:
            h.remove()
    readers = [name for name, reads_x in calls if reads_x]
    if len(readers) != 1 or [name for name, _ in calls].count(readers[0]) != 1:
        return None
    return readers[0] if fan_in(model.get_submodule(readers[0])) >= MIN_FAN_IN else None


class CachedInputLayer(nn.Module):
    """The input layer's output at the current point, from its cached outputs.

    ``outputs[b]`` holds, for data batch ``b``, the layer's output at theta followed by its
    output at each direction, flattened: ``[1 + k, numel]``. Set :attr:`coeffs` (the
    point) and :attr:`batch` before each forward.
    """

    def __init__(self, name: str, outputs: list[torch.Tensor], shapes: list[torch.Size]) -> None:
        super().__init__()
        self.name = name
        self.outputs = outputs
        self.shapes = shapes
        self.coeffs: torch.Tensor | None = None
        self.batch = 0

    def forward(self, _x: torch.Tensor) -> torch.Tensor:
        z = self.outputs[self.batch]
        return torch.addmm(z[:1], self.coeffs[None], z[1:]).view(self.shapes[self.batch])

    @classmethod
    def build(
        cls,
        module: nn.Module,
        name: str,
        layout: ParamLayout,
        theta: torch.Tensor,
        directions: torch.Tensor,
        inputs: list[torch.Tensor],
    ) -> CachedInputLayer:
        """Outputs of ``module`` (called ``name`` in the model) on each of ``inputs`` at
        ``theta`` and at each of the ``directions`` (rows)."""
        stacked = layout.split(torch.cat([theta[None], directions]))
        own = [p for p, _ in module.named_parameters(recurse=False)]
        outputs, shapes = [], []
        with torch.inference_mode():
            for x in inputs:
                per_vector = [
                    functional_call(module, {p: stacked[f"{name}.{p}"][j] for p in own}, (x,))
                    for j in range(len(directions) + 1)
                ]
                shapes.append(per_vector[0].shape)
                outputs.append(torch.stack([z.reshape(-1) for z in per_vector]))
        return cls(name, outputs, shapes)

    def at(self, coeffs: torch.Tensor, batch: int) -> None:
        """The point and data batch of the next forward."""
        self.coeffs, self.batch = coeffs, batch

    @contextlib.contextmanager
    def standing_in(self, model: nn.Module) -> Iterator[None]:
        """Take the input layer's place in ``model`` while the block runs."""
        parent_name, _, attr = self.name.rpartition(".")
        parent = model.get_submodule(parent_name)
        original = getattr(parent, attr)
        setattr(parent, attr, self)
        try:
            yield
        finally:
            setattr(parent, attr, original)
