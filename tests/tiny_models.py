"""Small trained classifiers for tests that need a few independent optima quickly."""

import torch
import torch.nn.functional as F
from torch import nn


def trained_mlps(n: int = 3, seed0: int = 0):
    """``n`` MLPs 5-12-2 trained from seeds ``seed0, ...`` on one generated data set (120 samples)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 5, generator=g)
    y = (x[:, 0] + x[:, 1] ** 2 > 0.5).long()
    models = []
    for s in range(seed0, seed0 + n):
        torch.manual_seed(s)
        models.append(fit(nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Linear(12, 2)), x, y, 150, 0.05))
    return models, (x, y)


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float) -> nn.Module:
    """``model`` after ``steps`` full-batch Adam steps on cross-entropy, in eval mode."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()
