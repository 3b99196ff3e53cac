"""The data a landscape is evaluated on: the same samples, in the same order, at every point.

A batch is a pytree of tensors: an ``(inputs, targets)`` pair, a tuple or list of
tensors, or a dict (a Hugging Face ``BatchEncoding``); its batch size is the leading
dimension of its first tensor. :func:`prepare_data` reads the data once, applies the
caps (``max_batches``, ``max_samples``: the cost controls, since every grid point is a
pass over all of it) and returns a :class:`DataSource`:

*resident* when the data fits ``budget`` bytes on the device: the batches are kept
there and reused at every point;

*streamed* otherwise: each pass reads the batches again (the evaluator makes one pass
per chunk of grid points and evaluates each batch at all the chunk's points). A
DataLoader over a map-style dataset is replayed in one frozen index order
(:func:`frozen_order`: a shuffling loader's from seed 0 or from a copy of its own
generator), the same samples in the same order at every point and in every run;
any other re-iterable source is checked batch by batch against the first pass.
"""

from __future__ import annotations

import copy
import numbers
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_map

Batch = Any

#: Data kept resident on a CPU device at most (bytes), unless ``data_budget`` says.
CPU_DATA_FRACTION = 0.25


def tensor_leaves(batch: Batch) -> list[torch.Tensor]:
    """The tensors of a batch, in pytree order."""
    return [leaf for leaf in tree_flatten(_plain(batch))[0] if isinstance(leaf, torch.Tensor)]


def n_rows(batch: Batch) -> int:
    """The batch size: the leading dimension of the batch's first tensor."""
    leaves = tensor_leaves(batch)
    if not leaves or leaves[0].dim() == 0:
        raise TypeError(
            f"a batch must hold tensors with a leading batch dimension, got {type(batch).__name__}"
        )
    return int(leaves[0].shape[0])


def batch_nbytes(batch: Batch) -> int:
    """Bytes held by the batch's tensors."""
    return sum(t.numel() * t.element_size() for t in tensor_leaves(batch))


def to_device(batch: Batch, device: torch.device, dtype: torch.dtype | None = None) -> Batch:
    """The batch with every tensor on ``device`` (floating tensors cast to ``dtype``)."""

    def move(leaf):
        if not isinstance(leaf, torch.Tensor):
            return leaf
        leaf = leaf.detach()
        if dtype is not None and leaf.is_floating_point():
            return leaf.to(device, dtype)
        return leaf.to(device)

    return tree_map(move, _plain(batch))


def _plain(batch: Batch) -> Batch:
    """Mappings (``BatchEncoding``, ``UserDict``) as plain dicts, which pytrees know."""
    if isinstance(batch, Mapping) and not isinstance(batch, dict):
        return dict(batch)
    return batch


def _rows(batch: Batch, start: int, stop: int) -> Batch:
    """Samples ``start:stop`` of every tensor with a batch dimension."""
    return tree_map(lambda t: t[start:stop] if isinstance(t, torch.Tensor) and t.dim() else t, batch)


def _checksum(batch: Batch) -> tuple:
    return tuple((tuple(t.shape), float(t.double().sum())) for t in tensor_leaves(batch))


def is_single_batch(data) -> bool:
    """Whether ``data`` is one batch (tensors, a tuple/list of tensors, a dict of tensors)
    rather than an iterable of batches."""
    if isinstance(data, torch.Tensor):
        return True
    if isinstance(data, Mapping):
        return all(isinstance(v, torch.Tensor) for v in data.values())
    return isinstance(data, (tuple, list)) and bool(data) and all(isinstance(t, torch.Tensor) for t in data)


def split_batch(batch: Batch, rows: int) -> Iterator[Batch]:
    """The batch in pieces of at most ``rows`` samples, in order."""
    n = n_rows(batch)
    for start in range(0, n, rows):
        yield _rows(batch, start, start + rows)


