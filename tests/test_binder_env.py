"""Binder's environment for real: ``binder/requirements.txt`` installed into a fresh
virtual environment, then the app notebook (what the Binder badge opens) executed by
that environment's own kernel."""

import json
import subprocess
import sys

import pytest
from test_binder import ROOT, binder_lines

pytestmark = pytest.mark.slow


def test_binder_requirements_install_in_a_fresh_venv_and_run_the_app(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    # Binder reaches the CPU torch index; this machine gets the same torch 2.13.0 CPU wheel
    # from pip's configured index, so the index line is left to pip's configuration here.
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(str(ROOT) if line == "." else line
                                      for line in binder_lines() if not line.startswith("-")) + "\n")
    subprocess.run([python, "-m", "pip", "install", "-q", "-r", requirements], check=True, timeout=1800)
    versions = subprocess.run([python, "-c", "import torch, landscape_widgets, voila; print(torch.__version__)"],
                              check=True, capture_output=True, text=True, timeout=300).stdout
    assert versions.startswith("2.13.0"), versions
    # the app notebook, then the kernel's own prefix, run by the environment's nbclient
    driver = (
        "import json, sys, nbformat\n"
        "from nbclient import NotebookClient\n"
        f"nb = nbformat.read({str(ROOT / 'notebooks' / 'explorer_app.ipynb')!r}, as_version=4)\n"
        "nb.cells.append(nbformat.v4.new_code_cell('import sys; print(sys.prefix)'))\n"
        "NotebookClient(nb, timeout=600, kernel_name='python3').execute()\n"
        "print(json.dumps([c.get('outputs', []) for c in nb.cells]))\n"
    )
    run = subprocess.run([python, "-c", driver], check=True, capture_output=True, text=True, timeout=900,
                         cwd=tmp_path)
    outputs = json.loads(run.stdout.strip().splitlines()[-1])
    assert [o["output_type"] for o in outputs[1]] == ["execute_result"], outputs[1]
    assert "application/vnd.jupyter.widget-view+json" in outputs[1][0]["data"]
    assert outputs[2][0]["text"].strip() == str(venv)  # the environment's own kernel ran the app
