"""The objective: any batch structure, any output type, user forward, loss and metrics;
devices and dtypes; the caller's model never moved or changed."""

from dataclasses import dataclass

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape_widgets import Objective, PointEvaluator, compute_landscape, line, plane, random_directions
from landscape_widgets.core.params import flatten_params, model_at


def _classification(n=40, d=6, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, classes, (n,), generator=g)


def _mlp(d=6, classes=4, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 8), nn.ReLU(), nn.Linear(8, classes))


def reference(model, forward_loss, coeffs, directions):
    """Independent perturb-and-forward: a copy of the model at each point."""
    theta = flatten_params(model)
    out = []
    for c in coeffs:
        net = model_at(model, theta + sum(float(ci) * d for ci, d in zip(c, directions))).eval()
        with torch.no_grad():
            out.append(float(forward_loss(net)))
    return np.array(out)


@dataclass
class Output:
    logits: torch.Tensor
    hidden: torch.Tensor


class DataclassNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = _mlp()

    def forward(self, x):
        return Output(self.body(x), x)


class TupleNet(DataclassNet):
    def forward(self, x):
        return self.body(x), x


@pytest.mark.parametrize("strategy", ["loop", "batched"])
def test_outputs_that_are_not_a_tensor(strategy):
    """Regression: task detection called ``out.dim()`` on any output."""
    x, y = _classification()
    model = DataclassNet()
    ds = compute_landscape(model, lambda out, t: F.cross_entropy(out.logits, t), (x, y), line(num=5),
                           strategy=strategy)
    assert "accuracy" in ds and ds.attrs.get("vmap_fallback") is None
    dirs = random_directions(model, 1)
    ref = reference(model, lambda net: F.cross_entropy(net(x).logits, y), ds["alpha"].values[:, None], dirs)
    np.testing.assert_allclose(ds["loss"].values, ref, rtol=1e-5)
    tup = compute_landscape(TupleNet(), lambda out, t: F.cross_entropy(out[0], t), (x, y), line(num=5),
                            strategy=strategy)
    np.testing.assert_allclose(tup["loss"].values, ds["loss"].values, rtol=1e-6)
    assert "accuracy" not in tup  # no logits to be found in a tuple: loss only


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(6, 4), nn.Linear(3, 4)

    def forward(self, u, v):
        return self.a(u) + self.b(v)


@pytest.mark.parametrize("strategy", ["loop", "batched"])
def test_tuple_batches_user_forward_pass_batch_and_metrics(strategy):
    g = torch.Generator().manual_seed(1)
    u, v, y = torch.randn(30, 6, generator=g), torch.randn(30, 3, generator=g), torch.randint(0, 4, (30,), generator=g)
    torch.manual_seed(0)
    model = TwoInputs()
    grid = plane(num=3)
    dirs = random_directions(model, 2, seed=2)
    margin = {"margin": lambda out, t: (out.max(-1).values - out.mean(-1)).mean()}
    default = compute_landscape(model, F.cross_entropy, [(u, v, y)], grid, dirs, strategy=strategy,
                                metrics=margin)
    custom = compute_landscape(
        model, lambda out, batch: F.cross_entropy(out, batch["labels"]), [{"u": u, "v": v, "labels": y}], grid, dirs,
        forward=lambda m, batch: m(batch["u"], batch["v"]), pass_batch=True, task="classification",
        strategy=strategy,
    )
    assert set(default.data_vars) == {"loss", "accuracy", "margin", "done"}
    np.testing.assert_allclose(custom["loss"].values, default["loss"].values, rtol=1e-6)
    coeffs = grid.coords(np.arange(grid.size))
    ref = reference(model, lambda net: F.cross_entropy(net(u, v), y), coeffs, dirs)
    np.testing.assert_allclose(default["loss"].values.reshape(-1), ref, rtol=1e-5)
    ref_margin = reference(model, lambda net: margin["margin"](net(u, v), y), coeffs, dirs)
    np.testing.assert_allclose(default["margin"].values.reshape(-1), ref_margin, rtol=1e-5)


def test_clear_errors_for_missing_losses_and_targets():
    x, y = _classification()
    with pytest.raises(ValueError, match="no .loss"):
        Objective(_mlp(), None, (x, y))
    with pytest.raises(ValueError, match="no targets"):
        Objective(_mlp(), F.cross_entropy, [(x,)])
    with pytest.raises(ValueError, match="scalar"):
        Objective(_mlp(), lambda out, t: F.cross_entropy(out, t, reduction="none"), (x, y))
    with pytest.raises(TypeError, match="single tensor"):
        Objective(_mlp(), F.cross_entropy, x)
    with pytest.raises(ValueError, match="reserved"):
        Objective(_mlp(), F.cross_entropy, (x, y), metrics={"loss": F.cross_entropy})
    objective = Objective(_mlp(), F.cross_entropy, (x, y))
    with pytest.raises(TypeError, match="already holds"):
        compute_landscape(objective, F.cross_entropy, grid=line(num=3))
    with pytest.raises(TypeError, match="already holds"):
        compute_landscape(objective, grid=line(num=3), max_samples=5)


