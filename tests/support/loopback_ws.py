"""A websockets server on its own event loop in a thread, for scripted services and proxies in tests."""

from __future__ import annotations

import asyncio
import threading

from websockets.asyncio.server import serve


class LoopbackServer:
    """``with`` starts it on a free loopback port (``port``, ``base_url``) and stops it; subclasses define ``_serve``."""

    def __init__(self, **serve_options):
        self._serve_options = {"subprotocols": ["USP"], **serve_options}
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.port = 0
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self):
        self._thread.start()
        assert self._ready.wait(10), f"{type(self).__name__} did not start"
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    @property
    def base_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def _serve(self, ws) -> None:
        raise NotImplementedError

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with serve(self._serve, "127.0.0.1", 0, **self._serve_options) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()
