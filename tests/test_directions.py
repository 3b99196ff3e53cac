"""Random directions (Li et al. 2018 normalization), interpolation, orthogonalization."""

import pytest
import torch

from landscape_widgets.builtin import zoo
from landscape_widgets.core.directions import (
    direction_cosine,
    interpolation_direction,
    normalize_direction,
    orthogonalize_direction,
    random_directions,
)
from landscape_widgets.core.params import flatten_params, param_layout


@pytest.fixture
def cnn():
    torch.manual_seed(0)
    return zoo.cnn(channels=4, depth=1, batchnorm=True)


def raw_gaussian(model, seed):
    """The un-normalized direction: ``none`` normalization keeping every tensor."""
    return random_directions(model, 1, seed=seed, normalization="none", bias_bn="random")[0]


def test_same_seed_same_directions_different_seed_different(cnn):
    a = random_directions(cnn, 2, seed=3)
    b = random_directions(cnn, 2, seed=3)
    c = random_directions(cnn, 2, seed=4)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert not torch.allclose(a[0], c[0])
    assert not torch.allclose(a[0], a[1])
    # direction i does not depend on how many are drawn
    assert torch.equal(random_directions(cnn, 1, seed=3)[0], a[0])


def test_filter_normalization_matches_definition(cnn):
    theta, layout = flatten_params(cnn), param_layout(cnn)
    raw = raw_gaussian(cnn, seed=1)
    d = random_directions(cnn, 1, seed=1, normalization="filter")[0]
    d_parts, t_parts, r_parts = layout.split(d), layout.split(theta), layout.split(raw)
    for name in layout.names:
        dt, tt, rt = d_parts[name], t_parts[name], r_parts[name]
        if dt.dim() == 1:
            assert torch.all(dt == 0), name  # bias_bn="ignore"
            continue
        for i in range(dt.shape[0]):  # each filter: norm of theta's filter, direction of the raw draw
            torch.testing.assert_close(dt[i].norm(), tt[i].norm(), rtol=1e-5, atol=1e-7)
            torch.testing.assert_close(dt[i], rt[i] * tt[i].norm() / rt[i].norm(), rtol=1e-5, atol=1e-7)


def test_layer_normalization_matches_definition(cnn):
    theta, layout = flatten_params(cnn), param_layout(cnn)
    raw = raw_gaussian(cnn, seed=1)
    d = random_directions(cnn, 1, seed=1, normalization="layer")[0]
    for name, dt in layout.split(d).items():
        tt, rt = layout.split(theta)[name], layout.split(raw)[name]
        if dt.dim() == 1:
            continue
        torch.testing.assert_close(dt.norm(), tt.norm(), rtol=1e-5, atol=0)
        torch.testing.assert_close(dt, rt * tt.norm() / rt.norm(), rtol=1e-5, atol=1e-7)
        # the filters are NOT each rescaled: their norms still vary like the raw draw
        assert not torch.allclose(dt.flatten(1).norm(dim=1), tt.flatten(1).norm(dim=1), rtol=1e-3)


def test_none_normalization_is_the_raw_draw(cnn):
    layout = param_layout(cnn)
    raw = raw_gaussian(cnn, seed=2)
    d = random_directions(cnn, 1, seed=2, normalization="none")[0]
    for name, dt in layout.split(d).items():
        expected = torch.zeros_like(dt) if dt.dim() == 1 else layout.split(raw)[name]
        assert torch.equal(dt, expected), name


