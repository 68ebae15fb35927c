"""A logging USP proxy on loopback: forwards a WebSocket to the service and records every message, parsed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support.loopback_ws import LoopbackServer
from parley_common.protocols.usp import UspMessage, parse_binary, parse_text

FORWARDED_HEADERS = ("authorization", "ocp-apim-subscription-key", "x-connectionid")


@dataclass
class Logged:
    direction: str  # "up" (client -> service) or "down"
    message: UspMessage
    binary: bool


class UspLoggingProxy(LoopbackServer):
    def __init__(self, target_base_url: str):
        super().__init__(max_size=None)
        self.target = target_base_url
        self.handshakes: list[dict] = []  # path, query, headers of each client upgrade
        self.log: list[Logged] = []

    def up(self) -> list[UspMessage]:
        return [entry.message for entry in self.log if entry.direction == "up"]

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
