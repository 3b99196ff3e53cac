"""Digests of tensors: names for exact values (which points a result holds, which data
and weights a stored run was made from)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch


def tensor_digest(t: torch.Tensor) -> str:
    """Dtype, shape and the SHA-256 of the values of ``t`` (on the CPU)."""
    t = t.detach().cpu().contiguous()
    data = t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()
    # the raw buffer, hashed in place (the same digest as of ``data.tobytes()``, without the copy)
    return f"{t.dtype}{tuple(t.shape)}:{hashlib.sha256(data.reshape(-1).view('uint8')).hexdigest()}"


def points_digest(theta: torch.Tensor, directions: Sequence[torch.Tensor] | torch.Tensor) -> str:
    """24 hex digits naming the points ``theta + sum_i c_i d_i`` of parameter space that a
    landscape's coefficients stand for: its centre and its directions, by value."""
    h = hashlib.sha256(tensor_digest(theta).encode())
    for d in directions:
        h.update(tensor_digest(d).encode())
    return h.hexdigest()[:24]
