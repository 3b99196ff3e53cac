"""The curvature lesson's claim, measured: a network's 2-D picture can look like a bowl
while its full loss is not convex (the demo MLP at its initialization), and the trained
network is nearly convex; the notebook's words are the measured numbers."""

import numpy as np
import pytest
from notebook_helpers import shown_markdown

from landscape_widgets.analysis.curvature import CONVEX_THRESHOLD
from landscape_widgets.builtin.curvature_pair import NAMES, curvature_pair, curvature_pair_text

#: The notebook's small mode.
SMALL = {"num": 3, "slice_num": 5, "steps": 5, "max_samples": 256}

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_trained_is_nearly_convex_and_the_initialization_is_not(seed):
    pair = curvature_pair(num=5, slice_num=11, steps=20, max_samples=512, seed=seed)
    trained, initial = (pair[name] for name in NAMES)
    # trained: nearly convex everywhere on the plane, and its picture a bowl
    assert float(trained["convexity"].max()) < CONVEX_THRESHOLD
    assert trained.attrs["slice_convex_fraction"] > 0.9
    # initialization: the full loss curves down in some direction at every point, strongly on most
    assert float(initial["convexity"].median()) > CONVEX_THRESHOLD
    assert np.all(initial["lambda_min"].values < 0)
    # the words follow the numbers: the "both look like bowls" sentence only where the picture does
    bowl = initial.attrs["slice_convex_fraction"] >= 0.5
    assert bowl == ("only the trained network sits in a nearly convex basin" in curvature_pair_text(pair))
    if seed == 0:  # the lesson's network: its initial picture curves up on most of the plane
        assert bowl


def test_notebook_06_shows_the_computed_text(monkeypatch):
    shown = shown_markdown("06_curvature", monkeypatch)
    assert shown[0] == f"**What you should see:** {curvature_pair_text(curvature_pair(**SMALL))}"