def test_bias_bn_rules(cnn):
    theta, layout = flatten_params(cnn), param_layout(cnn)
    with torch.no_grad():  # BatchNorm weights of ones would hide the "random" rule
        for p in cnn.parameters():
            if p.dim() == 1:
                p.uniform_(0.5, 2.0)
    theta = flatten_params(cnn)
    one_d = [n for n, s in zip(layout.names, layout.shapes) if len(s) == 1]
    assert any("bn" in n or "stem.1" in n for n in one_d)
    ignore = layout.split(random_directions(cnn, 1, seed=0, bias_bn="ignore")[0])
    as_theta = layout.split(random_directions(cnn, 1, seed=0, bias_bn="theta")[0])
    rand = layout.split(random_directions(cnn, 1, seed=0, bias_bn="random")[0])
    raw = layout.split(raw_gaussian(cnn, seed=0))
    t = layout.split(theta)
    for name in one_d:
        assert torch.all(ignore[name] == 0)
        assert torch.equal(as_theta[name], t[name])
        # filter normalization of a 1-D tensor: every element is its own filter
        torch.testing.assert_close(rand[name].abs(), t[name].abs(), rtol=1e-5, atol=1e-7)
        assert torch.equal(torch.sign(rand[name]), torch.sign(raw[name]))
    layer = layout.split(random_directions(cnn, 1, seed=0, normalization="layer", bias_bn="random")[0])
    for name in one_d:
        torch.testing.assert_close(layer[name].norm(), t[name].norm(), rtol=1e-5, atol=0)
    # multi-dimensional tensors do not depend on the 1-D rule
    for name in set(layout.names) - set(one_d):
        assert torch.equal(ignore[name], as_theta[name]) and torch.equal(ignore[name], rand[name])


def test_bad_options_are_clear_errors(cnn):
    theta, layout = flatten_params(cnn), param_layout(cnn)
    with pytest.raises(ValueError, match="normalization"):
        normalize_direction(theta, theta, layout, normalization="unit")
    with pytest.raises(ValueError, match="bias_bn"):
        normalize_direction(theta, theta, layout, bias_bn="zero")
    with pytest.raises(ValueError, match="same length"):
        normalize_direction(theta[:-1], theta, layout)
    with pytest.raises(ValueError, match="at least one"):
        random_directions(cnn, 0)


def test_zero_parameters_under_normalization_warn_or_say_what_to_use():
    """Normalized, the direction of a tensor that is zero at theta is zero: a warning
    names those tensors (a fresh LoRA adapter: B zero, so moving A changes nothing); a
    direction zero everywhere is an error that says which option moves something."""
    import warnings

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    with torch.no_grad():
        net[2].weight.zero_()
    for normalization in ("filter", "layer"):
        with pytest.warns(RuntimeWarning, match=r"1 of the 4 moved tensors are zero at theta \(2.weight\)"):
            (d,) = random_directions(net, 1, normalization=normalization)
        assert not param_layout(net).split(d)["2.weight"].any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (d,) = random_directions(net, 1, normalization="none")  # no warning: the zero tensor moves
        random_directions(net, 1, normalization="filter", params="0.*")  # the zero tensor is not moved
    assert d.any()
    with pytest.raises(ValueError, match="zero at theta.*use normalization='none'"):
        random_directions(net, 1, normalization="layer", theta=torch.zeros(param_layout(net).size))
    with pytest.raises(ValueError, match="all 1-D.*set bias_bn='random' or 'theta'"):
        random_directions(net, 1, params="*.bias")


def test_orthogonalize():
    torch.manual_seed(0)
    a, b = torch.randn(50), torch.randn(50)
    o = orthogonalize_direction(b, [a])
    assert abs(direction_cosine(o, a)) < 1e-6
    torch.testing.assert_close(o.norm(), b.norm())
    with pytest.raises(ValueError, match="span"):
        orthogonalize_direction(2 * a, [a])
    d1, d2 = random_directions(zoo.mlp(8, 16, 1, 3), 2, seed=0, orthogonalize=True)
    assert abs(direction_cosine(d1, d2)) < 1e-5


def test_interpolation_direction_and_mismatch():
    torch.manual_seed(0)
    m0, m1 = zoo.mlp(4, 8, 1, 3), zoo.mlp(4, 8, 1, 3)
    d = interpolation_direction(m0, m1)
    torch.testing.assert_close(flatten_params(m0) + d, flatten_params(m1))
    with pytest.raises(ValueError, match="same architecture"):
        interpolation_direction(m0, zoo.mlp(4, 9, 1, 3))
    with pytest.raises(ValueError, match="different parameters"):
        interpolation_direction(m0, zoo.mlp(4, 8, 2, 3))
