"""The curvature lesson's claim, measured: a network's 2-D picture can look like a bowl
while its full loss is not convex (the demo MLP at its initialization), and the trained
network is nearly convex; the notebook's words are the measured numbers."""

import numpy as np
import pytest
import xarray as xr
from notebook_helpers import shown_markdown

from landscape_widgets.analysis.curvature import CONVEX_THRESHOLD
from landscape_widgets.builtin.curvature_pair import NAMES, curvature_pair, curvature_pair_text

#: The notebook's small mode.
SMALL = {"num": 3, "slice_num": 5, "steps": 5, "max_samples": 256}



def _map(ratios, slice_fraction: float) -> xr.Dataset:
    """A convexity map with only what the text reads."""
    return xr.Dataset({"convexity": (("alpha", "beta"), np.reshape(ratios, (3, 3)))},
                      attrs={"slice_convex_fraction": slice_fraction})


@pytest.mark.parametrize("initial_slice, initial_ratios, bowl, convex", [
    (0.8, np.linspace(0.2, 0.9, 9), "looks", False),         # the lesson's case: a bowl, not convex
    (0.3, np.linspace(0.2, 0.9, 9), "does not look", False),  # no bowl either
    (0.8, np.linspace(0.0, 0.3, 9), "looks", True),          # median 0.15: nearly convex after all
])
def test_the_text_decides_bowl_and_convexity_from_the_numbers(initial_slice, initial_ratios, bowl, convex):
    text = curvature_pair_text({"trained": _map(np.full(9, 0.05), 0.98),
                                "at initialization": _map(initial_ratios, initial_slice)})
    above = np.mean(initial_ratios > CONVEX_THRESHOLD)
    assert (f"The network at initialization: the picture curves up in every direction of the plane at "
            f"{100 * initial_slice:.0f} % of its points; the full loss has |λmin/λmax| from {initial_ratios.min():.2f} "
            f"to {initial_ratios.max():.2f} (median {np.median(initial_ratios):.2f}), above {CONVEX_THRESHOLD:g} (red) "
            f"on {100 * above:.0f} % of the map.") in text
    assert "the picture of the trained network looks like a bowl and its full loss is nearly convex" in text
    assert (f"the picture of the network at initialization {bowl} like a bowl and its full loss is "
            + ("nearly convex" if convex else "not nearly convex over most of the map: it curves down")) in text
    assert ("only the trained network sits in a nearly convex basin" in text) == (bowl == "looks" and not convex)


@pytest.mark.slow
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


@pytest.mark.slow
def test_notebook_06_shows_the_computed_text(monkeypatch):
    shown = shown_markdown("06_curvature", monkeypatch)
    assert shown[0] == f"**What you should see:** {curvature_pair_text(curvature_pair(**SMALL))}"
