"""A kernel manager for a class on one server: at most ``max_kernels`` pages at once.

Voila starts one kernel per open page, or hands out one of its pre-heated kernels.
With ``ClassroomKernelManager.max_kernels`` set, a page that would take one more gets
Voila's error page with :data:`FULL`, instead of pushing the server out of memory.
Pre-heated kernels waiting in the pool do not count.
"""

from __future__ import annotations

import asyncio
import time

from jupyter_core.utils import ensure_async
from jupyter_server._tz import utcnow
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado import web
from traitlets import Float, Int

#: What a student sees when the server is full.
FULL = "This server is full. Close a page you no longer use, or try again in a few minutes"


class ClassroomKernelManager(AsyncMappingKernelManager):
    """Voila's kernel manager with a limit on the kernels serving pages.

    Voila wraps its kernel manager class in a pooling subclass when kernels are
    pre-heated; the limit is checked where a page takes a kernel: a fresh one
    (:meth:`start_kernel` for a page) or a pre-heated one (the subclass's
    ``get_rendered_notebook``). The idle culler leaves a page's kernel alone until the
    page's browser has connected, for up to ``connect_grace`` seconds (a busy server's
    page can take long to load); a pre-heated kernel's idle time starts again when it
    is handed out. A page's kernel whose browsers have all gone (the tab closed or
    reloaded: a reload gets a kernel of its own) is shut down ``close_grace`` seconds
    later unless a browser connected again, so that a computation nobody sees does not
    slow the pages still open (the idle culler leaves such a kernel running: its
    computations run in threads, and the kernel reads as idle to it).
    """

    max_kernels = Int(0, config=True, help="Most kernels serving pages at once (0: no limit); "
                                           "pre-heated kernels waiting in the pool do not count.")
    connect_grace = Float(120.0, config=True, help="Seconds a page's kernel is kept from the idle culler "
                                                   "while its browser has not connected yet.")
    close_grace = Float(10.0, config=True, help="Seconds a page's kernel keeps running after its last browser "
                                                "connection closed (0: until the idle culler ends it).")

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        hand_out = cls.__dict__.get("get_rendered_notebook")
        if hand_out is not None:
            async def get_rendered_notebook(self, *args, **kw):
                self.check_capacity()
                result = await hand_out(self, *args, **kw)
                kernel_id = result[2]  # (render task, rendered cells, kernel id)
                self._for_page(kernel_id)
                self.get_kernel(kernel_id).last_activity = utcnow()  # it was idle since pre-heated
                return result

            get_rendered_notebook.__doc__ = hand_out.__doc__
            cls.get_rendered_notebook = get_rendered_notebook

    def __init__(self, **kwargs) -> None:
        self._serving_ids: set[str] = set()  # before Voila's subclass fills its pool
        self._unconnected: dict[str, float] = {}  # page kernels whose browser has not connected: since when
        super().__init__(**kwargs)

    def _for_page(self, kernel_id: str) -> None:
        self._serving_ids.add(kernel_id)
        running = set(self.list_kernel_ids())
        self._unconnected = {k: t for k, t in self._unconnected.items() if k in running}
        self._unconnected[kernel_id] = time.monotonic()

    def awaiting_browser(self, kernel_id: str) -> bool:
        """Whether ``kernel_id`` serves a page whose browser has not connected yet, for
        less than ``connect_grace`` seconds."""
        since = self._unconnected.get(kernel_id)
        if since is not None and time.monotonic() - since > self.connect_grace:
            del self._unconnected[kernel_id]
            return False
        return since is not None

    def notify_connect(self, kernel_id: str) -> None:
        self._unconnected.pop(kernel_id, None)  # the page's browser is there
        super().notify_connect(kernel_id)

    def notify_disconnect(self, kernel_id: str) -> None:
        super().notify_disconnect(kernel_id)
        if self.close_grace and kernel_id in self._serving_ids and not self._kernel_connections.get(kernel_id):
            asyncio.get_running_loop().call_later(
                self.close_grace, lambda: asyncio.ensure_future(self._shut_down_if_left(kernel_id)))

    async def _shut_down_if_left(self, kernel_id: str) -> None:
        if kernel_id in self.list_kernel_ids() and not self._kernel_connections.get(kernel_id):
            self.log.info("kernel %s: its page closed %g s ago; shutting it down", kernel_id, self.close_grace)
            await ensure_async(self.shutdown_kernel(kernel_id))

    async def cull_kernel_if_idle(self, kernel_id: str):
        if self.awaiting_browser(kernel_id):
            return None
        return await ensure_async(super().cull_kernel_if_idle(kernel_id))

    def serving(self) -> int:
        """Kernels serving pages (started for one, or handed out from the pool) that still run."""
        self._serving_ids &= set(self.list_kernel_ids())
        return len(self._serving_ids)

    def check_capacity(self) -> None:
        """Raise HTTP 503 (:data:`FULL`) when ``max_kernels`` pages are served already."""
        if self.max_kernels and self.serving() >= self.max_kernels:
            self.log.warning("server full: %d pages served (max_kernels=%d)", self.serving(), self.max_kernels)
            raise web.HTTPError(503, FULL, reason=FULL)  # the error page shows the reason

    async def start_kernel(self, *args, **kwargs) -> str:
        for_page = (kwargs.get("env") or {}).get("VOILA_PREHEAT") != "True"  # not to fill the pool
        if for_page:
            self.check_capacity()
        kernel_id = await super().start_kernel(*args, **kwargs)
        if for_page:
            self._for_page(kernel_id)
        return kernel_id
