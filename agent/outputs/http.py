"""The agent's HTTP server: the captions page (``/``, live over Server-Sent Events at ``/events``),
``/healthz`` and ``/metrics``.

Why aiohttp: one library gives the asyncio server, streaming responses for SSE and an
``AppRunner`` that runs on a loop we own on our own thread, without taking over the process's
signals or main loop as uvicorn does; starlette+uvicorn would be two libraries for the same.

Flow, one direction: the agent's threads call ``publish(event)``, which only puts the event on a
bounded queue and wakes the loop; the loop folds events into the captions state (owned by the
loop alone) and fans them out to each page's own bounded queue. A page too slow to keep up is
disconnected and, like EventSource always does, reconnects and gets a fresh snapshot. ``/healthz``
and ``/metrics`` call ``status()``, the agent's read-only snapshot of its counters.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import json
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable

from aiohttp import web

from agent.events import FinalResult, LinkStatus, PartialResult, SpeechEnded, SpeechStarted, SynthesizedSpeech
from agent.outputs.caption_history import CaptionHistory, history_path
from agent.outputs.config import HttpConfig
from agent.outputs.http_guard import (SECURITY_HEADERS, ConnectionGuard, GuardedSite, allowed_hosts, connection_cap,
                                     hide_server_version, is_allowed, quiet_client_triggered_logs)
from agent.outputs.http_metrics import Metrics
from agent.queues import QUEUES

log = logging.getLogger("parley.http")

CLIENT_QUEUE_ITEMS = 256
KEEPALIVE_S = 15.0
SSE_RETRY_MS = 1000
START_TIMEOUT_S = 10.0
BIND_RETRY_S = 3.0
MAX_BODY_BYTES = 1024  # every route is a GET


class HttpListenError(OSError):
    """The captions port cannot be had: says which key, what is wrong and what to do."""

    def __init__(self, config: HttpConfig, cause: BaseException):
        reason = getattr(cause, "strerror", None) or str(cause)
        advice = (f"allowed: a free port, or stop the program holding it (ss -ltnp 'sport = :{config.port}')"
                  if getattr(cause, "errno", None) == errno.EADDRINUSE else
                  "allowed: an address of this machine (outputs.http.host) and a port this user may bind")
        super().__init__(getattr(cause, "errno", None),
                         f"outputs.http.port {config.port} on {config.host} cannot be listened on ({reason}); {advice}")


@dataclass(frozen=True)
class DeviceState:
    """The device state machine's current state, as a publishable event."""

    state: str


def _caption(event: PartialResult | FinalResult, azimuth_deg: float | None) -> dict:
    return {"utterance": event.utterance_id, "source": event.source_text, "translations": event.translations,
            "azimuth_deg": None if azimuth_deg is None else round(azimuth_deg),
            "party": event.party, "language": event.language, "session": event.session}


class CaptionState:
    """What a page needs to draw itself from scratch; owned by the server's loop.

    ``languages``: the columns this box can fill ('source' and every language read); ``spoken``: the
    language of a caption that names none (the one-language setup's ``from_language``). The finals
    survive a restart in ``history`` (the page shows the room what was said before)."""

    def __init__(self, finals_kept: int, clock=time.time, languages: tuple[str, ...] = (), spoken: str | None = None,
                 history: CaptionHistory | None = None):
        self._clock = clock
        self.device_state = "starting"
        self.link_up = False
        self.link_since = clock()
        self.languages, self.spoken = languages, spoken
        self.history = history or CaptionHistory(None, finals_kept)
        self.finals: deque[dict] = deque(self.history.load(), maxlen=finals_kept)
        self.partial: dict | None = None
        self.azimuth_deg: dict[int, float | None] = {}

    def snapshot(self) -> dict:
        return {"type": "snapshot", "state": self.device_state, "link_up": self.link_up,
                "finals": list(self.finals), "partial": self.partial, "languages": list(self.languages),
                "spoken": self.spoken}

    def apply(self, event) -> dict | None:
        """Fold one event in; returns the message for the pages, or None if they need none."""
        if isinstance(event, DeviceState):
            self.device_state = event.state
            return {"type": "state", "state": event.state}
        if isinstance(event, LinkStatus):
            if event.connected != self.link_up:
                self.link_up, self.link_since = event.connected, self._clock()
            return {"type": "link", "link_up": event.connected}
        if isinstance(event, SpeechStarted):
            self.azimuth_deg[event.utterance_id] = event.azimuth_deg
            while len(self.azimuth_deg) > 64:
                self.azimuth_deg.pop(next(iter(self.azimuth_deg)))
            return None
        if isinstance(event, PartialResult):
            self.partial = _caption(event, self.azimuth_deg.get(event.utterance_id))
            return {"type": "partial", **self.partial}
        if isinstance(event, FinalResult):
            azimuth = event.azimuth_deg if event.azimuth_deg is not None else self.azimuth_deg.get(event.utterance_id)
            final = _caption(event, azimuth)
            self.finals.append(final)
            self.history.append(final)
            if self.partial and self.partial["utterance"] == event.utterance_id:
                self.partial = None
            return {"type": "final", **final}
        return None


