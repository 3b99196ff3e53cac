"""``landscape-widgets app`` as a server for a class: token, idle culling, SIGTERM."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import nbformat
import pytest
from browser_helpers import chromium_page, free_port, require_chromium, wait_until

from landscape_widgets.app.serve import descendants, voila_command

pytestmark = pytest.mark.slow


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _kernels(pid: int) -> list[int]:
    return [p for p in descendants(pid) if "ipykernel" in _cmdline(p)]


def _get(url: str, timeout: float = 120) -> tuple[int, str]:
    """Status and text of ``url`` (after redirects: the final URL's path is appended)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, urllib.parse.urlparse(r.url).path + "\n" + r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")
    except OSError:  # not listening yet
        return 0, ""


def _serve(tmp_path, *options: str, source: str = "print('hello class')"):
    """``landscape-widgets app`` on a one-cell notebook of ``source`` with ``options``;
    yields (process, URL)."""
    notebook = tmp_path / "tiny.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)],
                                            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                     "language": "python"}}), notebook)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "landscape_widgets.app.cli", "app", "--no-browser", "--port", str(port),
         "--notebook", str(notebook), *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}/"
    wait_until(lambda: _listening(port), 60, "the server to listen")  # without a page (a kernel)
    yield proc, base
    if proc.poll() is None:
        tree = descendants(proc.pid)
        proc.kill()
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture()
def app(tmp_path):
    """The app server with a token, a 4 s idle cull, no pre-heated kernels and no grace for
    a page whose browser has not connected (here no browser ever does)."""
    yield from _serve(tmp_path, "--token=secret", "--cull-idle", "4", "--pool-size", "0", "--connect-grace", "0")


@pytest.mark.parametrize("pool", ["0", "1"])
def test_a_full_server_says_so(tmp_path, pool):
    """``--max-kernels 1``: the first page is served (from the pre-heated pool when there
    is one), the second gets a page saying that the server is full."""
    from landscape_widgets.app.kernels import FULL

    for proc, base in _serve(tmp_path, "--max-kernels", "1", "--pool-size", pool, "--cull-idle", "0"):
        if pool == "1":
            wait_until(lambda: _kernels(proc.pid), 60, "the pre-heated kernel")
            time.sleep(3)  # it runs the notebook
        status, html = _get(base)
        assert status == 200 and "hello class" in html
        status, html = _get(base)
        assert status == 503 and FULL in html
        assert len([p for p in _kernels(proc.pid)]) <= 1 + int(pool)


def test_a_page_without_the_token_is_refused_and_one_with_it_is_served(app):
    proc, base = app
    status, html = _get(base)  # the token login page, not the app
    assert status in (200, 401, 403) and "hello class" not in html
    assert status != 200 or html.startswith("/login")
    status, html = _get(base + "?token=secret")
    assert status == 200 and "hello class" in html
    # the page loads the widget libraries' front ends, not the unused ones (ipyvuetify's
    # alone took 0.7 s of the browser's main thread before any widget was drawn)
    from landscape_widgets.app.serve import UNUSED_EXTENSIONS

    config = json.loads(html.split('<script id="jupyter-config-data" type="application/json">')[1]
                        .split("</script>")[0])
    loaded = {ext["name"] for ext in config["federated_extensions"]}
    assert {"bqplot", "ipyvolume", "jupyter-webrtc", "@jupyter-widgets/jupyterlab-manager"} <= loaded
    assert not loaded & set(UNUSED_EXTENSIONS)


def test_a_closed_pages_kernel_is_culled(app):
    proc, base = app
    assert _get(base + "?token=secret")[0] == 200  # renders the page: one kernel
    kernels = wait_until(lambda: _kernels(proc.pid), 30, "the page's kernel")
    assert len(kernels) == 1
    # no browser keeps a connection: after 4 s idle (checked every 2 s) the kernel goes
    wait_until(lambda: not _kernels(proc.pid), 30, "the idle kernel to be culled")
    assert proc.poll() is None  # the server itself keeps serving


def test_sigterm_ends_voila_and_every_kernel(app):
    proc, base = app
    assert _get(base + "?token=secret")[0] == 200
    wait_until(lambda: _kernels(proc.pid), 30, "the page's kernel")
    tree = descendants(proc.pid)
    assert any("voila" in _cmdline(p) for p in tree)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    alive = wait_until(lambda: [p for p in tree if _cmdline(p)] == [] or None, 30, "the app's processes to end")
    assert alive is True
    with pytest.raises(OSError):
        urllib.request.urlopen(base, timeout=5)


def test_serving_on_the_network_needs_a_token():
    from landscape_widgets.app.serve import serve

    with pytest.raises(ValueError, match="token"):
        serve(ip="0.0.0.0", open_browser=False)
    cmd = voila_command(Path("a.ipynb"), 8866, False, ip="0.0.0.0", base_url="/c/", token="", cull_idle=60)
    assert "--Voila.ip=0.0.0.0" in cmd and "--Voila.base_url=/c/" in cmd and "--token" in cmd
    assert "--MappingKernelManager.cull_idle_timeout=60" in cmd
    with pytest.raises(ValueError, match="base_url"):
        voila_command(Path("a.ipynb"), base_url="class")


def test_a_pages_kernel_waits_for_its_browser_before_it_can_be_culled(tmp_path):
    """A pooled kernel idle for longer than the cull time is handed to a page whose browser
    does not connect: it is kept for ``--connect-grace`` seconds (a busy server's pages take
    long to load; before, it was culled at the next check), then culled."""
    for proc, base in _serve(tmp_path, "--pool-size", "1", "--cull-idle", "4", "--connect-grace", "10"):
        pooled = wait_until(lambda: _kernels(proc.pid), 60, "the pre-heated kernel")
        time.sleep(9)  # it has run the notebook and idled past the cull time
        assert _get(base)[0] == 200  # hands out the pooled kernel (no browser connects)
        time.sleep(7)  # past the cull time, within the grace
        assert pooled[0] in _kernels(proc.pid)
        wait_until(lambda: pooled[0] not in _kernels(proc.pid), 30, "the unconnected kernel to be culled")


def test_a_closed_pages_kernel_stops_after_the_close_grace_even_while_computing(tmp_path):
    """A page whose kernel computes in a thread (as the explorer does: the kernel reads as
    idle) is closed: with the idle cull off, the kernel is shut down ``--close-grace``
    seconds after its browser left, not before; a page still open keeps its kernel."""
    require_chromium()
    busy = ("import threading, time\n"
            "threading.Thread(target=lambda: [sum(range(10_000)) for _ in iter(int, 1)], daemon=True).start()\n"
            "print('computing')")
    for proc, base in _serve(tmp_path, "--pool-size", "0", "--cull-idle", "0", "--close-grace", "4",
                             "--connect-grace", "0", source=busy):
        with chromium_page() as page:
            page.goto(base, timeout=120_000)
            page.wait_for_selector("text=computing", timeout=120_000)
            (kernel,) = wait_until(lambda: _kernels(proc.pid), 30, "the page's kernel")
            time.sleep(6)  # longer than the grace, with the page open
            assert kernel in _kernels(proc.pid)
            page.close()
            closed = time.monotonic()
            wait_until(lambda: kernel not in _kernels(proc.pid), 30, "the closed page's kernel to stop")
            assert time.monotonic() - closed > 3.0  # (after the grace, not at once)
        assert proc.poll() is None
