"""Every notebook in notebooks/ runs top to bottom without error, in small mode."""

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_the_teaching_notebooks_are_there():
    names = {p.stem for p in NOTEBOOKS}
    for stem in ("01_quickstart", "02_filter_normalization_and_batch_size", "03_skip_connections",
                 "04_optimization_trajectories", "05_interpolation"):
        assert stem in names


#: Words of the code, not of the ideas: none belongs in a lesson's teaching text (code cells,
#: which Voila hides, may use them).
API_WORDS = ("torch", "vmap", "functional_call", "Lanczos", "reorthogonal", "nn.Module", "on_step", "scikit",
             "xarray", "dataset", "cache")


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.stem[:2].isdigit()], ids=lambda p: p.stem[:2])
def test_teaching_text_is_for_students(path):
    nb = nbformat.read(path, as_version=4)
    text = " ".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert not [w for w in API_WORDS if w.lower() in text.lower()]
    # backticks only around the names of controls a student presses
    assert set(re.findall(r"`([^`]+)`", text)) <= {"filter", "layer", "none"}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_in_small_mode(path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_WIDGETS_SMALL", "1")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    if path.stem[:2].isdigit() and int(path.stem[:2]) <= 5:
        # the teaching notebooks each leave a static picture in the executed notebook
        assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name} shows no figure"
