"""Flat parameter vectors: round trips, views, buffers, architecture checks."""

import pytest
import torch
from torch import nn

from landscape_widgets import zoo
from landscape_widgets.params import (
    bind_params_to_flat_,
    check_same_architecture,
    flatten_params,
    load_flat_params_,
    param_layout,
    unflatten_params,
)


def test_layout_names_shapes_offsets():
    model = zoo.mlp(in_features=3, width=4, depth=1, n_classes=2)
    layout = param_layout(model)
    assert layout.names == ("0.weight", "0.bias", "2.weight", "2.bias")
    assert [tuple(s) for s in layout.shapes] == [(4, 3), (4,), (2, 4), (2,)]
    assert layout.offsets == (0, 12, 16, 24)
    assert layout.size == 26 == sum(p.numel() for p in model.parameters())


def test_flatten_unflatten_round_trip():
    model = zoo.cnn(channels=4, depth=1, batchnorm=True)
    flat = flatten_params(model)
    parts = unflatten_params(flat, param_layout(model))
    for (name, p), (name2, v) in zip(model.named_parameters(), parts.items()):
        assert name == name2
        torch.testing.assert_close(p.detach(), v, rtol=0, atol=0)
    flat[0] += 1.0  # a copy: the model is untouched
    assert next(model.parameters()).reshape(-1)[0] != flat[0]


def test_split_keeps_leading_batch_dims():
    layout = param_layout(zoo.mlp(in_features=3, width=4, depth=1, n_classes=2))
    batch = torch.randn(5, layout.size)
    parts = layout.split(batch)
    assert parts["0.weight"].shape == (5, 4, 3)
    torch.testing.assert_close(parts["2.bias"], batch[:, -2:])
    with pytest.raises(ValueError, match="parameters"):
        layout.split(torch.randn(layout.size + 1))


def test_load_flat_params_leaves_buffers():
    model = zoo.cnn(channels=4, depth=1, batchnorm=True)
    model.stem[1].running_mean.fill_(0.3)
    vec = torch.randn(param_layout(model).size)
    load_flat_params_(model, vec)
    torch.testing.assert_close(flatten_params(model), vec)
    assert torch.all(model.stem[1].running_mean == 0.3)


def test_bind_params_to_flat_makes_views():
    model = zoo.mlp(in_features=3, width=4, depth=1, n_classes=2)
    x = torch.randn(7, 3)
    flat = bind_params_to_flat_(model)
    target = torch.randn_like(flat)
    flat.copy_(target)
    torch.testing.assert_close(flatten_params(model), target)
    reference = zoo.mlp(in_features=3, width=4, depth=1, n_classes=2)
    load_flat_params_(reference, target)
    torch.testing.assert_close(model(x), reference(x))


def test_model_without_parameters_is_a_clear_error():
    with pytest.raises(ValueError, match="no parameters"):
        param_layout(nn.ReLU())
    with pytest.raises(ValueError, match="no parameters"):
        flatten_params(nn.Sequential())


def test_check_same_architecture():
    a = zoo.mlp(in_features=3, width=4, depth=1, n_classes=2)
    assert check_same_architecture(a, zoo.mlp(3, 4, 1, 2)) == param_layout(a)
    with pytest.raises(ValueError, match="shape"):
        check_same_architecture(a, zoo.mlp(3, 5, 1, 2))
    with pytest.raises(ValueError, match="only in the second"):
        check_same_architecture(a, zoo.mlp(3, 4, 2, 2))
