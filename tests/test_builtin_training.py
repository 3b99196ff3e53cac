"""The built-in models train with their default configs (the CLI's and explorer's demos)."""

from landscape_widgets.builtin.training import default_config, trained


def test_the_demo_cnn_learns_with_its_default_config():
    """Plain SGD with the MLP's settings left the CLI's cnn-digits demo at chance (2.30)."""
    result, _ = trained("cnn", "digits")
    assert default_config("cnn").optimizer == "adam"
    assert result.train_loss < 0.3 and result.test_accuracy > 0.85