def test_wrong_kinds_of_input_say_what_to_give():
    x, y = _classification()
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got a function"):
        Objective(lambda inputs: inputs, F.cross_entropy, (x, y))
    with pytest.raises(ValueError, match="dtype 'float17' is not a torch dtype"):
        Objective(_mlp(), F.cross_entropy, (x, y), dtype="float17")
    assert Objective(_mlp(), F.cross_entropy, (x, y), dtype="float64").dtype == torch.float64
    for grid in ((-1, 1), 5):
        with pytest.raises(TypeError, match=r"grid must be a Grid, e.g. plane\(\(-1, 1\), num=51\)"):
            compute_landscape(_mlp(), F.cross_entropy, (x, y), grid)
    with pytest.raises(TypeError, match="seed must be an integer, got None"):
        compute_landscape(_mlp(), F.cross_entropy, (x, y), line(num=3), seed=None)
    # a loss given outputs it cannot take: the outputs' type and the options that fit
    with pytest.raises(TypeError, match=r"outputs \(of type Output\): .*Pass loss_fn=None to use outputs.loss"):
        Objective(DataclassNet(), F.cross_entropy, (x, y))


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes are Python 3.11's")
def test_a_model_or_loss_that_fails_on_the_data_is_told_which_shapes_it_got():
    x, y = _classification()
    with pytest.raises(RuntimeError) as wrong_width:  # torch's own error, kept
        Objective(_mlp(), F.cross_entropy, (x[:, :-1], y))
    note = wrong_width.value.__notes__[0]
    assert "raised by the model on the first samples of the data" in note
    assert f"inputs [2, {x.shape[1] - 1}], targets [2]" in note
    with pytest.raises(RuntimeError) as float_labels:
        Objective(_mlp(), F.cross_entropy, (x, y.float()))
    assert "raised by loss_fn on the model's outputs" in float_labels.value.__notes__[0]
    assert "outputs [2, 4]" in float_labels.value.__notes__[0]
    with pytest.raises(ValueError, match="scalar") as vector:  # already says what to fix: no note
        Objective(_mlp(), lambda out, t: F.cross_entropy(out, t, reduction="none"), (x, y))
    assert not getattr(vector.value, "__notes__", [])


def test_float64_model_stays_float64_on_its_device():
    x, y = _classification()
    model = _mlp().double()
    objective = Objective(model, F.cross_entropy, (x.double(), y))
    assert objective.device == torch.device("cpu") and objective.theta.dtype == torch.float64
    dirs = random_directions(model, 2)
    assert all(d.dtype == torch.float64 and d.device.type == "cpu" for d in dirs)
    ds = compute_landscape(objective, grid=plane(num=3), seed=0)
    assert ds.attrs["dtype"] == "float64"
    coeffs = plane(num=3).coords(np.arange(9))
    ref = reference(model, lambda net: F.cross_entropy(net(x.double()), y), coeffs, dirs)
    np.testing.assert_allclose(ds["loss"].values.reshape(-1), ref, rtol=1e-12)


def test_meta_model_goes_through_the_direction_code_and_is_refused_for_evaluation():
    with torch.device("meta"):
        model = _mlp()
    dirs = random_directions(model, 2, normalization="filter")
    assert all(d.device.type == "meta" and d.shape == (6 * 8 + 8 + 8 * 4 + 4,) for d in dirs)
    interp = random_directions(model, 1, normalization="layer", params="2.*")
    assert interp[0].device.type == "meta" and interp[0].shape == (8 * 4 + 4,)
    with pytest.raises(ValueError, match="meta device"):
        Objective(model, F.cross_entropy, _classification())


def test_the_callers_model_is_never_moved_or_modified():
    x, y = _classification()
    model = _mlp().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ds = compute_landscape(model, F.cross_entropy, (x, y), plane(num=3), strategy="auto")
    assert model.training and all(p.device.type == "cpu" for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert ds.attrs["device"] == "cpu"


def test_bfloat16_evaluation_keeps_theta_in_the_models_dtype():
    x, y = _classification()
    model = _mlp()
    ev = PointEvaluator(model, F.cross_entropy, (x, y), random_directions(model, 1), dtype=torch.bfloat16)
    assert ev.theta.dtype == torch.float32 and ev.objective.flat.dtype == torch.bfloat16
    low = ev.evaluate([[0.0], [0.5]], "loop").loss
    high = PointEvaluator(model, F.cross_entropy, (x, y), random_directions(model, 1)).evaluate([[0.0], [0.5]]).loss
    np.testing.assert_allclose(low, high, rtol=3e-2)


def test_landscape_over_a_parameter_subset_leaves_the_rest_fixed():
    x, y = _classification()
    model = _mlp()
    ds = compute_landscape(model, F.cross_entropy, (x, y), line(num=5), params="2.*", seed=1)
    assert ds.attrs["params"] == "2.*" and ds.attrs["n_params"] == 8 * 4 + 4
    assert ds.attrs["n_params_fixed"] == 6 * 8 + 8
    dirs = random_directions(model, 1, seed=1, params="2.*")
    theta = flatten_params(model)
    full = [torch.cat([torch.zeros(6 * 8 + 8), d]) for d in dirs]  # zero on the fixed layer
    ref = [float(F.cross_entropy(model_at(model, theta + a * full[0])(x), y)) for a in ds["alpha"].values]
    np.testing.assert_allclose(ds["loss"].values, ref, rtol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_model_already_on_the_gpu():
    x, y = _classification()
    model = _mlp().cuda()
    for strategy in ("loop", "batched"):
        ds = compute_landscape(model, F.cross_entropy, (x.cuda(), y.cuda()), plane(num=3), strategy=strategy)
        assert ds.attrs["device"].startswith("cuda")
        cpu = compute_landscape(_mlp(), F.cross_entropy, (x, y), plane(num=3), strategy=strategy)
        np.testing.assert_allclose(ds["loss"].values, cpu["loss"].values, rtol=1e-4)
    assert all(d.is_cuda for d in random_directions(model, 2))
