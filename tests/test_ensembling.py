"""SWA vs prediction averaging along cyclic-LR runs of the digits MLP."""

import numpy as np
import pytest
import torch
from torch import nn

from landscape_widgets.analysis.ensembling import compare_averaging, cyclic_lr_experiment, prediction_average, weight_average
from landscape_widgets.core.params import flatten_params
from landscape_widgets.builtin.training import TrainConfig, trained


def test_high_peak_lr_breaks_weight_averaging_but_not_prediction_averaging():
    result, data = trained("mlp", "digits", TrainConfig(seed=0))
    ds = cyclic_lr_experiment(result.model, data.train, data.test, lr_maxes=(0.02, 0.4), cycles=4, epochs_per_cycle=4)
    low, high = ds.sel(lr_max=0.02), ds.sel(lr_max=0.4)
    # low peak LR: the snapshots stay together, both averages agree
    assert abs(float(low["loss"].sel(member="swa")) - float(low["loss"].sel(member="ensemble"))) < 0.005
    # high peak LR: snapshots far apart; the weight average is worse than the ensemble
    assert float(high["spread"]) > 10 * float(low["spread"])
    assert float(high["loss"].sel(member="swa")) > float(high["loss"].sel(member="ensemble")) + 0.02
    assert float(high["accuracy"].sel(member="ensemble")) > float(high["accuracy"].sel(member="swa"))


def test_averages_of_identical_snapshots_are_the_snapshot():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
    x, y = torch.randn(30, 4), torch.randint(0, 3, (30,))
    w = flatten_params(model)
    ds = compare_averaging(model, [w, w.clone()], (x, y))
    np.testing.assert_allclose(ds["loss"].values, ds["loss"].values[0], rtol=1e-5)
    assert ds.attrs["spread"] == 0.0
    torch.testing.assert_close(flatten_params(weight_average(model, [w, 3 * w])), 2 * w)
    probs = prediction_average(model, [w], x)
    torch.testing.assert_close(probs.sum(-1), torch.ones(30))


def test_batchnorm_weight_average_needs_data():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    with pytest.raises(ValueError, match="bn_data"):
        weight_average(model, [flatten_params(model)])
