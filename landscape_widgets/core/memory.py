"""How many grid points go through one batched forward, and how many data rows.

On the CPU a chunk has :data:`CPU_CHUNK` points and as many data rows per vmapped
forward as keep each intermediate tensor (points x rows x widest activation) below
:data:`CPU_TENSOR_LIMIT`, far below glibc's 32 MB mmap threshold, so buffers are reused
rather than page-faulted in afresh. On a GPU the chunk fills the memory budget.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

#: Largest intermediate tensor a batched chunk may create on the CPU (bytes).
CPU_TENSOR_LIMIT = 4 * 2**20
#: Points per batched chunk on the CPU (the data rows per forward adapt to the limit).
CPU_CHUNK = 16
#: Most points in one batched chunk.
MAX_CHUNK = 1024


def default_budget(device: torch.device) -> int:
    """Bytes a batched chunk may use: a quarter of the free GPU memory on CUDA, else
    ``4 * CPU_TENSOR_LIMIT``."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free // 4)
    return 4 * CPU_TENSOR_LIMIT


def largest_activation(model: nn.Module, run: Callable[[], object], rows: int) -> int:
    """Largest per-sample output of any module of ``model`` during ``run()`` (a forward
    on ``rows`` samples), in elements."""
    sizes = [1]

    def hook(_m, _inp, out):
        if isinstance(out, torch.Tensor) and out.dim() > 0:
            sizes.append(out.numel() // max(rows, 1))

    run_hooked(run, [m.register_forward_hook(hook) for m in model.modules()])
    return max(sizes)


def run_hooked(run: Callable[[], object], handles: list) -> None:
    """``run()`` without gradients, then remove the hooks ``handles`` (also on an error)."""
    try:
        with torch.inference_mode():
            run()
    finally:
        for h in handles:
            h.remove()


def chunk_plan(
    device: torch.device,
    rows: int,
    activation: int | Callable[[], int],
    element_size: int,
    n_params: int,
    memory_budget: int,
    chunk_size: int | None = None,
) -> tuple[int, int]:
    """Points per batched chunk and data rows per vmapped forward.

    Parameters
    ----------
    device : torch.device
    rows : int
        Samples in the largest data batch.
    activation : int or callable
        Largest per-sample activation (elements), see :func:`largest_activation`; or a
        function that returns it (called only when needed).
    element_size : int
        Bytes per element of the evaluation dtype.
    n_params : int
        Moved parameters (each point holds a copy of them).
    memory_budget : int
        Bytes a chunk may use.
    chunk_size : int, optional
        Points per chunk asked for by the caller.
    """
    k = chunk_points(device, rows, activation, element_size, n_params, memory_budget, chunk_size)
    if device.type == "cuda":
        return k, rows
    per_point_row = element_size * _value(activation)
    limit = min(CPU_TENSOR_LIMIT, memory_budget)
    return k, int(np.clip(limit // (per_point_row * k), 1, rows))


def chunk_points(
    device: torch.device,
    rows: int,
    activation: int | Callable[[], int],
    element_size: int,
    n_params: int,
    memory_budget: int,
    chunk_size: int | None = None,
) -> int:
    """The points per chunk of :func:`chunk_plan` (same arguments). On the CPU they do not
    depend on the activation, so a callable ``activation`` is not called there."""
    params_bytes = element_size * n_params
    if device.type == "cuda":
        per_point = 3 * element_size * _value(activation) * rows + 2 * params_bytes
        return chunk_size or int(np.clip(memory_budget // per_point, 1, MAX_CHUNK))
    k = chunk_size or CPU_CHUNK
    return int(min(k, max(1, memory_budget // (2 * params_bytes))))


def _value(activation: int | Callable[[], int]) -> int:
    return int(activation() if callable(activation) else activation)
