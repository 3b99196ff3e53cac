import numpy as np
import pytest
import torch
import torch.nn.functional as F

from landscape_widgets.core.grids import plane
from landscape_widgets.core.params import param_layout
from landscape_widgets.builtin.training import TrainConfig, build_model, mean_loss, train
from landscape_widgets.analysis.trajectory import project, trajectory_grid, trajectory_landscape, trajectory_plane
from landscape_widgets.builtin.zoo import moons


@pytest.fixture(scope="module")
def run():
    data = moons(n=300)
    model = build_model("mlp", data, seed=0, width=16, depth=2)
    result = train(model, data, TrainConfig(epochs=6, batch_size=32, lr=0.1, checkpoints_per_epoch=2))
    return result, data


def test_path_ends_at_origin_and_ratios_sum_below_one(run):
    result, _ = run
    pl = trajectory_plane(result.trajectory)
    assert pl.path.shape == (len(result.trajectory), 2)
    np.testing.assert_allclose(pl.path[-1], 0.0, atol=1e-12)
    ratios = pl.explained_variance_ratio
    assert np.all(ratios >= 0) and ratios[0] >= ratios[1]
    assert ratios.sum() <= 1 + 1e-12
    # a real trajectory is not exactly planar, but mostly along the first component
    assert ratios[0] > 0.3


def test_directions_orthonormal_and_point_in_plane_projects_to_its_coordinates(run):
    result, _ = run
    pl = trajectory_plane(result.trajectory)
    d1, d2 = (d.double() for d in pl.directions)
    assert float(d1.norm()) == pytest.approx(1.0, abs=1e-6)
    assert float(d2.norm()) == pytest.approx(1.0, abs=1e-6)
    assert abs(float(d1 @ d2)) < 1e-6
    point = pl.theta + 0.3 * pl.directions[0] - 0.7 * pl.directions[1]
    np.testing.assert_allclose(project([point], pl.theta, pl.directions)[0], [0.3, -0.7], atol=1e-5)


def test_planar_trajectory_is_explained_completely_and_recovered():
    gen = torch.Generator().manual_seed(1)
    u, v = torch.linalg.qr(torch.randn(50, 2, generator=gen, dtype=torch.float64))[0].T
    theta = torch.randn(50, generator=gen, dtype=torch.float64)
    coords = np.array([[2.0, 1.0], [1.5, -0.5], [0.7, 0.4], [0.2, -0.1], [0.0, 0.0]])
    traj = [(theta + a * u + b * v).float() for a, b in coords]
    pl = trajectory_plane(traj)
    assert pl.explained_variance_ratio.sum() == pytest.approx(1.0, abs=1e-6)
    # the PCA axes are a rotation/reflection of (u, v): all inner products are kept
    np.testing.assert_allclose(pl.path @ pl.path.T, coords @ coords.T, atol=1e-4)
    assert abs(float(pl.directions[0].double() @ u) ** 2 + float(pl.directions[0].double() @ v) ** 2 - 1) < 1e-5


def test_bias_bn_ignore_zeroes_one_dimensional_tensors(run):
    result, _ = run
    layout = param_layout(result.model)
    pl = trajectory_plane(result.trajectory, layout, bias_bn="ignore")
    for name, shape in zip(layout.names, layout.shapes):
        if len(shape) == 1:
            assert torch.count_nonzero(layout.split(pl.directions[0])[name]) == 0
    with pytest.raises(ValueError, match="layout"):
        trajectory_plane(result.trajectory, bias_bn="ignore")


def test_too_short_trajectory_is_rejected(run):
    with pytest.raises(ValueError, match="at least 3"):
        trajectory_plane(run[0].trajectory[:2])


def test_landscape_on_the_plane_is_centred_on_the_final_model(run):
    result, data = run
    pl = trajectory_plane(result.trajectory)
    grid = trajectory_grid(pl, num=5)
    lo = [a.start for a in grid.axes]
    hi = [a.stop for a in grid.axes]
    assert np.all(pl.path >= np.array(lo) - 1e-9) and np.all(pl.path <= np.array(hi) + 1e-9)
    centred = plane((-1.0, 1.0), num=3)
    ds = trajectory_landscape(result.model, F.cross_entropy, data.train, pl, centred)
    assert float(ds["loss"].sel(alpha=0.0, beta=0.0)) == pytest.approx(
        mean_loss(result.model, data.train), rel=1e-4
    )
    assert ds.attrs["path_alpha"][-1] == 0.0 and len(ds.attrs["path_beta"]) == len(result.trajectory)


def test_widget_contour_path_and_slider(run):
    from landscape_widgets.widgets.trajectory import trajectory_panel

    result, data = run
    pl = trajectory_plane(result.trajectory)
    grid = trajectory_grid(pl, num=4)
    panel = trajectory_panel(result.model, F.cross_entropy, data.train, pl, grid, trajectory=result.trajectory,
                             checkpoints_per_epoch=2)
    assert panel.wait(120) and panel.runner.error is None
    # each checkpoint's loss, from the checkpoint itself (not its projection on the plane)
    final = panel.checkpoint_values[-1]
    assert final["loss"] == pytest.approx(mean_loss(result.model, data.train), rel=1e-4)
    assert panel.checkpoint_values[0]["loss"] > final["loss"]  # the initialization is worse
    assert "training path, one dot per checkpoint" in panel.key.value
    expected = trajectory_landscape(result.model, F.cross_entropy, data.train, pl, grid)
    np.testing.assert_allclose(panel.result["loss"].values, expected["loss"].values, rtol=1e-5)
    assert "% of variance" in panel.view.x_axis.label and "PC2" in panel.view.y_axis.label
    np.testing.assert_allclose(panel.path.x, pl.path[:, 0])
    panel.slider.value = 3
    assert f"checkpoint 3 of {len(pl.path) - 1} (epoch 1.5): loss {panel.checkpoint_values[3]['loss']:.4g}, accuracy" \
        in panel.readout.value
    assert list(panel.current.x) == pytest.approx([pl.path[3, 0]])
    assert list(panel.current.y) == pytest.approx([pl.path[3, 1]])
