"""The loop computes a data-reading Linear/Conv layer once per direction: same values."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import landscape_widgets.evaluation as evaluation
from landscape_widgets.directions import random_directions
from landscape_widgets.evaluation import PointEvaluator
from landscape_widgets.input_layer import find_input_layer


class Wide(nn.Module):
    """Custom forward; its first layer (40 inputs) reads the data."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(40, 16)
        self.out = nn.Linear(16, 5)

    def forward(self, x):
        return self.out(torch.tanh(self.inp(x)))


class Scaled(Wide):
    """The first layer reads ``2 x``, not the data itself."""

    def forward(self, x):
        return self.out(torch.tanh(self.inp(2 * x)))


class Twice(Wide):
    """The first layer is applied twice."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(40, 40)
        self.out = nn.Linear(40, 5)

    def forward(self, x):
        return self.out(torch.tanh(self.inp(torch.tanh(self.inp(x)))))


def _conv():
    return nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 36, 5))


CASES = {
    # an in-place ReLU on the layer's output must not alter the cache
    "sequential-mlp": (lambda: nn.Sequential(nn.Linear(40, 16), nn.ReLU(inplace=True), nn.Linear(16, 5)),
                       (40,), "0"),
    "custom-forward": (Wide, (40,), "inp"),
    "conv-fan-in-36": (_conv, (4, 6, 6), "0"),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("n_dirs", [1, 2, 3])
def test_cached_input_layer_gives_the_plain_forward_values(case, n_dirs):
    make, shape, layer = CASES[case]
    torch.manual_seed(0)
    model = make()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(50, *shape, generator=g), torch.randint(0, 5, (50,), generator=g)
    loader = DataLoader(TensorDataset(x, y), batch_size=16)  # 4 batches, the last short
    dirs = random_directions(model, n_dirs, seed=2)
    coeffs = np.random.default_rng(0).uniform(-1, 1, (7, n_dirs))
    cached = PointEvaluator(model, F.cross_entropy, loader, dirs, device="cpu")
    plain = PointEvaluator(model, F.cross_entropy, loader, dirs, device="cpu", cache_input_layer=False)
    a, b = cached.evaluate_loop(coeffs), plain.evaluate_loop(coeffs)
    assert cached.cached_input_layer().name == layer
    assert plain.cached_input_layer() is None
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-5)
    np.testing.assert_array_equal(a.accuracy, b.accuracy)
    # the stand-in is gone afterwards: the model is the caller's architecture again
    assert type(cached.model.get_submodule(layer)) is type(model.get_submodule(layer))


@pytest.mark.parametrize(
    "make, why",
    [(Scaled, "reads 2 x"), (Twice, "called twice"),
     (lambda: nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 5)), "8 inputs: too cheap"),
     (lambda: nn.Linear(40, 5), "the model is the layer")],
)
def test_no_input_layer_is_cached_where_the_identity_does_not_hold(make, why):
    torch.manual_seed(0)
    model = make()
    n_in = next(model.parameters()).shape[1]
    assert find_input_layer(model, torch.randn(4, n_in)) is None, why
    ev = PointEvaluator(model, F.cross_entropy, (torch.randn(20, n_in), torch.randint(0, 5, (20,))),
                        random_directions(model, 2, seed=0), device="cpu")
    assert ev.cached_input_layer() is None


def test_input_layer_cache_respects_its_memory_cap(monkeypatch):
    monkeypatch.setattr(evaluation, "INPUT_CACHE_BYTES", 1000)
    model = CASES["custom-forward"][0]()
    data = (torch.randn(50, 40), torch.randint(0, 5, (50,)))  # 3 x 16 x 50 floats > 1000 B
    ev = PointEvaluator(model, F.cross_entropy, data, random_directions(model, 2, seed=0), device="cpu")
    assert ev.cached_input_layer() is None
    assert np.isfinite(ev.evaluate_loop([[0.1, 0.2]]).loss).all()
