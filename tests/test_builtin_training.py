"""The built-in data match scikit-learn's, and the built-in models train with their default
configs (the CLI's and explorer's demos)."""

import os

from landscape_widgets.builtin.training import default_config, trained
from landscape_widgets.builtin.zoo import digits, moons


def test_the_demo_cnn_learns_with_its_default_config():
    """Plain SGD with the MLP's settings left the CLI's cnn-digits demo at chance (2.30)."""
    result, _ = trained("cnn", "digits")
    assert default_config("cnn").optimizer == "adam"
    assert result.train_loss < 0.3 and result.test_accuracy > 0.85


def test_builtin_data_equal_scikit_learn_and_a_cached_load_imports_no_scikit_learn(tmp_path):
    """The digits and moons arrays come from the package cache once made: a lesson page
    that needs them no longer imports scikit-learn (longer than the rest of the page)."""
    import subprocess
    import sys

    import numpy as np
    from sklearn.datasets import load_digits, make_moons

    env = {**os.environ, "LANDSCAPE_WIDGETS_CACHE": str(tmp_path)}
    script = ("import sys, numpy as np; from landscape_widgets.builtin.zoo import digits, moons; "
              "d, m = digits(), moons(n=200, noise=0.1, seed=3); "
              "print('sklearn' in sys.modules); "
              "np.savez(sys.argv[1], dx=d.train[0].numpy(), mx=m.train[0].numpy(), my=m.train[1].numpy())")
    imported = []
    for run in ("first", "cached"):
        out = subprocess.run([sys.executable, "-c", script, str(tmp_path / f"{run}.npz")], env=env,
                             capture_output=True, text=True, check=True).stdout.split()
        imported.append(out[-1])
    assert imported == ["True", "False"]
    with np.load(tmp_path / "first.npz") as first, np.load(tmp_path / "cached.npz") as cached:
        for key in first.files:
            np.testing.assert_array_equal(first[key], cached[key])
    x, y = make_moons(n_samples=200, noise=0.1, random_state=3)
    ref = moons(n=200, noise=0.1, seed=3)
    both = np.concatenate([ref.train[0].numpy(), ref.test[0].numpy()])
    np.testing.assert_allclose(np.sort(both, axis=0), np.sort(x.astype(np.float32), axis=0))
    assert sorted(np.concatenate([ref.train[1].numpy(), ref.test[1].numpy()])) == sorted(y)
    xd, _ = load_digits(return_X_y=True)
    d = digits()
    assert len(d.train[0]) + len(d.test[0]) == len(xd)
    assert float(d.train[0].max()) == 1.0