class HttpOutput:
    """Start with ``start()`` (returns once listening), feed with ``publish()``, end with ``close()``.

    ``/healthz`` says "no audio" after ``audio_stall_s``: the daemon's bound, the same one that stops
    petting the systemd watchdog."""

    def __init__(self, config: HttpConfig, status: Callable[[], dict], audio_stall_s: float,
                 languages: tuple[str, ...] = (), spoken: str | None = None):
        self.config = config
        self.audio_stall_s = audio_stall_s
        self.enabled = config.enabled
        self._status = status
        self._events: queue.Queue = QUEUES["http"].make(config.queue_items)
        self.events_dropped = 0
        self._token = Path(config.token_file).read_text().strip() if config.token_file else None
        self._hosts = allowed_hosts(config)
        self.guard: ConnectionGuard | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)
        self._start_error: BaseException | None = None
        self.port: int | None = None
        history = CaptionHistory(history_path(config.history_file) if config.enabled else None, config.finals_kept)
        self.state = CaptionState(config.finals_kept, languages=languages, spoken=spoken, history=history)
        self.metrics = Metrics(self.status)
        self._clients: set[asyncio.Queue] = set()
        self._ended_at: dict[int, float] = {}
        self._started_monotonic_s = time.monotonic()

    # -- agent side (any thread) ---------------------------------------------------------------

    def publish(self, event) -> None:
        """Hand an event to the server; never blocks. Stamped now, for the latency histograms."""
        if not self.enabled:
            return
        if QUEUES["http"].offer(self._events, (time.monotonic(), event)):
            self.events_dropped += 1
            return
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop closed while we were publishing: the server is gone
                pass

    def device_state(self, state: str) -> None:
        self.publish(DeviceState(state))

    def start(self) -> None:
        if not self.enabled:
            return
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise RuntimeError("HTTP server did not start")
        if self._start_error is not None:
            raise HttpListenError(self.config, self._start_error) from None

    def close(self, timeout_s: float = 1.0) -> None:
        stopping = self._stopping  # set with the loop, by the server thread
        if not self.enabled or self._loop is None or stopping is None or not self._thread.is_alive():
            return
        self._loop.call_soon_threadsafe(stopping.set)
        self._thread.join(timeout_s)
        if not self._thread.is_alive():
            self.state.history.close()

    @property
    def pages_connected(self) -> int:
        return len(self._clients)

    @property
    def thread_native_id(self) -> int | None:
        """For measuring the server thread's own CPU (bench/http_cost.py)."""
        return self._thread.native_id

    @property
    def url(self) -> str:
        host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
        return f"http://{host}:{self.port}"

    # -- server side (the loop's thread) -------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # bind errors: reported to start()
            self._start_error = exc
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        wake, stopping = self._wake, self._stopping = asyncio.Event(), asyncio.Event()
        app = web.Application(middlewares=[self._admit, self._auth], client_max_size=MAX_BODY_BYTES)
        app.add_routes([web.get("/", self._page), web.get("/events", self._sse),
                        web.get("/healthz", self._healthz), web.get("/metrics", self._metrics)])
        app.on_response_prepare.append(_security_headers)
        timeout_s = self.config.request_timeout_s
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5,
                               keepalive_timeout=timeout_s, lingering_time=min(2.0, timeout_s))
        await runner.setup()
        quiet_client_triggered_logs()
        hide_server_version()
        server = runner.server
        assert server is not None  # setup() made it
        guard = self.guard = ConnectionGuard(server, connection_cap(self.config), timeout_s)
        try:
            await self._listen(runner, guard)
            self.port = runner.addresses[0][1]
            log.info("captions and status on %s", self.url)
            self._ready.set()
            pump = asyncio.create_task(self._pump(wake))
            await stopping.wait()
            pump.cancel()
            for client in list(self._clients):
                self._disconnect(client)
        finally:
            await runner.cleanup()

    async def _listen(self, runner: web.AppRunner, guard: ConnectionGuard) -> None:
        """Bind, retrying a port in use for ``BIND_RETRY_S``: an agent restarted by hand may find its
        predecessor still closing; anything holding the port longer is a conflict to fix (exit 78)."""
        deadline = time.monotonic() + BIND_RETRY_S
        while True:
            try:
                await GuardedSite(runner, self.config.host, self.config.port, guard).start()
                return
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(0.25)

    async def _pump(self, wake: asyncio.Event) -> None:
        """Agent events -> captions state, metrics and every page."""
        while True:
            await wake.wait()
            wake.clear()
            while True:
                try:
                    at_s, event = self._events.get_nowait()
                except queue.Empty:
                    break
                self._observe(at_s, event)
                message = self.state.apply(event)
                if message is not None:
                    self._broadcast(message)

    def _observe(self, at_s: float, event) -> None:
        if isinstance(event, SpeechStarted):
            if event.azimuth_deg is not None:
                self.metrics.confidence.observe(event.doa_confidence)
        elif isinstance(event, SpeechEnded):
            self._ended_at[event.utterance_id] = at_s
            while len(self._ended_at) > 64:
                self._ended_at.pop(next(iter(self._ended_at)))
        elif isinstance(event, FinalResult):
            if event.utterance_id in self._ended_at:
                self.metrics.to_final.observe(at_s - self._ended_at[event.utterance_id])
            if event.azimuth_deg is not None:
                self.metrics.azimuth.observe(event.azimuth_deg % 360)
        elif isinstance(event, SynthesizedSpeech):  # only the first audio of an utterance finds its end
            ended = self._ended_at.pop(event.utterance_id, None)
            if ended is not None:
                self.metrics.to_first_audio.observe(event.received_monotonic_s - ended)

    def _broadcast(self, message: dict) -> None:
        for client in list(self._clients):
            if client.full():  # too slow: drop it; EventSource reconnects and gets a snapshot
                self._disconnect(client)
            else:
                client.put_nowait(message)

    def _disconnect(self, client: asyncio.Queue) -> None:
        """Ends a page's stream: its handler reads the None and returns."""
        self._clients.discard(client)
        while not client.empty():
            client.get_nowait()
        client.put_nowait(None)

    # -- handlers ------------------------------------------------------------------------------

    @web.middleware
    async def _admit(self, request: web.Request, handler):
        """A whole request arrived (the connection's deadline is off); its Host must be ours."""
        guard = self.guard
        assert guard is not None  # made before the site listens
        guard.served(request)
        host = request.headers.get("Host", "")
        hosts = self._hosts
        if hosts is not None and not is_allowed(host, hosts):  # None: any host (is_allowed says so too)
            raise web.HTTPMisdirectedRequest(text=f"Host {host!r} is not served here; allowed: "
                                                  f"{', '.join(sorted(hosts))} (outputs.http.allowed_hosts)\n")
        return await handler(request)

    @web.middleware
    async def _auth(self, request: web.Request, handler):
        if self._token is not None:
            scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
            offered = request.query.get("token") or (credentials.strip() if scheme.lower() == "bearer" else "")
            if not hmac.compare_digest(offered.encode(), self._token.encode()):
                raise web.HTTPUnauthorized(text="access token required (?token= or Authorization: Bearer)\n",
                                           headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    async def _page(self, request: web.Request) -> web.Response:
        page = resources.files("agent.outputs").joinpath("static/captions.html").read_text(encoding="utf-8")
        return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})

    async def _sse(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        client: asyncio.Queue = asyncio.Queue(maxsize=CLIENT_QUEUE_ITEMS)
        self._clients.add(client)
        try:
            await response.write(f"retry: {SSE_RETRY_MS}\n".encode() + _sse_data(self.state.snapshot()))
            while True:
                try:
                    message = await asyncio.wait_for(client.get(), KEEPALIVE_S)
                except asyncio.TimeoutError:
                    await response.write(b": keepalive\n\n")
                    continue
                if message is None:
                    break
                await response.write(_sse_data(message))
        except ConnectionResetError:  # the page went away
            pass
        finally:
            self._clients.discard(client)
        return response

    async def _healthz(self, request: web.Request) -> web.Response:
        body = self.health()
        return web.json_response(body, status=200 if body["ok"] else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": "text/plain; version=0.0.4"})

    # -- status --------------------------------------------------------------------------------

    def status(self) -> dict:
        return {**self._status(), "events_dropped": self.events_dropped}

    def health(self) -> dict:
        """The /healthz body; ``ok`` is False when there is no audio or the link is down too long."""
        status, now = self.status(), time.time()
        link_down_s = 0.0 if self.state.link_up else now - self.state.link_since
        audio_age_s = status.get("last_frame_age_s")
        if audio_age_s is None:  # no frame yet: count from the server's start
            audio_age_s = time.monotonic() - self._started_monotonic_s
        problems = list(status.get("output_problems") or ())
        if audio_age_s > self.audio_stall_s:
            problems.append(f"no audio for {audio_age_s:.1f} s (bound {self.audio_stall_s} s)")
        if link_down_s > self.config.link_down_bound_s:
            problems.append(f"link down for {link_down_s:.1f} s (bound {self.config.link_down_bound_s} s)")
        problems.extend(status.get("hardware_problems") or ())  # what the self-check found and did not repair
        if status.get("fault"):
            problems.append(status["fault"])
        return {
            "ok": not problems, "problems": problems, "device_state": self.state.device_state,
            "link": {"up": self.state.link_up, "since": _iso(self.state.link_since)},
            "capture": {"state": status.get("capture_state"), "last_frame_age_s": _round(status.get("last_frame_age_s")),
                        "overruns": status.get("overruns")},
            **{key: status.get(key) for key in ("frames", "utterances", "finals", "dropped_utterances", "outbox_depth",
                                                "duplex", "duplex_reason", "echo_delay_ms", "barge_ins", "self_check")},
        }


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)


def _sse_data(message: dict) -> bytes:
    return f"data: {json.dumps(message, ensure_ascii=False)}\n\n".encode()


def _iso(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
