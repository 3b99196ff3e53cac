"""The Voila app: the teaching app's notebook, and ``serve()`` to launch it for a class.

``notebooks/explorer_app.ipynb`` is :func:`app_notebook` written to disk (a test keeps
the two equal); ``landscape-widgets app`` calls :func:`serve`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from .still import TEMPLATE, TEMPLATE_ROOT, still_path, still_root

#: Where the app notebook lives in a source checkout.
CHECKOUT_NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "explorer_app.ipynb"

#: The app's title and the sentences under it.
APP_TITLE = "Loss landscapes"
APP_INTRO = ("What the loss of a neural network looks like around its trained weights, one idea per tab. "
             "Every picture is live: move a control and it is computed again, coarse to fine.")
_APP_TITLE = f"# {APP_TITLE}\n\n{APP_INTRO}"
_EXPLORER_TITLE = (
    "# Loss landscape explorer\n\n"
    "A small MLP trained on scikit-learn's digits. Move a control: the computation restarts "
    "and the picture fills in coarse to fine."
)


def _notebook(title: str, code: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell(title, id="title"), nbformat.v4.new_code_cell(code, id="app")],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )


def app_notebook() -> nbformat.NotebookNode:
    """The teaching app as a notebook: a title and one cell showing
    :func:`~landscape_widgets.app.teaching_app.teaching_app` (a tab per lesson)."""
    return _notebook(_APP_TITLE, "from landscape_widgets.app.teaching_app import teaching_app\n\nteaching_app()")


def explorer_notebook(**demo_kwargs) -> nbformat.NotebookNode:
    """The explorer alone as a notebook: a title and one cell calling
    :func:`landscape_widgets.demo`.

    Parameters
    ----------
    **demo_kwargs
        Keyword arguments written into the ``demo(...)`` call (plain Python literals),
        e.g. ``grids={"2d": (1.0, 31)}``.
    """
    args = ", ".join(f"{k}={v!r}" for k, v in demo_kwargs.items())
    return _notebook(_EXPLORER_TITLE, f"import landscape_widgets as lw\n\nlw.demo({args})")


def write_notebook(nb: nbformat.NotebookNode | None = None, path: str | Path = CHECKOUT_NOTEBOOK) -> Path:
    """Write ``nb`` (default :func:`app_notebook`) to ``path`` (default: the checkout's
    ``notebooks/explorer_app.ipynb``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(app_notebook() if nb is None else nb, path)
    return path


#: Seconds Voila waits for a cell's output after the cell has run.
IOPUB_TIMEOUT = 60

#: Front-end extensions that come with the widget libraries' dependencies (ipyvue and
#: ipyvuetify with ipyvolume) but draw nothing in the app: Voila would load and run them
#: in every page before its widgets.
UNUSED_EXTENSIONS = ("jupyter-vue", "jupyter-vuetify", "@jupyter-notebook/lab-extension")


def voila_command(
    notebook: str | Path,
    port: int | None = None,
    open_browser: bool = True,
    *,
    ip: str = "localhost",
    base_url: str = "/",
    token: str | None = None,
    cull_idle: float = 300.0,
    pool_size: int = 1,
    max_kernels: int = 0,
    connect_grace: float = 120.0,
    close_grace: float = 10.0,
    still: bool = False,
) -> list[str]:
    """The command line that serves ``notebook`` with Voila (sources hidden).

    Parameters
    ----------
    notebook : path
    port : int, optional
        Voila's default (8866) when not given.
    open_browser : bool
    ip : str
        Address to listen on: ``localhost`` (this machine only) or ``0.0.0.0`` (every
        network interface, to serve a class).
    base_url : str
        Path prefix behind a reverse proxy or JupyterHub, e.g. ``/landscapes/``.
    token : str, optional
        Access token: ``""`` generates one (printed in the URL to hand out); a page
        requested without it is refused. ``None``: no token (only on localhost).
    cull_idle : float
        Seconds after which a kernel whose page is closed (idle, no connection) is shut
        down, and with it any computation it still runs; 0 keeps kernels forever.
    pool_size : int
        Kernels kept pre-heated (they have already run the notebook, so a new page opens
        at once); 0 starts each page's kernel when the page is requested.
    max_kernels : int
        Most pages served at once (0: no limit); one more gets a page saying that the
        server is full (:class:`~landscape_widgets.app.kernels.ClassroomKernelManager`).
    connect_grace : float
        Seconds a page's kernel is kept from the idle cull while its browser has not
        connected yet (a page of a busy server can take long to load).
    close_grace : float
        Seconds a page's kernel keeps running, and computing, after its page was closed
        or reloaded, before it is shut down (0: until ``cull_idle``).
    still : bool
        Show the first page's picture while a page loads (the app's template,
        :mod:`~landscape_widgets.app.still`); run the command with :func:`voila_env`.
    """
    cmd = [sys.executable, "-m", "voila", str(notebook), "--strip_sources=True", f"--Voila.ip={ip}",
           # a busy server's kernel can take seconds to send a cell's output: waiting only
           # nbclient's default 4 s, a page came without its app
           f"--VoilaExecutor.iopub_timeout={IOPUB_TIMEOUT}",
           *(f"--VoilaConfiguration.extension_denylist={name}" for name in UNUSED_EXTENSIONS)]
    if port is not None:
        if not 0 < int(port) < 65536:
            raise ValueError(f"port must be between 1 and 65535, got {port}")
        cmd.append(f"--port={int(port)}")
    if not open_browser:
        cmd.append("--no-browser")
    if not base_url.startswith("/") or not base_url.endswith("/"):
        raise ValueError(f"base_url must start and end with '/', got {base_url!r}")
    if base_url != "/":
        cmd.append(f"--Voila.base_url={base_url}")
    if token == "":
        cmd.append("--token")
    elif token is not None:
        cmd.append(f"--Voila.token={token}")
    if cull_idle < 0:
        raise ValueError(f"cull_idle must be >= 0 seconds, got {cull_idle}")
    if cull_idle:
        interval = max(1, int(min(60, cull_idle / 2)))
        cmd += [f"--MappingKernelManager.cull_idle_timeout={int(cull_idle)}",
                f"--MappingKernelManager.cull_interval={interval}"]
    if min(pool_size, max_kernels, connect_grace, close_grace) < 0:
        raise ValueError(f"pool_size, max_kernels, connect_grace and close_grace must be >= 0, got {pool_size}, "
                         f"{max_kernels}, {connect_grace} and {close_grace}")
    if pool_size:
        cmd += ["--preheat_kernel=True", f"--pool_size={int(pool_size)}"]
    if still:
        cmd.append(f"--template={TEMPLATE}")
    cmd += ["--VoilaConfiguration.multi_kernel_manager_class=landscape_widgets.app.kernels.ClassroomKernelManager",
            f"--ClassroomKernelManager.max_kernels={int(max_kernels)}",
            f"--ClassroomKernelManager.connect_grace={float(connect_grace)}",
            f"--ClassroomKernelManager.close_grace={float(close_grace)}"]
    return cmd


def voila_env(still: bool = False) -> dict[str, str]:
    """The environment for :func:`voila_command`: this one, with the app's Voila template
    and the cache's first-page picture on ``JUPYTER_PATH`` when ``still``."""
    env = dict(os.environ)
    if still:
        env["JUPYTER_PATH"] = os.pathsep.join(
            [str(TEMPLATE_ROOT), str(still_root()), *filter(None, [env.get("JUPYTER_PATH")])])
    return env


def descendants(pid: int) -> list[int]:
    """Process ids of every live descendant of ``pid`` (from ``/proc``; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def run_until_signalled(cmd: list[str], grace: float = 10.0, env: dict[str, str] | None = None) -> int:
    """Run ``cmd`` until it exits or this process gets SIGTERM or SIGINT; then stop it and
    every process it started (Voila and its kernels, which run in sessions of their own).

    The child gets SIGTERM and ``grace`` seconds to shut down; whatever of its process
    tree is still alive then gets SIGKILL. Returns the child's exit code (0 when stopped
    by a signal). ``env``: the child's environment (default this one).
    """
    proc = subprocess.Popen(cmd, env=env)
    stopping = []

    def stop(signum, _frame):
        stopping.append(signum)
        tree = descendants(proc.pid)
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        for pid in [proc.pid, *tree]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0 if stopping else code


def serve(
    port: int | None = None,
    open_browser: bool = True,
    notebook: str | None = None,
    *,
    ip: str = "localhost",
    base_url: str = "/",
    token: str | None = None,
    cull_idle: float = 300.0,
    pool_size: int = 1,
    max_kernels: int = 0,
    connect_grace: float = 120.0,
    close_grace: float = 10.0,
) -> int:
    """Serve the explorer app with Voila until stopped; returns Voila's exit code.

    SIGTERM (what a process manager sends) and SIGINT (Ctrl-C) stop Voila and every
    kernel it started. See :func:`voila_command` for the options.

    Parameters
    ----------
    port, open_browser, ip, base_url, token, cull_idle, pool_size, max_kernels, connect_grace, close_grace
        See :func:`voila_command`.
    notebook : str, optional
        Serve this notebook instead: by default the checkout's
        ``notebooks/explorer_app.ipynb``, or, in an installed package, the app notebook
        written to a temporary directory.
    """
    if ip not in ("localhost", "127.0.0.1", "::1") and token is None:
        raise ValueError(
            f"serving on {ip!r} opens the app to the network: give a token (--token to generate one, "
            "--token=SECRET to choose it)"
        )
    with tempfile.TemporaryDirectory(prefix="landscape-widgets-app-") as tmp:
        if notebook is not None:
            path = Path(notebook)
            if not path.is_file():
                raise FileNotFoundError(f"no notebook at {path}")
        elif CHECKOUT_NOTEBOOK.is_file():
            path = CHECKOUT_NOTEBOOK
        else:
            path = write_notebook(app_notebook(), Path(tmp) / "explorer_app.ipynb")
        still = notebook is None and still_path() is not None  # the app's own first picture, up to date
        cmd = voila_command(path, port, open_browser, ip=ip, base_url=base_url, token=token, cull_idle=cull_idle,
                            pool_size=pool_size, max_kernels=max_kernels, connect_grace=connect_grace,
                            close_grace=close_grace, still=still)
        return run_until_signalled(cmd, env=voila_env(still))
