"""A ready explorer on a built-in model: an MLP trained on scikit-learn's digits."""

from __future__ import annotations

import torch.nn.functional as F

from ..builtin.training import TrainConfig, trained
from .explorer import LandscapeExplorer

#: Training of the demo model (about 3 s on a CPU, then cached on disk).
DEMO_CONFIG = TrainConfig(epochs=20)


def demo(view: str = "2d", epochs: int = DEMO_CONFIG.epochs, max_samples: int | None = None, **kwargs):
    """A :class:`~landscape_widgets.widgets.explorer.LandscapeExplorer` on the digits MLP.

    The model (64-128-128-10 MLP, ~96 % test accuracy) is trained on first use and
    cached (see :func:`landscape_widgets.builtin.training.trained`); the landscape is the
    cross-entropy over the digits training set.

    Parameters
    ----------
    view : {"1d", "2d", "3d"}
        The view shown first.
    epochs : int
        Training epochs of the demo model.
    max_samples : int, optional
        Average the loss over fewer training samples (faster, noisier).
    **kwargs
        Passed to ``LandscapeExplorer`` (``seed``, ``normalization``, ``bias_bn``, ``grids``,
        ``metric``...).
    """
    result, dataset = trained("mlp", "digits", TrainConfig(**{**DEMO_CONFIG.__dict__, "epochs": epochs}))
    return LandscapeExplorer(result.model, F.cross_entropy, dataset.train, view=view,
                             max_samples=max_samples, **kwargs)
