"""A class on one app server: ``n`` headless Chromium pages open the teaching app at
once, then close; the server's processes and memory are followed throughout.

Shared by ``tests/test_app_load.py`` (which asserts on the figures) and
``benchmarks/bench_class.py`` (which prints them).
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import threading
import time

import psutil
from browser_helpers import ARTIFACTS, CHROMIUM_ARGS, STILL_MARKS, free_port, require_chromium, screenshot, wait_until

TOKEN = "class-secret"
#: The explorer's picture is complete: its progress says N/N points (N as "2,601").
COMPLETE = """() => {
    const p = document.querySelector('.lesson-explorer .landscape-progress');
    const m = p && p.innerText.match(/([\\d,]+)\\/([\\d,]+) points/);  // counts as '2,601'
    return !!m && m[1] === m[2] && !!document.querySelector(".lesson-explorer image.heatmap[href^='data:image']");
}"""


def tree(proc: psutil.Process) -> list[psutil.Process]:
    """The server and every live process it started."""
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def rss(procs: list[psutil.Process]) -> int:
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def kernels(proc: psutil.Process) -> list[psutil.Process]:
    out = []
    for p in tree(proc)[1:]:
        try:
            if "ipykernel" in " ".join(p.cmdline()):
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def settled(procs: list[psutil.Process], seconds: float = 3.0) -> bool:
    """Every process used under 5% of a core over ``seconds``."""
    for p in procs:
        p.cpu_percent(None)
    time.sleep(seconds)
    try:
        return all(p.cpu_percent(None) < 5.0 for p in procs)
    except psutil.NoSuchProcess:
        return False


def class_session(n_pages: int = 8, cull_idle: int = 10) -> dict:
    """Serve the app with ``landscape-widgets app`` (token, one pre-heated kernel, idle
    cull after ``cull_idle`` s), open ``n_pages`` pages at once, close them, then SIGTERM.

    Returns the figures: seconds to each page's complete first picture (from its
    navigation) and to its loading screen's picture, page errors, idle / peak /
    after-close memory of the server's process tree, memory per kernel, seconds until the closed pages' kernels were gone, whether a
    request without the token was refused and one with it served, and the processes
    left after SIGTERM.
    """
    import urllib.error
    import urllib.request

    from playwright.sync_api import sync_playwright

    executable = require_chromium()
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "class_session.app.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "landscape_widgets.app.cli", "app", "--no-browser", "--port", str(port),
         f"--token={TOKEN}", "--cull-idle", str(cull_idle), "--pool-size", "1"],
        stdout=log, stderr=subprocess.STDOUT)
    proc = psutil.Process(server.pid)
    base = f"http://127.0.0.1:{port}/"
    out: dict = {"pages": n_pages, "cull_idle": cull_idle}
    try:
        wait_until(lambda: kernels(proc), 120, "the pre-heated kernel")
        wait_until(lambda: settled(tree(proc)), 180, "the pre-heated kernel to run the app")
        out["idle_bytes"] = rss(tree(proc))
        try:
            urllib.request.urlopen(base, timeout=30)
            out["refused_without_token"] = "/login" in urllib.request.urlopen(base, timeout=30).url
        except urllib.error.HTTPError as err:
            out["refused_without_token"] = err.code in (401, 403)
        peak = [out["idle_bytes"]]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.is_set():
                peak.append(rss(tree(proc)))
                time.sleep(0.5)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
            pages, errors, started = [], [], []
            for i in range(n_pages):
                # a context each, as a student's own browser (one context would share
                # Chromium's six connections per server among all pages)
                page = browser.new_context(viewport={"width": 1300, "height": 1100}).new_page()
                page.on("pageerror", lambda exc, i=i: errors.append(f"page {i}: {exc}"))
                page.add_init_script(STILL_MARKS)
                started.append(time.monotonic())
                page.goto(base + f"?token={TOKEN}", wait_until="commit", timeout=180_000)
                pages.append(page)
            seconds = []
            for page, start in zip(pages, started):
                page.wait_for_function(COMPLETE, timeout=300_000, polling=200)
                seconds.append(time.monotonic() - start)
            out["still_seconds"] = [m["still"] / 1000 for m in (page.evaluate("window.stillMarks") for page in pages)
                                    if "still" in m]
            out["served_with_token"] = all("Loss landscapes" in page.inner_text("body") for page in pages)
            screenshot(pages[-1], "40_class_last_page")
            out["seconds"] = seconds
            out["errors"] = errors
            serving = kernels(proc)
            out["kernels_while_open"] = len(serving)
            per_kernel = sorted(rss([k]) for k in serving)
            out["kernel_bytes"] = per_kernel
            browser.close()
        closed = time.monotonic()
        # the pages' kernels go; the refilled pre-heated one stays
        wait_until(lambda: len(kernels(proc)) <= 1, cull_idle + 60, "the closed pages' kernels to be culled")
        out["culled_after"] = time.monotonic() - closed
        wait_until(lambda: settled(tree(proc)), 120, "the server to settle")
        out["after_bytes"] = rss(tree(proc))
        sampling.set()
        sampler.join()
        out["peak_bytes"] = max(peak)
        everything = tree(proc)
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        time.sleep(2)
        out["left_after_sigterm"] = [p.pid for p in everything if p.is_running() and p.status() != "zombie"]
        out["median_seconds"] = statistics.median(out["seconds"])
        out["worst_seconds"] = max(out["seconds"])
        return out
    finally:
        if server.poll() is None:
            for p in reversed(tree(proc)):
                try:
                    p.kill()
                except psutil.NoSuchProcess:
                    pass
        log.close()


def report(figures: dict) -> str:
    mb = lambda b: f"{b / 2**20:.0f} MB"  # noqa: E731
    per = figures["kernel_bytes"]
    return "\n".join([
        f"{figures['pages']} pages at once: complete first picture after median {figures['median_seconds']:.1f} s, "
        f"worst {figures['worst_seconds']:.1f} s (from navigation); the loading screen's picture on "
        f"{len(figures['still_seconds'])} pages, after median {statistics.median(figures['still_seconds'] or [0]):.1f} s, "
        f"worst {max(figures['still_seconds'] or [0]):.1f} s",
        f"server memory: idle {mb(figures['idle_bytes'])}, peak {mb(figures['peak_bytes'])}, after the pages "
        f"closed {mb(figures['after_bytes'])}; per kernel {mb(min(per))}-{mb(max(per))} "
        f"(median {mb(statistics.median(per))}, {figures['kernels_while_open']} kernels)",
        f"closed pages' kernels gone {figures['culled_after']:.0f} s after closing (cull {figures['cull_idle']} s)",
        f"page errors: {len(figures['errors'])}; refused without token: {figures['refused_without_token']}; "
        f"served with token: {figures['served_with_token']}; processes left after SIGTERM: "
        f"{len(figures['left_after_sigterm'])}",
    ])
