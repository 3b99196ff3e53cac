"""Built-in data and models that need no download: scikit-learn digits, moons, spirals;
MLPs and small CNNs with or without skip connections and BatchNorm."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

Pair = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Dataset:
    """A train/test split of a classification problem.

    Attributes
    ----------
    name : str
    train, test : (inputs, targets)
        Float32 inputs, int64 class labels.
    n_classes : int
    """

    name: str
    train: Pair
    test: Pair
    n_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train[0].shape[1:])


def _split(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int) -> tuple[Pair, Pair]:
    perm = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    te, tr = perm[:n_test], perm[n_test:]
    as_t = lambda a, b: (torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.int64))
    return as_t(x[tr], y[tr]), as_t(x[te], y[te])


def digits(image: bool = False, test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits (shipped with the package), scaled to [0, 1].

    ``image=True`` gives ``[N, 1, 8, 8]`` inputs for CNNs, else ``[N, 64]``.
    """
    x, y = _sklearn_arrays("load_digits", return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    if image:
        x = x.reshape(-1, 1, 8, 8)
    train, test = _split(x, y, test_fraction, seed)
    return Dataset("digits", train, test, 10)


def _sklearn_arrays(generator: str, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """``sklearn.datasets.<generator>(**kwargs)``'s ``(x, y)``, kept in the package cache
    as ``.npz`` per scikit-learn version and arguments (importing scikit-learn takes
    longer than building the rest of a page)."""
    from importlib.metadata import version

    from ..runs.paths import cache_dir

    args = "-".join(f"{k}={v}" for k, v in sorted(kwargs.items()))
    path = cache_dir() / f"{generator}-{args}-sklearn-{version('scikit-learn')}.npz"
    if path.exists():
        with np.load(path) as f:
            return f["x"], f["y"]
    import sklearn.datasets

    x, y = getattr(sklearn.datasets, generator)(**kwargs)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, x=x, y=y)
    tmp.replace(path)
    return x, y


def moons(n: int = 1000, noise: float = 0.2, test_fraction: float = 0.25, seed: int = 0) -> Dataset:
    """Two interleaving half circles (scikit-learn's generator), 2 classes."""
    x, y = _sklearn_arrays("make_moons", n_samples=n, noise=noise, random_state=seed)
    train, test = _split(x.astype(np.float32), y, test_fraction, seed)
    return Dataset("moons", train, test, 2)


def spirals(
    n: int = 1000, arms: int = 2, noise: float = 0.15, test_fraction: float = 0.25, seed: int = 0
) -> Dataset:
    """``arms`` interleaved spirals in the plane, one class per arm."""
    rng = np.random.default_rng(seed)
    per = n // arms
    t = np.sqrt(rng.uniform(0.05, 1.0, size=(arms, per))) * 3 * np.pi
    xs, ys = [], []
    for k in range(arms):
        phase = 2 * np.pi * k / arms
        pts = np.stack([t[k] * np.cos(t[k] + phase), t[k] * np.sin(t[k] + phase)], axis=1) / (3 * np.pi)
        xs.append(pts + rng.normal(scale=noise / 3, size=pts.shape))
        ys.append(np.full(per, k))
    train, test = _split(np.concatenate(xs).astype(np.float32), np.concatenate(ys), test_fraction, seed)
    return Dataset("spirals", train, test, arms)


DATASETS = {"digits": digits, "moons": moons, "spirals": spirals}


def load_dataset(name: str, **kwargs) -> Dataset:
    """A built-in dataset by name (``digits``, ``moons``, ``spirals``)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; built in: {sorted(DATASETS)}")
    return DATASETS[name](**kwargs)


def mlp(in_features: int = 64, width: int = 128, depth: int = 2, n_classes: int = 10) -> nn.Sequential:
    """``depth`` hidden ReLU layers of ``width`` units, then a linear classifier."""
    if depth < 1 or width < 1:
        raise ValueError(f"an MLP needs depth >= 1 and width >= 1, got {depth}, {width}")
    layers: list[nn.Module] = []
    size = in_features
    for _ in range(depth):
        layers += [nn.Linear(size, width), nn.ReLU()]
        size = width
    layers.append(nn.Linear(size, n_classes))
    return nn.Sequential(*layers)


class ConvBlock(nn.Module):
    """3x3 convolution (+ BatchNorm) + ReLU, with an optional identity skip connection."""

    def __init__(self, channels: int, skip: bool, batchnorm: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=not batchnorm)
        self.bn = nn.BatchNorm2d(channels) if batchnorm else nn.Identity()
        self.skip = skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn(self.conv(x))
        return torch.relu(out + x if self.skip else out)


class SmallCNN(nn.Module):
    """A stem conv, ``depth`` :class:`ConvBlock` s (ResNet-style with ``skip``, a plain
    chain of the same depth without), global average pooling, a linear classifier."""

    def __init__(
        self, channels: int = 16, depth: int = 4, skip: bool = False, batchnorm: bool = False,
        in_channels: int = 1, n_classes: int = 10,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=not batchnorm),
            nn.BatchNorm2d(channels) if batchnorm else nn.Identity(),
            nn.ReLU(),
        )
        self.blocks = nn.Sequential(*[ConvBlock(channels, skip, batchnorm) for _ in range(depth)])
        self.head = nn.Linear(channels, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean(dim=(2, 3)))


def cnn(channels: int = 16, depth: int = 4, skip: bool = False, batchnorm: bool = False,
        n_classes: int = 10) -> SmallCNN:
    """A :class:`SmallCNN` for 8x8 one-channel images."""
    return SmallCNN(channels, depth, skip, batchnorm, 1, n_classes)
