"""Data larger than the memory budget is streamed: the same values as resident data, the
same samples in the same order at every point, and bounded memory."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from landscape_widgets import compute_landscape, line, plane
from landscape_widgets.core.data import batch_nbytes, prepare_data


class Synthetic(Dataset):
    """Samples made from their index (nothing held in memory); ``noisy`` adds fresh noise
    at every read, like a random augmentation."""

    def __init__(self, n=600, d=32, noisy=False):
        self.n, self.d, self.noisy = n, d, noisy

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        x = torch.randn(self.d, generator=g)
        if self.noisy:
            x = x + 0.1 * torch.randn(self.d)
        return x, int(i % 5)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 5))


@pytest.mark.parametrize("strategy", ["loop", "batched", "auto"])
def test_streamed_equals_resident_for_a_shuffling_loader_ten_times_the_budget(strategy):
    loader = DataLoader(Synthetic(), batch_size=50, shuffle=True)
    total = sum(batch_nbytes(b) for b in loader)
    budget = total // 12
    grid = plane(num=5)
    streamed = compute_landscape(_model(), F.cross_entropy, loader, grid, data_budget=budget, strategy=strategy,
                                 chunk_size=7)
    resident = compute_landscape(_model(), F.cross_entropy, loader, grid, strategy=strategy, chunk_size=7)
    assert streamed.attrs["data"] == "streamed" and resident.attrs["data"] == "resident"
    assert streamed.attrs["n_samples"] == resident.attrs["n_samples"] == 600
    np.testing.assert_allclose(streamed["loss"].values, resident["loss"].values, rtol=1e-6)
    np.testing.assert_allclose(streamed["accuracy"].values, resident["accuracy"].values, atol=1e-12)


def test_a_shuffling_loader_is_read_in_one_frozen_order():
    loader = DataLoader(Synthetic(n=40), batch_size=8, shuffle=True)
    source = prepare_data(loader, budget=1)  # streamed
    assert not source.resident and source.sizes == (8,) * 5
    first, second = list(source), list(source)
    for a, b in zip(first, second):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    caps = prepare_data(loader, budget=1, max_samples=20)
    assert caps.sizes == (8, 8, 4) and sum(len(b[1]) for b in caps) == 20


def test_a_shuffling_loader_is_replayed_in_a_seeded_order_and_touches_no_random_state():
    """The order comes from seed 0 (a loader without a generator) or from a copy of the
    loader's own generator: the same in every process, so a stored run of a shuffling
    loader is found again, and neither torch's global random state nor the loader's
    generator moves."""
    from landscape_widgets.core.data import frozen_order
    from landscape_widgets.runs.store import spec_hash

    loader = DataLoader(Synthetic(n=40), batch_size=8, shuffle=True)
    state = torch.get_rng_state()
    order = frozen_order(loader)
    assert torch.equal(torch.get_rng_state(), state)
    assert sorted(i for b in order for i in b) == list(range(40)) and order != [list(range(i, i + 8))
                                                                                 for i in range(0, 40, 8)]
    torch.manual_seed(123)  # another global state: the same order
    assert frozen_order(DataLoader(Synthetic(n=40), batch_size=8, shuffle=True)) == order
    keys = {spec_hash(_model(), F.cross_entropy, DataLoader(Synthetic(n=40), batch_size=8, shuffle=True),
                      plane(num=3)) for _ in range(2)}
    assert len(keys) == 1
    # a loader with its own generator: the order its next epoch would have, the generator unmoved
    g = torch.Generator().manual_seed(7)
    own = DataLoader(Synthetic(n=40), batch_size=8, shuffle=True, generator=g)
    before = g.get_state()
    replayed = frozen_order(own)
    assert torch.equal(g.get_state(), before)
    assert [list(map(int, b)) for b in own.batch_sampler] == replayed  # the epoch it would have drawn
    # a sequential loader: its order
    assert frozen_order(DataLoader(Synthetic(n=10), batch_size=4)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_data_that_changes_between_reads_is_refused():
    loader = DataLoader(Synthetic(n=40, noisy=True), batch_size=8)
    with pytest.raises(RuntimeError, match="same samples at every point"):
        compute_landscape(_model(), F.cross_entropy, loader, line(num=3), data_budget=1, strategy="loop")


@pytest.mark.parametrize("option, value", [("max_samples", -5), ("max_samples", 0), ("max_batches", 2.5),
                                           ("batch_size", -1), ("max_samples", True)])
def test_caps_that_are_not_positive_integers_are_clear_errors(option, value):
    x, y = torch.randn(300, 3), torch.randint(0, 2, (300,))
    with pytest.raises(ValueError, match=f"{option} must be a positive integer"):
        prepare_data((x, y), "cpu", **{option: value})
    assert prepare_data((x, y), "cpu", **{option: np.int64(7)}).n_samples == (7 if option == "max_samples" else 300)


def test_a_one_shot_iterator_over_the_budget_is_a_clear_error():
    batches = ((torch.randn(10, 32), torch.randint(0, 5, (10,))) for _ in range(4))
    with pytest.raises(ValueError, match="cannot be read again"):
        compute_landscape(_model(), F.cross_entropy, batches, line(num=3), data_budget=100)


PEAK = """
import resource, sys, torch, torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from landscape_widgets import compute_landscape, line

class Lazy(Dataset):
    def __len__(self):
        return 16384
    def __getitem__(self, i):
        return torch.full((2048,), float(i % 7) / 7), i % 3

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(2048, 8), nn.ReLU(), nn.Linear(8, 3))
loader = DataLoader(Lazy(), batch_size=256)
torch.ones(1) @ torch.ones(1)  # warm
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ds = compute_landscape(model, F.cross_entropy, loader, line(num=3), data_budget={budget}, strategy="loop")
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(ds.attrs["data"], ds.attrs["n_samples"], (after - before) * 1024)
"""


@pytest.mark.slow
def test_streamed_peak_memory_stays_far_below_the_data_size():
    data_bytes = 16384 * 2048 * 4  # 128 MiB
    budget = 8 * 2**20  # 16x smaller than the data
    code = textwrap.dedent(PEAK.format(budget=budget))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600)
    mode, n, grown = out.stdout.split()
    assert mode == "streamed" and int(n) == 16384
    assert int(grown) < data_bytes / 3, f"peak memory grew by {int(grown) / 2**20:.0f} MiB"