@dataclass
class DataSource:
    """Fixed, ordered batches on one device, resident or streamed (see the module text).

    Iterate it for one pass over the batches (on the device). Attributes: ``sizes``
    (samples per batch), ``first`` (the first batch, kept on the device for probing),
    ``resident``, ``device``.
    """

    device: torch.device
    sizes: tuple[int, ...]
    first: Batch
    resident: bool
    _batches: tuple | None = None
    _replay: Any = None
    _dtype: torch.dtype | None = None
    _caps: tuple[int | None, int | None] = (None, None)
    _checksums: tuple = field(default_factory=tuple)

    @property
    def n_samples(self) -> int:
        return sum(self.sizes)

    @property
    def n_batches(self) -> int:
        return len(self.sizes)

    def __iter__(self) -> Iterator[Batch]:
        if self.resident:
            yield from self._batches
            return
        for i, batch in enumerate(_read(self._replay, *self._caps)):
            batch = to_device(batch, self.device, self._dtype)
            if i >= len(self._checksums) or _checksum(batch) != self._checksums[i]:
                raise RuntimeError(
                    f"batch {i} of the data differs from the first pass over it: a landscape needs the "
                    "same samples at every point (random augmentation or a changing source); give "
                    "deterministic data or a smaller max_samples so that it stays in memory"
                )
            yield batch

    def probe(self, rows: int = 2) -> Batch:
        """The first ``rows`` samples of the first batch (for cheap trial forwards)."""
        return _rows(self.first, 0, rows)


def sample_groups(source: DataSource, fraction: float, groups: int, seed: int = 0) -> DataSource:
    """A seeded simple random sample of ``fraction`` of a resident source's samples, as
    ``groups`` batches of (nearly) equal size, each itself a simple random sample."""
    if not source.resident:
        raise ValueError("a data sample needs resident data (this source is streamed)")
    n = source.n_samples
    m = int(round(fraction * n))
    if not 0 < fraction < 1 or m < groups:
        raise ValueError(f"a sample of {fraction} of {n} samples cannot fill {groups} groups")
    chosen = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))[:m]
    offsets = torch.tensor((0,) + source.sizes).cumsum(0)
    batches = []
    for rows in chosen.tensor_split(groups):
        parts = []
        for b, batch in enumerate(source._batches):
            local = rows[(rows >= offsets[b]) & (rows < offsets[b + 1])] - offsets[b]
            if len(local):
                parts.append(_take(batch, local.to(source.device)))
        batches.append(concat_batches(parts))
    sizes = tuple(n_rows(b) for b in batches)
    return DataSource(source.device, sizes, batches[0], True, tuple(batches), _dtype=source._dtype)


def _take(batch: Batch, rows: torch.Tensor) -> Batch:
    """Samples ``rows`` of every tensor with a batch dimension."""
    return tree_map(lambda t: t[rows] if isinstance(t, torch.Tensor) and t.dim() else t, batch)


def concat_batches(batches: list[Batch]) -> Batch:
    """Batches of one structure as one: tensors with a batch dimension concatenated along
    it, other leaves taken from the first."""
    if len(batches) == 1:
        return batches[0]

    def cat(*leaves):
        first = leaves[0]
        return torch.cat(leaves) if isinstance(first, torch.Tensor) and first.dim() else first

    return tree_map(cat, *batches)


def _read(source, max_batches: int | None, max_samples: int | None) -> Iterator[Batch]:
    seen = 0
    for i, item in enumerate(source):
        if max_batches is not None and i >= max_batches:
            return
        item = _plain(item)
        n = n_rows(item)
        if max_samples is not None and seen + n > max_samples:
            item, n = _rows(item, 0, max_samples - seen), max_samples - seen
        if n:
            yield item
            seen += n
        if max_samples is not None and seen >= max_samples:
            return


def frozen_order(loader) -> list[list[int]]:
    """The batches of dataset indices a DataLoader is replayed in. A random sampler (one
    with a ``generator``, as ``shuffle=True`` makes) draws them from a copy of its
    generator, or from seed 0 where it has none: the loader, its generator and torch's
    global random state are left as they were, and a loader without a generator gives
    the same order in every process (a stored run is found again)."""
    batches = loader.batch_sampler
    sampler = getattr(batches, "sampler", None)
    if hasattr(sampler, "generator"):
        generator = torch.Generator()
        if sampler.generator is None:
            generator.manual_seed(0)
        else:
            generator.set_state(sampler.generator.get_state())
        sampler = copy.copy(sampler)
        sampler.generator = generator
        batches = copy.copy(batches)
        batches.sampler = sampler
    return [list(b) for b in batches]


