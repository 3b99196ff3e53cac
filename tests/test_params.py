"""Flat parameter vectors: round trips, views, buffers, architecture checks."""

import pytest
import torch
from torch import nn

from landscape_widgets.builtin import zoo
from landscape_widgets.core.params import (
    bind_params_to_flat_,
    check_same_architecture,
    flatten_params,
    load_flat_params_,
    param_layout,
    select_params,
)


def test_layout_names_shapes_offsets():
    model = zoo.mlp(in_features=3, width=4, depth=1, n_classes=2)
    layout = param_layout(model)
    assert layout.names == ("0.weight", "0.bias", "2.weight", "2.bias")
    assert [tuple(s) for s in layout.shapes] == [(4, 3), (4,), (2, 4), (2,)]
    assert layout.size == 26 == sum(p.numel() for p in model.parameters())


def test_flatten_unflatten_round_trip():
    model = zoo.cnn(channels=4, depth=1, batchnorm=True)
    flat = flatten_params(model)
    parts = param_layout(model).split(flat)
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
    flat = bind_params_to_flat_(model, param_layout(model))
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


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Linear(6, 4)
        self.dec = nn.Linear(4, 6)
        self.dec.weight = nn.Parameter(torch.randn(6, 4))
        self.head = nn.Linear(6, 6)
        self.head.weight = self.dec.weight  # tied


def test_select_params_by_glob_trainable_predicate_and_module():
    model = zoo.mlp(in_features=3, width=4, depth=2, n_classes=2)
    assert select_params(model) == select_params(model, "all") == tuple(n for n, _ in model.named_parameters())
    assert select_params(model, "2.*") == ("2.weight", "2.bias")
    assert select_params(model, ["0.weight", "4.*"]) == ("0.weight", "4.weight", "4.bias")
    assert select_params(model, lambda name, p: p.dim() == 1) == ("0.bias", "2.bias", "4.bias")
    assert select_params(model, model[2]) == ("2.weight", "2.bias")
    assert select_params(model, [model[0], model[4]]) == ("0.weight", "0.bias", "4.weight", "4.bias")
    model[0].requires_grad_(False)
    assert select_params(model, "trainable") == ("2.weight", "2.bias", "4.weight", "4.bias")
    layout = param_layout(model, "trainable")
    assert layout.size == 4 * 4 + 4 + 2 * 4 + 2
    assert flatten_params(model, layout).shape == (layout.size,)
    with pytest.raises(ValueError, match="selects none"):
        select_params(model, "encoder.*")
    with pytest.raises(TypeError, match="params must be"):
        select_params(model, 3)


def test_tied_parameters_appear_once_and_load_into_both_modules():
    model = Tied()
    names = select_params(model)
    assert "dec.weight" in names and "head.weight" not in names
    layout = param_layout(model)
    load_flat_params_(model, torch.zeros(layout.size), layout)
    assert torch.all(model.head.weight == 0) and model.head.weight is model.dec.weight
