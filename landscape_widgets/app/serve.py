"""The Voila app: a notebook that shows only the explorer, and ``serve()`` to launch it.

``notebooks/explorer_app.ipynb`` is :func:`app_notebook` written to disk (a test keeps
the two equal); ``landscape-widgets app`` calls :func:`serve`.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

#: Where the app notebook lives in a source checkout.
CHECKOUT_NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "explorer_app.ipynb"

_TITLE = (
    "# Loss landscape explorer\n\n"
    "A small MLP trained on scikit-learn's digits. Move a control: the computation restarts "
    "and the picture fills in coarse to fine."
)


def app_notebook(**demo_kwargs) -> nbformat.NotebookNode:
    """The app as a notebook: a title and one cell calling :func:`landscape_widgets.builtin`.

    Parameters
    ----------
    **demo_kwargs
        Keyword arguments written into the ``demo(...)`` call (plain Python literals),
        e.g. ``grids={"2d": (1.0, 31)}``.
    """
    args = ", ".join(f"{k}={v!r}" for k, v in demo_kwargs.items())
    code = f"import landscape_widgets as lw\n\nlw.demo({args})"
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell(_TITLE, id="title"),
            nbformat.v4.new_code_cell(code, id="app"),
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )
    return nb


def write_app_notebook(path: str | Path = CHECKOUT_NOTEBOOK, **demo_kwargs) -> Path:
    """Write :func:`app_notebook` to ``path`` (default: the checkout's notebooks/)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(app_notebook(**demo_kwargs), path)
    return path


def voila_command(notebook: str | Path, port: int | None = None, open_browser: bool = True) -> list[str]:
    """The command line that serves ``notebook`` with Voila (sources hidden)."""
    cmd = [sys.executable, "-m", "voila", str(notebook), "--strip_sources=True"]
    if port is not None:
        if not 0 < int(port) < 65536:
            raise ValueError(f"port must be between 1 and 65535, got {port}")
        cmd.append(f"--port={int(port)}")
    if not open_browser:
        cmd.append("--no-browser")
    return cmd


def serve(port: int | None = None, open_browser: bool = True, notebook: str | None = None) -> int:
    """Serve the explorer app with Voila until interrupted; returns Voila's exit code.

    Parameters
    ----------
    port : int, optional
        Port to listen on (Voila's default, 8866, when not given).
    open_browser : bool
        Open the app in the default web browser.
    notebook : str, optional
        Serve this notebook instead: by default the checkout's
        ``notebooks/explorer_app.ipynb``, or, in an installed package, the app notebook
        written to a temporary directory.
    """
    with tempfile.TemporaryDirectory(prefix="landscape-widgets-app-") as tmp:
        if notebook is not None:
            path = Path(notebook)
            if not path.is_file():
                raise FileNotFoundError(f"no notebook at {path}")
        elif CHECKOUT_NOTEBOOK.is_file():
            path = CHECKOUT_NOTEBOOK
        else:
            path = write_app_notebook(Path(tmp) / "explorer_app.ipynb")
        try:
            return subprocess.call(voila_command(path, port, open_browser))
        except KeyboardInterrupt:
            return 0
