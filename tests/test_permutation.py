"""Permutation symmetry and weight matching (Ainsworth et al. 2022)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape_widgets.analysis.connectivity import linear_path
from landscape_widgets.analysis.permutation import (
    align, layer_chain, permute_units, random_permutations, weight_matching,
)
from landscape_widgets.builtin.training import TrainConfig, trained
from landscape_widgets.builtin.zoo import cnn, mlp


def conv_then_linear():
    """Conv -> BatchNorm -> flatten -> Linear: the Linear reads each channel's 16 positions."""
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(6 * 16, 12), nn.Tanh(), nn.Linear(12, 3))
    model.train()
    with torch.no_grad():  # give the BatchNorm non-trivial running statistics
        model(torch.randn(32, 1, 8, 8) * 2 + 1)
    return model.eval(), torch.randn(7, 1, 8, 8)


@pytest.mark.parametrize("case", ["mlp", "cnn_batchnorm", "conv_then_linear"])
def test_a_permuted_copy_computes_the_same_function(case):
    if case == "mlp":
        torch.manual_seed(0)
        model, x = mlp(in_features=10, width=20, depth=3, n_classes=4).eval(), torch.randn(9, 10)
    elif case == "cnn_batchnorm":
        torch.manual_seed(1)
        model, x = cnn(channels=8, depth=2, batchnorm=True).eval(), torch.randn(5, 1, 8, 8)
    else:
        model, x = conv_then_linear()
    perms = random_permutations(model, seed=4)
    assert any((p != np.arange(len(p))).any() for p in perms)
    copy = permute_units(model, perms)
    with torch.no_grad():
        torch.testing.assert_close(copy(x), model(x), atol=1e-6, rtol=1e-6)
        # the weights did move: the copy is a different point of parameter space
        moved = max(float((a - b).abs().max()) for a, b in zip(model.parameters(), copy.parameters()))
    assert moved > 1e-2


def test_weight_matching_recovers_a_known_permutation():
    model, _ = conv_then_linear()
    shuffled = permute_units(model, random_permutations(model, seed=7))
    aligned = permute_units(shuffled, weight_matching(model, shuffled))
    for (name, a), b in zip(model.state_dict().items(), aligned.state_dict().values()):
        torch.testing.assert_close(b, a, atol=0, rtol=0, msg=name)


def test_linear_path_to_a_permuted_copy_crosses_a_barrier():
    result, dataset = trained("mlp", "digits", TrainConfig(seed=0))
    copy = permute_units(result.model, random_permutations(result.model, seed=0))
    ds = linear_path(result.model, copy, F.cross_entropy, dataset.train, num=11)
    ends = ds["loss"].values[[0, -1]]
    np.testing.assert_allclose(ends[1], ends[0], rtol=1e-4)  # the same function at both ends
    assert ds.attrs["barrier"] > 10 * ends[0]


@pytest.mark.parametrize("seeds", [(0, 1), (2, 3), (1, 2)])
def test_weight_matching_halves_the_barrier_between_independent_mlps(seeds):
    (a, dataset), (b, _) = (trained("mlp", "digits", TrainConfig(seed=s)) for s in seeds)
    before = linear_path(a.model, b.model, F.cross_entropy, dataset.train, num=21).attrs["barrier"]
    after = linear_path(a.model, align(a.model, b.model), F.cross_entropy, dataset.train, num=21).attrs["barrier"]
    assert before > 0.1
    assert after < 0.5 * before


def test_unsupported_models_and_permutations_are_refused():
    with pytest.raises(ValueError, match="LayerNorm"):
        layer_chain(nn.Sequential(nn.Linear(4, 5), nn.LayerNorm(5), nn.Linear(5, 2)))
    with pytest.raises(ValueError, match="at least two"):
        layer_chain(nn.Linear(4, 2))
    with pytest.raises(ValueError, match="do not form a chain"):
        layer_chain(nn.Sequential(nn.Linear(4, 5), nn.Linear(3, 2)))
    model = mlp(in_features=4, width=5, depth=1, n_classes=2)
    with pytest.raises(ValueError, match="one permutation per hidden layer"):
        permute_units(model, [])
    with pytest.raises(ValueError, match="permutation of 0..4"):
        permute_units(model, [np.array([0, 0, 1, 2, 3])])
    with pytest.raises(ValueError, match="same architecture"):
        weight_matching(model, mlp(in_features=4, width=6, depth=1, n_classes=2))
