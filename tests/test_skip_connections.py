"""The skip-connection lesson's claims, measured: sixteen blocks deep, the plain chain's
picture is less convex than the same depth with skips in every seed; at four blocks the
page does not claim the effect; the notebook's words are the measured numbers."""

import pytest
from notebook_helpers import shown_markdown

from landscape_widgets.builtin.skip_connections import deep_chain_experiment, deep_text, skip_comparison, skip_text

pytestmark = pytest.mark.slow


def test_the_deep_plain_chain_is_less_convex_than_with_skips_in_every_seed():
    results = deep_chain_experiment(seeds=(0, 1, 2), num=15, max_samples=256)
    for seed, maps in results.items():
        skip, plain = (maps[n].attrs["slice_convex_fraction"] for n in ("deep_skip", "deep_plain"))
        assert plain < skip - 0.1, (seed, plain, skip)
        for name in ("deep_skip", "deep_plain"):  # both trained, far from the start's ln 10 = 2.3
            # (how far SGD gets in 16 blocks differs between machines: 0.01-0.16 with skips)
            assert maps[name].attrs["train_loss"] < 0.3 and maps[name].attrs["test_accuracy"] > 0.9, (seed, name)
    text = deep_text(results)
    assert "3 of 3 seeds" in text and "keep the bowl" in text


def test_the_four_block_text_follows_the_measurement():
    maps = skip_comparison(num=5, max_samples=64)
    text = skip_text(maps)
    skip, plain = (maps[n].attrs["slice_convex_fraction"] for n in ("cnn_skip", "cnn_plain"))
    assert f"{100 * plain:.0f} %" in text
    assert ("does not show their effect" in text) == (plain >= skip)


def test_notebook_03_shows_the_computed_text(monkeypatch):
    shown = shown_markdown("03_skip_connections", monkeypatch)
    assert shown == [f"**What you should see:** {skip_text(skip_comparison(num=5, max_samples=200))}",
                     f"**What you should see:** {deep_text(deep_chain_experiment(num=7, max_samples=128))}"]
