"""Run a lesson notebook as CI does and read what it shows."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def shown_markdown(name: str, monkeypatch) -> list[str]:
    """The Markdown outputs of ``notebooks/<name>.ipynb`` executed in small mode, in order."""
    monkeypatch.setenv("LANDSCAPE_WIDGETS_SMALL", "1")
    path = NOTEBOOKS / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return [o["data"]["text/markdown"] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if "text/markdown" in o.get("data", {})]
