"""Weight norms along training (Fort & Jastrzebski's radial structure)."""

import numpy as np
import pytest
import torch

from landscape_widgets.analysis.radial import weight_norms
from landscape_widgets.builtin.training import TrainConfig, trained


def test_weight_norms_of_a_known_path():
    path = [torch.tensor([3.0, 4.0]), torch.tensor([6.0, 8.0]), torch.tensor([0.0, 0.0])]
    ds = weight_norms(path, per_epoch=2)
    np.testing.assert_allclose(ds["norm"].values, [5.0, 10.0, 0.0])
    np.testing.assert_allclose(ds["distance_from_init"].values, [0.0, 5.0, 5.0])
    np.testing.assert_allclose(ds["epoch"].values, [0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="at least one checkpoint"):
        weight_norms(path[:1])


def test_weights_grow_along_training_and_weight_decay_keeps_them_smaller():
    plain, _ = trained("mlp", "digits", TrainConfig(epochs=4))
    decayed, _ = trained("mlp", "digits", TrainConfig(epochs=4, weight_decay=5e-3))
    a, b = weight_norms(plain.trajectory), weight_norms(decayed.trajectory)
    assert float(a["norm"][-1]) > float(a["norm"][0])  # the radial drift outward
    assert float(b["norm"][-1]) < float(a["norm"][-1])
    assert float(a["norm"][0]) == pytest.approx(float(b["norm"][0]))  # the same initialization
