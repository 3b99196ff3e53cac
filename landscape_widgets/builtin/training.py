"""A short training helper that records the optimization trajectory, and a disk cache of
trained demo models so a second start is instant."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..core.params import flatten_params
from ..runs.paths import cache_dir
from .zoo import Dataset, cnn, load_dataset, mlp

OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class TrainConfig:
    """How to train: plain minibatch SGD with momentum (or Adam) on cross-entropy.

    ``checkpoints_per_epoch`` flat parameter vectors are recorded per epoch (plus the
    initialization), giving the trajectory for PCA plots.
    """

    epochs: int = 20
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    optimizer: str = "sgd"
    seed: int = 0
    checkpoints_per_epoch: int = 1

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs and batch_size must be >= 1 and lr > 0")


@dataclass
class TrainResult:
    """A trained model with its trajectory (flat vectors, initialization first)."""

    model: nn.Module
    trajectory: list[torch.Tensor] = field(default_factory=list)
    train_loss: float = float("nan")
    test_accuracy: float = float("nan")


def accuracy(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Fraction of correctly classified samples (model put in eval mode)."""
    model.eval()
    with torch.no_grad():
        return float((model(data[0]).argmax(-1) == data[1]).float().mean())


def mean_loss(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Mean cross-entropy over ``data`` (model put in eval mode)."""
    model.eval()
    with torch.no_grad():
        return float(F.cross_entropy(model(data[0]), data[1]))


def steps_per_epoch(n_samples: int, batch_size: int) -> int:
    """SGD updates in one epoch of :func:`train`: the last batch may be smaller."""
    return max(1, -(-n_samples // batch_size))


def train(model: nn.Module, dataset: Dataset, config: TrainConfig = TrainConfig()) -> TrainResult:
    """Train ``model`` in place on ``dataset.train`` and record checkpoints."""
    gen = torch.Generator().manual_seed(config.seed)
    x, y = dataset.train
    opt_cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[config.optimizer]
    extra = {"momentum": config.momentum} if config.optimizer == "sgd" else {}
    opt = opt_cls(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, **extra)
    steps = steps_per_epoch(len(x), config.batch_size)
    marks = {round((j + 1) * steps / config.checkpoints_per_epoch) - 1
             for j in range(config.checkpoints_per_epoch)}
    trajectory = [flatten_params(model)]
    for _ in range(config.epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        for step in range(steps):
            idx = perm[step * config.batch_size : (step + 1) * config.batch_size]
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
            if step in marks:
                trajectory.append(flatten_params(model))
    model.eval()
    return TrainResult(model, trajectory, mean_loss(model, dataset.train), accuracy(model, dataset.test))


MODELS = {"mlp": mlp, "cnn": cnn}


def build_model(kind: str, dataset: Dataset, seed: int = 0, **kwargs) -> nn.Module:
    """A fresh model for ``dataset``, initialized from ``seed``."""
    if kind not in MODELS:
        raise ValueError(f"unknown model kind {kind!r}; built in: {sorted(MODELS)}")
    torch.manual_seed(seed)
    if kind == "mlp":
        return mlp(in_features=dataset.input_shape[0], n_classes=dataset.n_classes, **kwargs)
    return cnn(n_classes=dataset.n_classes, **kwargs)


#: Adam for the CNNs: SGD with the MLP's settings leaves them at chance (loss 2.30).
CNN_CONFIG = TrainConfig(epochs=20, batch_size=64, lr=0.005, optimizer="adam")


def default_config(kind: str) -> TrainConfig:
    """The training config a built-in model ``kind`` trains well with."""
    return CNN_CONFIG if kind == "cnn" else TrainConfig()


def trained(
    kind: str = "mlp",
    dataset: str = "digits",
    config: TrainConfig | None = None,
    model_kwargs: dict | None = None,
    use_cache: bool = True,
) -> tuple[TrainResult, Dataset]:
    """Train a built-in model on a built-in dataset, or load it from the disk cache.

    ``config`` defaults to :func:`default_config` of the kind (plain SGD does not train
    the CNN). The cache key covers the model kind and arguments, dataset, training config
    and torch version, so any change retrains.
    """
    config = config or default_config(kind)
    model_kwargs = dict(model_kwargs or {})
    data = load_dataset(dataset, image=True) if kind == "cnn" and dataset == "digits" else load_dataset(dataset)
    spec = {"kind": kind, "dataset": dataset, "model": model_kwargs, "config": asdict(config),
            "torch": torch.__version__.split("+")[0], "format": 1}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    path = cache_dir() / f"{kind}-{dataset}-{key}.pt"
    model = build_model(kind, data, seed=config.seed, **model_kwargs)
    if use_cache and path.exists():
        saved = torch.load(path, weights_only=True)
        model.load_state_dict(saved["state_dict"])
        model.eval()
        return TrainResult(model, list(saved["trajectory"]), saved["train_loss"], saved["test_accuracy"]), data
    result = train(model, data, config)
    if use_cache:
        tmp = path.with_suffix(".tmp")
        torch.save({"state_dict": model.state_dict(), "trajectory": result.trajectory,
                    "train_loss": result.train_loss, "test_accuracy": result.test_accuracy}, tmp)
        tmp.replace(path)
    return result, data
