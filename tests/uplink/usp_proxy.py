"""A logging USP proxy on loopback: forwards a WebSocket to the service and records every message, parsed."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from parley_common.protocols.usp import UspMessage, parse_binary, parse_text

FORWARDED_HEADERS = ("authorization", "ocp-apim-subscription-key", "x-connectionid")


@dataclass
class Logged:
    direction: str  # "up" (client -> service) or "down"
    message: UspMessage
    binary: bool


class UspLoggingProxy:
    def __init__(self, target_base_url: str):
        self.target = target_base_url
        self.handshakes: list[dict] = []  # path, query, headers of each client upgrade
        self.log: list[Logged] = []
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.port = 0
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def __enter__(self) -> "UspLoggingProxy":
        self._thread.start()
        assert self._ready.wait(10), "proxy did not start"
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    @property
    def base_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def up(self) -> list[UspMessage]:
        return [entry.message for entry in self.log if entry.direction == "up"]

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with serve(self._serve, "127.0.0.1", 0, subprotocols=["USP"], max_size=None) as server:
            self.port = server.sockets[0].getsockname()[1]
            self._ready.set()
            await self._stop.wait()

    async def _serve(self, client) -> None:
        url = urlsplit(client.request.path)
        headers = {k.lower(): v for k, v in client.request.headers.raw_items()}
        self.handshakes.append({"path": url.path, "query": parse_qs(url.query), "headers": headers})
        forwarded = {k: v for k, v in headers.items() if k in FORWARDED_HEADERS}
        async with connect(self.target + client.request.path, additional_headers=forwarded,
                           subprotocols=["USP"], max_size=None) as service:
            await asyncio.gather(self._pump(client, service, "up"), self._pump(service, client, "down"),
                                 return_exceptions=True)

    async def _pump(self, source, sink, direction: str) -> None:
        try:
            async for raw in source:
                binary = isinstance(raw, bytes)
                self.log.append(Logged(direction, parse_binary(raw) if binary else parse_text(raw), binary))
                await sink.send(raw)
        except ConnectionClosed:
            pass
        finally:
            await sink.close()
