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
        m = nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Linear(12, 2))
        opt = torch.optim.Adam(m.parameters(), lr=0.05)
        for _ in range(150):
            opt.zero_grad()
            F.cross_entropy(m(x), y).backward()
            opt.step()
        models.append(m.eval())
    return models, (x, y)