def _replayable(data) -> Any:
    """A source that yields the same batches each time it is iterated, or None."""
    from torch.utils.data import DataLoader

    if isinstance(data, DataLoader) and data.batch_sampler is not None:
        order = frozen_order(data)
        return DataLoader(
            data.dataset, batch_sampler=order, collate_fn=data.collate_fn,
            num_workers=data.num_workers, pin_memory=data.pin_memory,
            worker_init_fn=data.worker_init_fn,
        )
    if iter(data) is data:  # a one-shot iterator or generator
        return None
    return data


def default_data_budget(device: torch.device) -> int:
    """Bytes of data kept resident by default: a quarter of the free GPU memory on CUDA,
    a quarter of the physical memory on the CPU (2 GiB where that is unknown)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free // 4)
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * CPU_DATA_FRACTION)
    except (ValueError, OSError, AttributeError):
        return 2 * 2**30


def prepare_data(
    data,
    device: torch.device | str = "cpu",
    *,
    batch_size: int | None = None,
    max_batches: int | None = None,
    max_samples: int | None = None,
    budget: int | None = None,
    dtype: torch.dtype | None = None,
) -> DataSource:
    """Read ``data`` once into a :class:`DataSource` on ``device``.

    Parameters
    ----------
    data : one batch or an iterable of batches
        ``(X, y)`` tensors, a dict of tensors, or a DataLoader (or any iterable)
        yielding pairs, tuples or dicts.
    device : torch.device or str
    batch_size : int, optional
        Split a single-batch ``data`` into batches of this size (default: one batch).
    max_batches, max_samples : int, optional
        Read at most this many batches / samples. Every grid point is a pass over all
        the data read, so these are the cost controls.
    budget : int, optional
        Bytes the data may occupy on the device (default :func:`default_data_budget`).
        Larger data is streamed.
    dtype : torch.dtype, optional
        Cast floating tensors to this dtype (the evaluation dtype).

    Raises
    ------
    ValueError
        If no samples are read, or the data exceeds the budget and cannot be read twice.
    TypeError
        If a batch holds no tensors.
    """
    for name, value in (("batch_size", batch_size), ("max_batches", max_batches), ("max_samples", max_samples)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1):
            raise ValueError(f"{name} must be a positive integer (or None: all), got {value!r}")
    device = torch.device(device)
    if isinstance(data, torch.Tensor):
        raise TypeError(
            "data must be an (inputs, targets) pair, a dict of tensors or an iterable of batches; "
            "got a single tensor (give (X, y), or (X,) with a loss computed by the model)"
        )
    if is_single_batch(data):
        data = _plain(data)
        sizes = {len(t) for t in tensor_leaves(data) if t.dim()}
        if len(sizes) > 1:
            raise ValueError(f"the tensors of the data differ in length: {sorted(sizes)} samples")
        source = list(split_batch(data, batch_size or max(n_rows(data), 1)))
    else:
        source = data
    replay = _replayable(source)
    budget = default_data_budget(device) if budget is None else int(budget)
    kept: list | None = []
    sizes, checksums, used, first = [], [], 0, None
    for batch in _read(replay if replay is not None else source, max_batches, max_samples):
        batch = to_device(batch, device, dtype)
        if first is None:
            first = batch
        sizes.append(n_rows(batch))
        checksums.append(_checksum(batch))
        used += batch_nbytes(batch)
        if kept is not None and used > budget:
            if replay is None:
                raise ValueError(
                    f"the data exceeds the memory budget ({budget} bytes) and is a one-shot iterator "
                    "that cannot be read again: pass a DataLoader or a list, raise data_budget, or "
                    "set max_samples"
                )
            kept = None
        if kept is not None:
            kept.append(batch)
    if first is None:
        raise ValueError(
            "the data holds no samples: give a non-empty (inputs, targets) pair or a "
            "DataLoader that yields at least one batch"
        )
    if kept is not None:
        return DataSource(device, tuple(sizes), first, True, _batches=tuple(kept))
    return DataSource(device, tuple(sizes), first, False, _replay=replay, _dtype=dtype,
                      _caps=(max_batches, max_samples), _checksums=tuple(checksums))
