"""Named, disk-cached demo models for the paper's experiments.

Each preset is a (model kind, model arguments, training config) triple; :func:`preset`
trains it once with :func:`landscape_widgets.builtin.training.trained` and loads it from the
cache afterwards. Pairs differ in exactly one setting:

* ``small_batch`` / ``large_batch``: MLP on digits, batch 32 vs 1024, both trained to
  near-zero training loss (Keskar et al. 2017; Li et al. 2018, Section 6).
* ``no_weight_decay`` / ``weight_decay``: the small-batch MLP without / with L2 5e-3.
* ``cnn_skip`` / ``cnn_plain``: the same-depth CNN with / without identity skips
  (Li et al. 2018, Section 5).
* ``cnn_batchnorm``: the plain CNN with BatchNorm.
* ``deep_skip`` / ``deep_plain``: 16 blocks with BatchNorm, with / without identity skips
  (deep enough for the plain chain's landscape to lose its convex bowl, Li et al. 2018,
  Section 5).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from .training import CNN_CONFIG, TrainConfig, TrainResult, trained
from .zoo import Dataset


@dataclass(frozen=True)
class Preset:
    """A built-in model recipe: model kind and arguments, dataset and training config."""

    kind: str
    config: TrainConfig
    model_kwargs: dict = field(default_factory=dict)
    dataset: str = "digits"
    description: str = ""


_SMALL_BATCH = TrainConfig(epochs=20, batch_size=32, lr=0.05)
_DEEP = TrainConfig(epochs=20, batch_size=64, lr=1e-3, optimizer="adam")

PRESETS: dict[str, Preset] = {
    "small_batch": Preset("mlp", _SMALL_BATCH, description="MLP, SGD batch 32, 20 epochs"),
    "large_batch": Preset(
        "mlp", TrainConfig(epochs=200, batch_size=1024, lr=0.1),
        description="MLP, SGD batch 1024, 200 epochs (trained to the same near-zero loss)",
    ),
    "no_weight_decay": Preset("mlp", _SMALL_BATCH, description="MLP, batch 32, no weight decay"),
    "weight_decay": Preset(
        "mlp", replace(_SMALL_BATCH, weight_decay=5e-3), description="MLP, batch 32, weight decay 5e-3"
    ),
    "cnn_skip": Preset("cnn", CNN_CONFIG, {"skip": True}, description="CNN, 4 blocks with identity skips"),
    "cnn_plain": Preset("cnn", CNN_CONFIG, {"skip": False}, description="CNN, 4 plain blocks (same depth)"),
    "cnn_batchnorm": Preset(
        "cnn", CNN_CONFIG, {"skip": False, "batchnorm": True}, description="CNN, 4 plain blocks with BatchNorm"
    ),
    "deep_skip": Preset("cnn", _DEEP, {"skip": True, "batchnorm": True, "depth": 16},
                        description="CNN, 16 blocks with BatchNorm and identity skips"),
    "deep_plain": Preset("cnn", _DEEP, {"skip": False, "batchnorm": True, "depth": 16},
                         description="CNN, 16 plain blocks with BatchNorm (same depth)"),
}

PAIRS: dict[str, tuple[str, str]] = {
    "batch_size": ("small_batch", "large_batch"),
    "weight_decay": ("no_weight_decay", "weight_decay"),
    "skip_connections": ("cnn_skip", "cnn_plain"),
    "batchnorm": ("cnn_batchnorm", "cnn_plain"),
    "deep_skip_connections": ("deep_skip", "deep_plain"),
}


def preset(name: str, seed: int = 0, use_cache: bool = True) -> tuple[TrainResult, Dataset]:
    """Train (or load from the cache) the built-in model ``name``.

    Parameters
    ----------
    name : str
        One of :data:`PRESETS`.
    seed : int
        Training seed (initialization and minibatch order).
    use_cache : bool
        Load from / save to the disk cache (see :func:`landscape_widgets.runs.paths.cache_dir`).

    Returns
    -------
    (TrainResult, Dataset)
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; built in: {sorted(PRESETS)}")
    p = PRESETS[name]
    return trained(p.kind, p.dataset, replace(p.config, seed=seed), p.model_kwargs, use_cache)


def preset_pair(pair: str, seed: int = 0) -> dict[str, tuple[TrainResult, Dataset]]:
    """Both models of a named pair (see :data:`PAIRS`), keyed by preset name."""
    if pair not in PAIRS:
        raise ValueError(f"unknown pair {pair!r}; built in: {sorted(PAIRS)}")
    return {name: preset(name, seed) for name in PAIRS[pair]}


def small_mode() -> bool:
    """True when ``$LANDSCAPE_WIDGETS_SMALL`` is set (to anything but ``""``/``0``):
    notebooks then use tiny grids so CI runs them in seconds."""
    return os.environ.get("LANDSCAPE_WIDGETS_SMALL", "") not in ("", "0")


def demo_size(full: int, small: int) -> int:
    """``small`` in :func:`small_mode`, else ``full`` (grid points, samples, ...)."""
    return small if small_mode() else full
