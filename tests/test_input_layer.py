"""The loop computes a data-reading Linear/Conv layer once per direction: same values."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import landscape_widgets.core.evaluation as evaluation
from landscape_widgets.core.directions import random_directions
from landscape_widgets.core.evaluation import PointEvaluator
from landscape_widgets.core.input_layer import ADD_TERMS, find_input_layer
from landscape_widgets.core.params import flatten_params, model_at


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
    # an in-place activation on the layer's output must not change the cache
    "inplace-relu": (lambda: nn.Sequential(nn.Linear(40, 16), nn.ReLU(inplace=True), nn.Linear(16, 5)), (40,), "0"),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("n_dirs", [1, 2, ADD_TERMS, ADD_TERMS + 2])  # term by term, then one product
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
    a, b = cached.evaluate(coeffs, "loop"), plain.evaluate(coeffs, "loop")
    assert cached.cached_input_layer().module is cached.objective.model.get_submodule(layer)
    assert plain.cached_input_layer() is None
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-5)
    np.testing.assert_array_equal(a.accuracy, b.accuracy)
    # only the layer's forward was stood in for, and only while the loop ran
    module = cached.objective.model.get_submodule(layer)
    assert type(module) is type(model.get_submodule(layer)) and "forward" not in vars(module)


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
    x = torch.randn(4, n_in)
    assert find_input_layer(model, lambda: model(x), [x]) is None, why
    ev = PointEvaluator(model, F.cross_entropy, (torch.randn(20, n_in), torch.randint(0, 5, (20,))),
                        random_directions(model, 2, seed=0), device="cpu")
    assert ev.cached_input_layer() is None


def test_input_layer_cache_respects_its_memory_cap(monkeypatch):
    monkeypatch.setattr(evaluation, "INPUT_CACHE_BYTES", 1000)
    model = CASES["custom-forward"][0]()
    data = (torch.randn(50, 40), torch.randint(0, 5, (50,)))  # 3 x 16 x 50 floats > 1000 B
    ev = PointEvaluator(model, F.cross_entropy, data, random_directions(model, 2, seed=0), device="cpu")
    assert ev.cached_input_layer() is None
    assert np.isfinite(ev.evaluate([[0.1, 0.2]], "loop").loss).all()


class TiedReadout(nn.Module):
    """The data-reading layer's weight is read again directly (a tied decoder)."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(40, 16)

    def forward(self, x):
        h = torch.tanh(self.inp(x))
        return F.linear(h, self.inp.weight[:5, :16])  # reads inp.weight itself


def test_a_model_that_reads_the_cached_layers_weight_gets_the_points_weight():
    torch.manual_seed(0)
    model = TiedReadout()
    x, y = torch.randn(30, 40), torch.randint(0, 5, (30,))
    dirs = random_directions(model, 2, seed=4)
    coeffs = np.array([[0.0, 0.0], [0.5, -0.3], [-1.0, 0.8]])
    ev = PointEvaluator(model, F.cross_entropy, (x, y), dirs, device="cpu")
    got = ev.evaluate(coeffs, "loop").loss
    assert ev.cached_input_layer() is not None  # the cache is active on this model
    theta = flatten_params(model)
    for c, value in zip(coeffs, got):  # independent perturb-and-forward
        net = model_at(model, theta + c[0] * dirs[0] + c[1] * dirs[1])
        with torch.no_grad():
            assert value == pytest.approx(float(F.cross_entropy(net(x), y)), rel=1e-5)


def test_the_cache_covers_a_layer_whose_parameters_only_partly_move():
    torch.manual_seed(0)
    model = CASES["custom-forward"][0]()
    x, y = torch.randn(30, 40), torch.randint(0, 5, (30,))
    dirs = random_directions(model, 1, seed=1, params=["inp.weight", "out.*"])
    coeffs = np.array([[0.7], [-0.4]])
    cached = PointEvaluator(model, F.cross_entropy, (x, y), dirs, params=["inp.weight", "out.*"])
    plain = PointEvaluator(model, F.cross_entropy, (x, y), dirs, params=["inp.weight", "out.*"],
                           cache_input_layer=False)
    assert cached.cached_input_layer() is not None
    np.testing.assert_allclose(cached.evaluate(coeffs, "loop").loss, plain.evaluate(coeffs, "loop").loss,
                               rtol=1e-6)


def test_streamed_data_uses_the_cache_one_batch_at_a_time():
    """Data read again at every pass: each batch's outputs are computed at each pass and
    dropped for the next batch, and the values equal the plain forward's."""
    make, shape, layer = CASES["sequential-mlp"]
    torch.manual_seed(0)
    model = make()
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(50, *shape, generator=g), torch.randint(0, 5, (50,), generator=g)
    loader = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
    dirs = random_directions(model, 2, seed=2)
    coeffs = np.random.default_rng(1).uniform(-1, 1, (9, 2))
    cached = PointEvaluator(model, F.cross_entropy, loader, dirs, data_budget=1)
    plain = PointEvaluator(model, F.cross_entropy, loader, dirs, data_budget=1, cache_input_layer=False)
    assert not cached.objective.data.resident
    first = cached.evaluate(coeffs[:4], "loop")
    cache = cached.cached_input_layer()
    assert cache is not None and not cache.keep and list(cache._outputs) == [3]  # the last batch only
    kept = cache._outputs[3][0]
    second = cached.evaluate(coeffs[4:], "loop")
    assert cache._outputs[3][0] is not kept  # read again, so computed again
    reference = plain.evaluate(coeffs, "loop")
    np.testing.assert_allclose(np.concatenate([first.loss, second.loss]), reference.loss, rtol=1e-5)
    np.testing.assert_allclose(np.concatenate([first.accuracy, second.accuracy]), reference.accuracy, atol=1e-12)
