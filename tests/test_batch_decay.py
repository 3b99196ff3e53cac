"""Li et al. 2018, Section 6, reproduced: small vs large batch, with and without weight
decay, along raw and filter-normalized directions; the notebook's words are the measured
numbers."""

import pytest
from notebook_helpers import shown_markdown
import torch
from torch import nn

from landscape_widgets.analysis.comparison import raw_range_scale
from landscape_widgets.builtin.batch_decay import (
    WEIGHT_DECAYS, batch_decay_experiment, batch_decay_findings, batch_decay_text,
)
from landscape_widgets.core.directions import random_directions
from landscape_widgets.core.grids import plane

WD = WEIGHT_DECAYS[-1]


@pytest.fixture(scope="module")
def experiment():
    return batch_decay_experiment(seeds=(0, 1, 2))


def test_the_papers_findings_hold_over_three_seeds(experiment):
    assert batch_decay_findings(experiment) == dict.fromkeys(batch_decay_findings(experiment), True)
    small, large = experiment.sel(batch="small"), experiment.sel(batch="large")
    # small batch generalizes better, with and without weight decay (mean over seeds)
    assert (small["test_accuracy"].mean("seed") > large["test_accuracy"].mean("seed")).all()
    # with weight decay: sharper along raw directions, flatter along filter-normalized ones, in every seed
    raw, filt = ({"weight_decay": WD, "normalization": n} for n in ("none", "filter"))
    assert (small["sharpness"].sel(raw) > large["sharpness"].sel(raw)).all()
    assert (small["sharpness"].sel(filt) < large["sharpness"].sel(filt)).all()
    # why: more updates, so weight decay leaves the small-batch weights smaller
    assert int(experiment["updates"].sel(batch="small")) > 10 * int(experiment["updates"].sel(batch="large"))
    assert (small["weight_norm"].sel(weight_decay=WD) < large["weight_norm"].sel(weight_decay=WD)).all()
    assert experiment.attrs["half_range_none"] < 0.2 * experiment.attrs["half_range_filter"]


def test_the_text_states_the_measured_numbers_and_follows_the_findings(experiment):
    text = batch_decay_text(experiment)
    mean = experiment.mean("seed")
    sharp = mean["sharpness"].sel(weight_decay=WD)
    assert f"{sharp.sel(batch='small', normalization='none').item():.3f}" in text["none"]
    assert f"{sharp.sel(batch='large', normalization='filter').item():.2f}" in text["filter"]
    assert f"{100 * mean['test_accuracy'].sel(batch='large', weight_decay=0.0).item():.1f} %" in text["models"]
    assert "looks sharper" in text["none"] and "3 of 3 seeds" in text["filter"]
    # a finding that fails is said to fail, not claimed
    flipped = experiment.copy(deep=True)
    flipped["sharpness"].loc[{"batch": "small", "normalization": "none"}] = 0.0
    assert "does not look sharper" in batch_decay_text(flipped)["none"]


def test_raw_range_scale_gives_the_smallest_models_weight_length():
    torch.manual_seed(0)
    big, small = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 5)), nn.Linear(20, 5)
    with torch.no_grad():
        for p in big.parameters():
            p.mul_(10.0)
    scale = raw_range_scale([big, small], seed=3)
    d = random_directions(small, 1, 3, normalization="none")[0]
    ratio = float(small.weight.detach().norm() / d.norm())  # the bias gets no raw direction ("ignore")
    assert scale <= ratio < 2 * scale
    assert float(f"{scale:.1g}") == scale  # one significant digit: round ticks
    assert raw_range_scale([small], seed=3) == scale  # the smaller weights decide
    with pytest.raises(ValueError, match="at least one model"):
        raw_range_scale([])


def test_grid_scaled():
    grid = plane((-1, 1), num=5).scaled(0.07)
    assert grid.to_dict() == {"alpha": [-0.07, 0.07, 5], "beta": [-0.07, 0.07, 5]}
    with pytest.raises(ValueError, match="> 0"):
        plane().scaled(0)


@pytest.mark.slow
def test_notebook_02_shows_the_computed_text(experiment, monkeypatch):
    """The rendered "what you should see" lines are batch_decay_text of the same experiment."""
    shown = shown_markdown("02_filter_normalization_and_batch_size", monkeypatch)
    small = batch_decay_experiment(direction_seeds=(0,), num=5)
    expected = batch_decay_text(small)
    assert shown == [f"**What you should see:** {expected[k]}" for k in ("models", "none", "filter")]
