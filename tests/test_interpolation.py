import numpy as np
import pytest
import torch
import torch.nn.functional as F

from landscape_widgets.analysis.interpolation import interpolate, interpolate_from_init
from landscape_widgets.core.params import model_at
from landscape_widgets.core.params import flatten_params
from landscape_widgets.builtin.training import TrainConfig, build_model, mean_loss, train
from landscape_widgets.builtin.zoo import moons


@pytest.fixture(scope="module")
def runs():
    data = moons(n=300)
    results = [train(build_model("mlp", data, seed=s, width=16, depth=2), data,
                     TrainConfig(epochs=5, batch_size=32, lr=0.1, seed=s)) for s in (0, 1)]
    return results, data


def test_end_points_and_midpoint_match_the_models(runs):
    (r0, r1), data = runs
    ds = interpolate(r0.model, r1.model, F.cross_entropy, data.train, num=9)
    np.testing.assert_allclose(ds["alpha"].values, np.linspace(-0.5, 1.5, 9))
    loss = ds["loss"].sel
    assert float(loss(alpha=0.0)) == pytest.approx(mean_loss(r0.model, data.train), rel=1e-5)
    assert float(loss(alpha=1.0)) == pytest.approx(mean_loss(r1.model, data.train), rel=1e-5)
    mid = model_at(r0.model, 0.5 * (flatten_params(r0.model) + flatten_params(r1.model)))
    assert float(loss(alpha=0.5)) == pytest.approx(mean_loss(mid, data.train), rel=1e-5)
    # beyond the segment too: a = 1.5 is theta1 + 0.5 (theta1 - theta0)
    far = model_at(r0.model, 1.5 * flatten_params(r1.model) - 0.5 * flatten_params(r0.model))
    assert float(loss(alpha=1.5)) == pytest.approx(mean_loss(far, data.train), rel=1e-4)
    assert ds.attrs["complete"] == 1


def test_from_initialization_goes_downhill_to_the_solution(runs):
    (r0, _), data = runs
    ds = interpolate_from_init(r0.model, r0.trajectory[0], F.cross_entropy, data.train, start=0.0, stop=1.0, num=5)
    init = model_at(r0.model, r0.trajectory[0])
    assert float(ds["loss"][0]) == pytest.approx(mean_loss(init, data.train), rel=1e-5)
    assert float(ds["loss"][-1]) < float(ds["loss"][0])
    assert float(ds["accuracy"][-1]) > 0.8


def test_model_at_copies_and_leaves_the_original_alone(runs):
    (r0, _), _ = runs
    before = flatten_params(r0.model)
    clone = model_at(r0.model, torch.zeros_like(before))
    assert torch.count_nonzero(flatten_params(clone)) == 0
    assert torch.equal(flatten_params(r0.model), before)


def test_different_architectures_are_rejected(runs):
    (r0, _), data = runs
    other = build_model("mlp", data, width=8, depth=2)
    with pytest.raises(ValueError):
        interpolate(r0.model, other, F.cross_entropy, data.train)


def test_widget_draws_the_same_curve(runs):
    from landscape_widgets.widgets.interpolation import interpolation_panel

    (r0, r1), data = runs
    panel = interpolation_panel(r0.model, r1.model, F.cross_entropy, data.train, num=7,
                                labels=("A", "B"))
    assert panel.wait(120) and panel.runner.error is None
    expected = interpolate(r0.model, r1.model, F.cross_entropy, data.train, num=7)
    np.testing.assert_allclose(panel.result["loss"].values, expected["loss"].values, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(panel.view.loss_line.y), expected["loss"].values, rtol=1e-5)
    assert "A" in panel.view.x_axis.label and "B" in panel.view.x_axis.label
    panel.scale.value = "log"  # redrawn at once from the result, nothing recomputed
    np.testing.assert_allclose(np.asarray(panel.view.loss_line.y), np.log10(expected["loss"].values), rtol=1e-5)
    assert "log10" in panel.view.loss_axis.label
