"""What keeps the captions port from hurting the agent: a connection cap inside an fd budget, a
deadline for each request to arrive whole, the ``Host`` check, security headers, and bounded logs.

Why: 1,100 half-sent requests to the captions port used to take every file descriptor, so the
uplink could not reconnect for a minute, spool and TTS writes failed and asyncio logged 200,000
traceback lines. Now the HTTP server holds at most ``max_connections`` sockets (beyond them a
client gets a 503 and the socket is closed at once), a connection that has not sent a complete
request within ``request_timeout_s`` is closed, and the process's descriptor limit is raised to
its hard limit at start with ``FD_RESERVE`` kept for everything else.

A loopback bind with no token would answer any ``Host``: a web page the box's browser opens could
read the captions by DNS rebinding. So ``Host`` must name the bind address (or a loopback name
on a loopback bind), or be listed in ``outputs.http.allowed_hosts``.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from ipaddress import ip_address
from typing import cast

from aiohttp import web, web_response

from agent.outputs.config import HttpConfig, is_loopback

log = logging.getLogger("parley.http")

FD_RESERVE = 256  # uplink sockets, spool and transcript files, TTS files, audio devices, GPIO, logs
LOG_RECORDS_PER_MIN = 5
SECURITY_HEADERS = {
    # the page is one file with its own script and style, and talks to its own origin only
    "Content-Security-Policy": ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                                "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
                                "frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Server": "parley",  # no Python or aiohttp version for a scanner to match
}
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nServer: parley\r\nContent-Length: 0\r\nRetry-After: 5\r\n"
           b"Connection: close\r\n\r\n")


def raise_fd_limit() -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (systemd's default soft limit is 1024); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def connection_cap(config: HttpConfig) -> int:
    """``max_connections``, or less when the descriptor limit leaves less beside ``FD_RESERVE``."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return config.max_connections
    return max(4, min(config.max_connections, (soft - FD_RESERVE) // 2))


def allowed_hosts(config: HttpConfig) -> frozenset[str] | None:
    """Host names (no port) a request may name; None: any (a wildcard bind without allowed_hosts,
    where the token guards instead)."""
    extra = {h.lower().strip("[]") for h in config.allowed_hosts}
    if is_loopback(config.host):
        return frozenset({"localhost", "127.0.0.1", "::1", config.host.lower()} | extra)
    if config.host in ("0.0.0.0", "::", ""):
        return frozenset(extra | {"localhost", "127.0.0.1", "::1"}) if extra else None
    return frozenset({config.host.lower().strip("[]")} | extra)


def host_name(header: str) -> str:
    """``Host`` without its port: ``[::1]:8318`` -> ``::1``, ``box:8318`` -> ``box``."""
    if header.startswith("["):
        return header[1:header.find("]")].lower() if "]" in header else header.lower()
    name = header.rsplit(":", 1)[0] if header.count(":") == 1 else header
    return name.lower()


def is_allowed(header: str, hosts: frozenset[str] | None) -> bool:
    if hosts is None:
        return True
    name = host_name(header)
    if name in hosts:
        return True
    try:
        return ip_address(name).is_loopback and "127.0.0.1" in hosts
    except ValueError:
        return False


class _Refused(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).write(REFUSAL)
        transport.close()


class ConnectionGuard:
    """The listening socket's protocol factory: caps connections and gives each one
    ``request_timeout_s`` to deliver a complete request (``served`` marks it, from a middleware)."""

    def __init__(self, server: web.Server, cap: int, request_timeout_s: float, clock=time.monotonic):
        self._server = server
        self.cap = cap
        self._timeout_s = request_timeout_s
        self._awaiting: set = set()  # handlers whose first request has not arrived; each leaves within the timeout
        self._clock = clock
        self.refused = 0
        self.expired = 0
        self._refused_logged_s = -60.0
        self._refused_unlogged = 0

    def __call__(self) -> asyncio.Protocol:
        if len(self._server.connections) >= self.cap:
            self._count_refusal()
            return _Refused()
        handler = self._server()
        self._awaiting.add(handler)
        asyncio.get_running_loop().call_later(self._timeout_s, self._expire, handler)
        return handler

    def served(self, request: web.BaseRequest) -> None:
        self._awaiting.discard(request.protocol)

    def _expire(self, handler) -> None:
        if handler in self._awaiting:
            self._awaiting.discard(handler)
            if handler.transport is not None:
                self.expired += 1
                handler.force_close()

    def _count_refusal(self) -> None:
        self.refused += 1
        self._refused_unlogged += 1
        now = self._clock()
        if now - self._refused_logged_s >= 60.0:
            log.warning("HTTP connection cap (%d) reached: refused %d connection(s) since the last such line",
                        self.cap, self._refused_unlogged)
            self._refused_logged_s, self._refused_unlogged = now, 0


class RateLimitedLog(logging.Filter):
    """At most ``LOG_RECORDS_PER_MIN`` records a minute from a logger a client can trigger (asyncio's
    accept errors, aiohttp's bad-request lines), each one line: a traceback per bad request would
    let any client fill the journal."""

    def __init__(self, clock=time.monotonic):
        super().__init__()
        self._clock = clock
        self._window_s = -60.0
        self._count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = self._clock()
        if now - self._window_s >= 60.0:
            self._window_s, self._count = now, 0
        self._count += 1
        if self._count > LOG_RECORDS_PER_MIN:
            return False
        if record.exc_info and record.exc_info[1] is not None:
            record.msg, record.args = f"{record.getMessage()}: {record.exc_info[1]!r}", None
            record.exc_info, record.exc_text = None, None
        if self._count == LOG_RECORDS_PER_MIN:
            record.msg, record.args = f"{record.getMessage()} (more like this are dropped for a minute)", None
        return True


def hide_server_version() -> None:
    """aiohttp answers a malformed request itself, before any app hook, with ``Server: Python/3.x
    aiohttp/3.x`` (its module default); the agent runs no other aiohttp server, so the default goes."""
    web_response.SERVER_SOFTWARE = SECURITY_HEADERS["Server"]


def quiet_client_triggered_logs() -> None:
    """Install ``RateLimitedLog`` once on the loggers a client can trigger."""
    for name in ("asyncio", "aiohttp.server", "aiohttp.web", "aiohttp.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RateLimitedLog) for f in logger.filters):
            logger.addFilter(RateLimitedLog())


class GuardedSite(web.TCPSite):
    """A TCP site whose connections come through a ``ConnectionGuard`` instead of straight from
    the runner's server (aiohttp has neither a connection cap nor a request-header deadline)."""

    def __init__(self, runner: web.AppRunner, host: str, port: int, guard: ConnectionGuard):
        super().__init__(runner, host, port)
        self.guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with the runner, so cleanup stops it
        self._server = await asyncio.get_running_loop().create_server(
            self.guard, self._host, self._port, backlog=self._backlog, reuse_address=True)
