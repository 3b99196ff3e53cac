"""The analysis panels compute in the background, draw a figure and state the measured numbers."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from tiny_models import trained_mlps

from landscape_widgets.analysis.connectivity import linear_path
from landscape_widgets.analysis.line_search import pal_line
from landscape_widgets.analysis.permutation import align
from landscape_widgets.widgets.analysis_panels import (
    entropy_panel, pal_panel, permutation_panel, simplex_panel, trust_panel,
)
from landscape_widgets.core.grids import plane

PNG = b"\x89PNG"


def test_permutation_panel_draws_and_reports_the_barriers():
    (a, b), data = trained_mlps(2)
    panel = permutation_panel(a, b, F.cross_entropy, data, num=7, plane_num=5, device="cpu")
    assert panel.wait(120) and panel.runner.error is None
    assert bytes(panel.image.value[:4]) == PNG
    paths, plane_ds = panel.result
    after = linear_path(a, align(a, b), F.cross_entropy, data, num=7, device="cpu").attrs["barrier"]
    assert paths["A → B matched"].attrs["barrier"] == pytest.approx(after)
    assert f"{after:.3g}" in panel.summary.value
    assert plane_ds.attrs["third_beta"] > 0


def test_simplex_and_entropy_panels_draw():
    models, data = trained_mlps(3)
    panel = simplex_panel(models, F.cross_entropy, data, subdivisions=1, steps=5, num=5, device="cpu")
    assert panel.wait(120) and panel.runner.error is None and bytes(panel.image.value[:4]) == PNG
    tun, _ = panel.result
    assert f"{tun.attrs['max_loss']:.3g}" in panel.summary.value
    ent = entropy_panel(models[0], F.cross_entropy, data, plane(num=3), samples=2, device="cpu")
    assert ent.wait(120) and ent.runner.error is None and bytes(ent.image.value[:4]) == PNG
    assert "Local entropy" in ent.summary.value


def test_pal_panel_recomputes_when_the_slider_moves():
    (model,), data = trained_mlps(1)
    with torch.no_grad():  # start away from the optimum, where PAL has a step to propose
        model[2].weight.mul_(0.2)
    panel = pal_panel(model, F.cross_entropy, data, mu=0.1, device="cpu")
    assert panel.wait(120) and panel.result.attrs["mu"] == pytest.approx(0.1)
    slider = panel.widget.children[1]
    slider.value = 1.0
    assert panel.wait(120)
    assert panel.result.attrs["mu"] == pytest.approx(1.0)
    expected = pal_line(model, F.cross_entropy, data, mu=1.0, device="cpu")
    assert panel.result.attrs["s_min"] == pytest.approx(expected.attrs["s_min"], rel=1e-6)
    assert bytes(panel.image.value[:4]) == PNG


def test_trust_panel_states_its_statistics():
    (model,), (x, y) = trained_mlps(1)
    loader = DataLoader(TensorDataset(x, y), batch_size=12)  # 10 batches for the bootstrap
    panel = trust_panel(model, F.cross_entropy, loader, plane(num=3), seeds=range(2), resamples=50, device="cpu")
    assert panel.wait(300) and panel.runner.error is None, panel.status.value
    r = panel.result
    assert set(r) == {"seeds", "bootstrap", "normalization", "range", "sharpness"}
    assert f"{r['seeds'].attrs['mean_sd']:.3g}" in panel.summary.value
    assert np.isfinite(r["bootstrap"]["loss_se"].values).all()
    assert bytes(panel.image.value[:4]) == PNG
