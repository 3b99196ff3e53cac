"""Data sources for an evaluation: tensors or any iterable of ``(inputs, targets)``.

A landscape evaluates the same data at every grid point, so the batches are read once
(up to an optional cap), kept in a fixed order and moved to the evaluation device.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Batches:
    """Fixed list of ``(inputs, targets)`` batches on one device."""

    batches: tuple[tuple[torch.Tensor, torch.Tensor], ...]

    @property
    def n_samples(self) -> int:
        return sum(len(x) for x, _ in self.batches)

    def to(self, device: torch.device | str) -> "Batches":
        return Batches(tuple((x.to(device), y.to(device)) for x, y in self.batches))

    def rebatch(self, rows: int) -> "Batches":
        """The same samples, in the same order, in batches of at most ``rows``."""
        if rows >= max(len(x) for x, _ in self.batches):
            return self
        return Batches(
            tuple(
                (xs, ys)
                for x, y in self.batches
                for xs, ys in zip(torch.split(x, rows), torch.split(y, rows))
            )
        )


def as_batches(
    data: tuple[torch.Tensor, torch.Tensor] | Iterable,
    batch_size: int | None = None,
    max_batches: int | None = None,
    max_samples: int | None = None,
) -> Batches:
    """Read ``data`` into a fixed list of batches.

    Parameters
    ----------
    data : (inputs, targets) tuple of tensors, or iterable of such pairs
        E.g. ``(X, y)`` or a ``torch.utils.data.DataLoader``. A DataLoader is read once,
        so shuffling does not change the landscape between grid points.
    batch_size : int, optional
        Split a ``(X, y)`` pair into batches of this size (default: one full batch).
    max_batches, max_samples : int, optional
        Cap on the number of batches / samples read.

    Raises
    ------
    ValueError
        If no samples are read, or inputs and targets differ in length.
    """
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(
        isinstance(t, torch.Tensor) for t in data
    ):
        x, y = data
        if len(x) != len(y):
            raise ValueError(f"inputs have {len(x)} samples but targets have {len(y)}")
        rows = batch_size or max(len(x), 1)
        source: Iterable = zip(torch.split(x, rows), torch.split(y, rows))
    elif isinstance(data, torch.Tensor):
        raise TypeError("data must be an (inputs, targets) pair or an iterable of such pairs")
    else:
        source = data
    out: list[tuple[torch.Tensor, torch.Tensor]] = []
    seen = 0
    for i, item in enumerate(source):
        if max_batches is not None and i >= max_batches:
            break
        try:
            x, y = item[0], item[1]
        except (TypeError, IndexError, KeyError):
            raise TypeError(
                f"each batch must be an (inputs, targets) pair, got {type(item).__name__}"
            ) from None
        if len(x) != len(y):
            raise ValueError(f"a batch has {len(x)} inputs but {len(y)} targets")
        if max_samples is not None and seen + len(x) > max_samples:
            x, y = x[: max_samples - seen], y[: max_samples - seen]
        if len(x):
            out.append((x.detach(), y.detach()))
            seen += len(x)
        if max_samples is not None and seen >= max_samples:
            break
    if not out:
        raise ValueError(
            "the data holds no samples: give a non-empty (inputs, targets) pair or a "
            "DataLoader that yields at least one batch"
        )
    return Batches(tuple(out))
