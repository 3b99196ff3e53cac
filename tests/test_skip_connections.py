"""The skip-connection lesson's claims, measured: sixteen blocks deep, the plain chain's
picture is less convex than the same depth with skips in every seed; at four blocks the
page does not claim the effect; the notebook's words are the measured numbers."""

import pytest
import xarray as xr
from notebook_helpers import shown_markdown

from landscape_widgets.builtin.skip_connections import deep_chain_experiment, deep_text, skip_comparison, skip_text


def _maps(**networks) -> dict[str, xr.Dataset]:
    """Maps with only the attrs the texts read: name=(test accuracy, sharpness, bowl share)."""
    return {name: xr.Dataset(attrs=dict(zip(("test_accuracy", "mean_loss_increase", "slice_convex_fraction"), v)))
            for name, v in networks.items()}


@pytest.mark.parametrize("skip, plain, verdict", [
    ((0.95, 1.2, 0.95), (0.94, 2.5, 0.90), "Both measures favour the skip connections"),
    ((0.95, 3.0, 0.80), (0.94, 2.5, 0.90), "Neither measure favours the skip connections"),
    ((0.95, 1.2, 0.80), (0.94, 2.5, 0.90), "The two measures disagree: sharpness favours the skip connections, "
                                           "the bowl share the plain chain"),
    ((0.95, 3.0, 0.95), (0.94, 2.5, 0.90), "The two measures disagree: the bowl share favours the skip connections, "
                                           "sharpness the plain chain"),
])
def test_the_four_block_text_names_the_networks_and_weighs_both_measures(skip, plain, verdict):
    text = skip_text(_maps(cnn_skip=skip, cnn_plain=plain, cnn_batchnorm=(0.96, 0.8, 0.99)))
    assert text.startswith(f"4 blocks with skips: test accuracy {100 * skip[0]:.1f} %, sharpness {skip[1]:.3g}, "
                           f"bowl-shaped at {100 * skip[2]:.0f} % of its points; 4 plain blocks: ")
    assert verdict in text and "For comparison, 4 plain blocks, BatchNorm: test accuracy 96.0 %" in text
    assert "cnn_" not in text
    assert ("does not show Li et al.'s effect" in text) == (not verdict.startswith("Both"))


def test_the_deep_text_counts_seeds_and_says_when_one_seed_decides_the_mean():
    text = deep_text({0: _maps(deep_skip=(0.9, 3.0, 0.8), deep_plain=(0.8, 30.0, 0.3)),
                      1: _maps(deep_skip=(0.9, 3.0, 0.8), deep_plain=(0.8, 2.0, 0.3)),
                      2: _maps(deep_skip=(0.9, 3.0, 0.8), deep_plain=(0.8, 2.5, 0.9))})
    assert "16 plain blocks: test accuracy 80.0 %, sharpness 11.5, bowl-shaped at 50 %" in text
    assert "flatter one in 1 of 3 seeds and the more bowl-shaped one in 2 of 3" in text
    assert "For sharpness the mean and most seeds point different ways" in text
    assert "On the means, both measures favour the skip connections" in text
    assert "does not favour the skips in every seed" in text and "keep the bowl" not in text


@pytest.mark.slow
def test_the_deep_plain_chain_is_less_convex_than_with_skips_in_every_seed():
    results = deep_chain_experiment(seeds=(0, 1, 2), num=15, max_samples=256)
    for seed, maps in results.items():
        skip, plain = (maps[n].attrs["slice_convex_fraction"] for n in ("deep_skip", "deep_plain"))
        assert plain < skip - 0.1, (seed, plain, skip)
        for name in ("deep_skip", "deep_plain"):  # both trained, far from the start's ln 10 = 2.3
            # (how far SGD gets in 16 blocks differs between machines: 0.01-0.16 with skips)
            assert maps[name].attrs["train_loss"] < 0.3 and maps[name].attrs["test_accuracy"] > 0.9, (seed, name)
    text = deep_text(results)
    assert "the more bowl-shaped one in 3 of 3" in text and "In every seed the skip connections keep the bowl" in text


@pytest.mark.slow
def test_the_four_block_text_follows_the_measurement():
    maps = skip_comparison(num=5, max_samples=64)
    text = skip_text(maps)
    (skip_sharp, skip_bowl), (plain_sharp, plain_bowl) = (
        (maps[n].attrs["mean_loss_increase"], maps[n].attrs["slice_convex_fraction"]) for n in ("cnn_skip", "cnn_plain"))
    assert f"bowl-shaped at {100 * plain_bowl:.0f} %" in text
    assert ("does not show Li et al.'s effect" in text) == (not (skip_sharp < plain_sharp and skip_bowl > plain_bowl))


@pytest.mark.slow
def test_notebook_03_shows_the_computed_text(monkeypatch):
    shown = shown_markdown("03_skip_connections", monkeypatch)
    assert shown == [f"**What you should see:** {skip_text(skip_comparison(num=5, max_samples=200))}",
                     f"**What you should see:** {deep_text(deep_chain_experiment(num=7, max_samples=128))}"]
