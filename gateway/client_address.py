"""Who the client is behind a balancer: the PROXY protocol v2 header or X-Forwarded-For, believed
only from ``limits.trusted_proxies``.

PROXY v2 (HAProxy ``send-proxy-v2``) comes before the HTTP request, where ``websockets`` reads
its handshake, so ``ProxiedConnection`` strips it from the first bytes and hands the rest on. It
works in any HAProxy mode and for the health checks too. A connection from a trusted proxy may
come without it (a direct probe), one from anyone else may not carry it: that one is cut.
X-Forwarded-For (``option forwardfor``) is read right to left, skipping trusted hops, so an
address a client wrote into the header itself is never taken.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from websockets.asyncio.server import ServerConnection

log = logging.getLogger("parley.gateway.address")

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
FIXED_BYTES = 16  # signature, version/command, family/transport, 2-byte length
MAX_HEADER_BYTES = FIXED_BYTES + 536  # unix addresses (216) plus generous TLVs
_ADDRESS_BYTES = {0x1: 4, 0x2: 16}  # AF_INET, AF_INET6 (AF_UNIX and UNSPEC name no IP)


class ProxyHeaderError(ValueError):
    """A malformed PROXY v2 header: the connection is cut."""


@dataclass(frozen=True)
class ProxyHeader:
    source: str | None  # None: LOCAL command (the proxy's own health check) or a non-IP family
    length: int  # bytes the header took


def parse_proxy_v2(data: bytes) -> ProxyHeader | None:
    """The header at the start of ``data``; None while more bytes are needed. Call only when
    ``data`` starts with (a prefix of) ``SIGNATURE``."""
    if len(data) < FIXED_BYTES:
        return None
    version_command, family_transport = data[12], data[13]
    if version_command >> 4 != 2 or version_command & 0xF not in (0, 1):
        raise ProxyHeaderError(f"PROXY version/command byte {version_command:#04x} is not v2 LOCAL or PROXY")
    length = FIXED_BYTES + int.from_bytes(data[14:16], "big")
    if length > MAX_HEADER_BYTES:
        raise ProxyHeaderError(f"PROXY header of {length} bytes is too long")
    if len(data) < length:
        return None
    width = _ADDRESS_BYTES.get(family_transport >> 4)
    if version_command & 0xF == 0 or width is None:
        return ProxyHeader(None, length)
    if length < FIXED_BYTES + 2 * width + 4:
        raise ProxyHeaderError("PROXY header too short for its address family")
    return ProxyHeader(str(ipaddress.ip_address(data[FIXED_BYTES:FIXED_BYTES + width])), length)


def is_trusted(address: str | None, networks) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip.version == net.version and ip in net for net in networks)


def trusted_networks(entries) -> tuple:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def forwarded_client(peer: str, forwarded_for: str | None, networks) -> str:
    """The right-most X-Forwarded-For address not of a trusted proxy; the peer unless it is trusted."""
    if not forwarded_for or not is_trusted(peer, networks):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, networks):
            return hop
    return hops[0] if hops else peer


class ProxiedConnection(ServerConnection):
    """A websockets server connection that first reads a PROXY v2 header, if a trusted peer sends one
    (from any other peer it is cut, with a log line naming ``limits.trusted_proxies``). ``trusted``
    is set on the class by ``for_networks``."""

    trusted: tuple = ()

    @classmethod
    def for_networks(cls, networks) -> type[ProxiedConnection]:
        return type("ProxiedConnection", (cls,), {"trusted": tuple(networks)})

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.proxied_address: str | None = None
        self._preamble: bytes | None = b""  # None: done. Looked for always, to name a misconfiguration

    def data_received(self, data: bytes) -> None:
        if self._preamble is None:
            return super().data_received(data)
        self._preamble += data
        buffered = self._preamble
        if not SIGNATURE.startswith(buffered[:len(SIGNATURE)]):
            self._preamble = None  # plain HTTP (a direct client, a probe)
            return super().data_received(buffered)
        try:
            header = parse_proxy_v2(buffered) if len(buffered) >= len(SIGNATURE) else None
        except ProxyHeaderError as exc:
            return self._cut(str(exc))
        if header is None:
            return None
        peer = self.transport.get_extra_info("peername")
        if not is_trusted(peer[0] if peer else None, self.trusted):
            return self._cut(f"PROXY header from {peer[0] if peer else '?'}, which is not in limits.trusted_proxies")
        self._preamble, self.proxied_address = None, header.source
        if len(buffered) > header.length:
            super().data_received(buffered[header.length:])

    def _cut(self, why: str) -> None:
        log.warning("refusing a connection: %s", why)
        self._preamble = None
        self.transport.abort()


def client_address(connection, headers, networks) -> str:
    """The address admission counts by: PROXY v2's source, else X-Forwarded-For, else the peer."""
    peer = connection.remote_address
    peer_ip = str(peer[0]) if peer else "unknown"
    proxied = getattr(connection, "proxied_address", None)
    if proxied:
        return proxied
    return forwarded_client(peer_ip, headers.get("X-Forwarded-For"), networks)
