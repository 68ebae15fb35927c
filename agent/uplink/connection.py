"""The uplink's connection owner: one thread, one WebSocket, an outbox that loses nothing.

Flow: ``send()`` (pipeline thread) -> bounded inbound queue -> outbox of utterances -> socket.
What is owed (the outbox, final timeouts) is the pure unit in ``outbox.py``, what the wire
means and which utterance a result belongs to is the protocol session's (sans-I/O); this thread
only owns the socket: the select/wake loop, pings, backoff, and writing what they hand it.

Reconnect: exponential backoff with full jitter up to a cap; 401/403 and fatal closes back off
slowly and are reported once per episode; pings detect a half-open socket within
``ping_timeout_s``; between utterances the connection is renewed before ``max_connection_s``.
The link is reported down on the first failed connect (also at boot) and up on the next success.
A normal close by the service while nothing is owed (its idle timeout) is not an outage: the
link stays up and the next connection is made when speech starts.

Stop: ``close`` first waits, within its budget, for the results of utterances already sent; what
is still owed stays in the spool for the next start.
"""

from __future__ import annotations

import logging
import platform
import queue
import random
import select
import socket
import threading
import time

import websocket

from agent import __version__
from agent.events import LinkStatus, PartialResult, ResultEvent, SegmentEvent, UplinkError
from agent.queues import QUEUES, Sink
from agent.uplink.addresses import next_address, with_origin
from agent.uplink.config import UplinkConfig
from agent.uplink.outbox import Outbox
from agent.uplink.protocol import Message, ProtocolError, Session
from agent.uplink.spool import Spool
from parley_common.languages import base_language

log = logging.getLogger("parley.uplink")

FATAL_CLOSE_CODES = {1002, 1007, 4000}
NORMAL_CLOSE_CODES = {1000, 1001}
# The service is busy: Azure throttling, or a Parley gateway making room for a newer session by
# closing an idle one. Not our fault and not for long: the usual jittered backoff (nothing owed: the
# next connection waits for speech), not the fatal one's auth_backoff_ms (60 s of a deaf room).
BUSY_CLOSE_CODE = 4429
AUTH_STATUSES = {401, 403}
POLL_S = 0.02
USER_AGENT = (f"User-Agent: Parley/{__version__} ({platform.system()} {platform.release()} {platform.machine()}; "
              f"Python {platform.python_version()})")


def _open_spool(directory: str | None) -> Spool | None:
    if not directory:
        return None
    try:
        return Spool(directory)
    except OSError as exc:  # speech is still kept in memory; a restart would lose it
        log.error("cannot use the spool %s (%s); utterances owed a result are kept in memory only", directory, exc)
        return None


class Uplink:
    """``start()``; ``send(event)`` from the audio path (never blocks); ``close()``."""

    def __init__(self, config: UplinkConfig, results: Sink, session: Session, *, clock=time.monotonic,
                 spool_dir: str | None = None):
        self.config = config
        self.results = results
        self.session = session
        self._clock = clock
        self._inbound: queue.Queue[SegmentEvent] = QUEUES["uplink"].make(config.inbound_queue_events)
        # send() pokes this pair so the uplink thread wakes for new audio as fast as for socket data.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._spool = _open_spool(spool_dir)
        self._spool_dir = spool_dir
        self._outbox = Outbox(session, max_audio_s=config.outbox_max_audio_s, final_timeout_s=config.final_timeout_s,
                              spoken_language=self._spoken_language(), emit=self._emit, clock=clock,
                              speech_expected=config.speech_output, spool=self._spool)
        if self._spool:
            self.next_utterance_id = self._spool.next_utterance_id()
            self._outbox.restore(self._spool.load())
        else:
            self.next_utterance_id = 1
        self._ws: websocket.WebSocket | None = None
        self._stop = threading.Event()
        self._drain_until: float | None = None  # set by close(): wait for finals due until then
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)
        self._backoff_ms = config.reconnect.initial_backoff_ms
        self._address: int | None = None  # index into uplink.urls of the last attempt
        self._address_failed = False  # it failed or dropped: the next attempt goes to another
        self._next_attempt = 0.0
        self._connected_at = 0.0
        self._last_rx = 0.0
        self._last_ping = 0.0
        self._reported_refusal = False
        self._link_shown: bool | None = None  # what the last LinkStatus said
        self._idle_closed = False  # the service closed an idle link: reconnect when speech starts
        self.connected = False
        self.connect_attempts = 0
        self.connects = 0
        self.protocol_errors = 0

    # -- called from other threads -----------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def send(self, event: SegmentEvent) -> None:
        if QUEUES["uplink"].offer(self._inbound, event):
            self._outbox.overflowed(event.utterance_id)  # the whole utterance is dropped, with a warning
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # already awake, or closing

    def acknowledge(self, utterance_id: int) -> None:
        """The results side stored this final in every durable output: a restart must not send it
        again, so its spool entry goes (results thread; the file was closed at the utterance's end)."""
        if self._spool:
            self._spool.remove(utterance_id)

    @property
    def spool_problem(self) -> str | None:
        if self._spool is None:
            return f"cannot use {self._spool_dir}: utterances owed a result are in memory only" if self._spool_dir else None
        return self._spool.problem

    @property
    def idle(self) -> bool:
        """Nothing queued and no utterance waiting for its final."""
        return self._inbound.empty() and not self._outbox

    @property
    def pending_utterances(self) -> int:
        return len(self._outbox)

    @property
    def dropped_utterances(self) -> int:
        return self._outbox.dropped_utterances

    @property
    def thread_alive(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop within ``timeout_s``, using most of it to wait for finals already due. Idempotent; safe
        before ``start()``."""
        deadline = time.monotonic() + timeout_s
        self._drain_until = self._clock() + max(0.0, timeout_s - 0.5)
        self._stop.set()
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass
        if self._thread.is_alive():
            self._thread.join(max(0.1, deadline - time.monotonic()))
        if self._spool and not self._thread.is_alive():
            self._spool.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- the uplink thread -------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set() or self._finals_due():
            try:
                self._step()
            except Exception:  # the uplink thread must never die; a bug costs a reconnect
                log.exception("uplink error; reconnecting")
                self._disconnect("internal error")
                time.sleep(0.1)
        if self._outbox.finals_owed:
            log.info("stopping with %d utterance(s) owed a result%s", self._outbox.finals_owed,
                     "; they are sent after the restart" if self._spool else "")
        self._disconnect("shutting down", normal=True)

    def _finals_due(self) -> bool:
        """While stopping: connected, within the budget, and an utterance is sent or being sent."""
        return (self._drain_until is not None and self._ws is not None and self._clock() < self._drain_until
                and self._outbox.finals_due > 0)

    def _step(self) -> None:
        self._drain_inbound()
        now = self._clock()
        ws = self._ws
        if ws is None:
            if now >= self._next_attempt and not (self._idle_closed and not self._outbox):
                self._connect()
            else:
                self._wait(None)
            return
        # Each stage may drop the connection (a reset during a send); the next stage then has no socket.
        # While self._ws is still set it is this ws: only _connect sets another, and only when it is None.
        for stage in (self._transmit, self._receive, self._keepalive):
            stage(ws)
            if self._ws is None:
                return
        self._check_timeouts()

    def _check_timeouts(self) -> None:
        stalled = self._outbox.check_timeouts()
        if stalled:
            self._disconnect(f"no result for utterance(s) {stalled}; sending them again on a new connection",
                             normal=True)
            self._next_attempt = self._clock()

    def _drain_inbound(self) -> None:
        while True:
            try:
                self._outbox.accept(self._inbound.get_nowait())
            except queue.Empty:
                return

    # -- connection --------------------------------------------------------------------------

    def _service_url(self) -> str:
        """Where the next connection goes: the session's URL, on the next of ``uplink.urls`` after a
        failed connect or a drop (``addresses.next_address``); a planned reconnect stays put."""
        url = self.session.url()
        if len(self.config.urls) > 1:
            self._address = next_address(self._address, self._address_failed, len(self.config.urls),
                                         self.config.url_order)
            url = with_origin(url, self.config.urls[self._address])
        self._address_failed = False
        return url

    def _connect(self) -> None:
        self.connect_attempts += 1
        url = self._service_url()
        try:
            # As the SDK: a User-Agent and no Origin (websocket-client adds one; a browser's header,
            # which a service may check against an allow-list, as Azure does for browser clients)
            ws = websocket.create_connection(
                url, header=[USER_AGENT] + self.session.headers(), subprotocols=self.session.subprotocols,
                timeout=self.config.reconnect.connect_timeout_s, enable_multithread=False, suppress_origin=True)
        except websocket.WebSocketBadStatusException as exc:
            self._link(False, f"HTTP {exc.status_code}")
            self._refused(exc.status_code, str(exc).split(" -+-+- ")[0])
            return
        except (OSError, websocket.WebSocketException) as exc:
            why = f"cannot connect to {url.split('?')[0]}: {exc}"
            self._link(False, why)
            self._schedule_retry(why)
            return
        self._ws = ws
        self.connected = True
        self.connects += 1
        self._idle_closed = False
        self._connected_at = self._last_rx = self._last_ping = self._clock()
        self._backoff_ms = self.config.reconnect.initial_backoff_ms
        self._reported_refusal = False
        log.info("connected to %s", url.split("?")[0])
        self._link(True, f"connected to {url.split('?')[0]}")
        self._send(ws, self._outbox.connected())

    def _link(self, up: bool, detail: str) -> None:
        """Report the link once per change: the first failed connect (at boot too) is offline."""
        if up != self._link_shown:
            self._link_shown = up
            self._emit(LinkStatus(up, detail))

    def _refused(self, status: int, detail: str) -> None:
        if status in AUTH_STATUSES and self.session.credentials_rejected():
            self._schedule_retry(f"the service refused our credentials (HTTP {status}); trying fresh ones")
            return
        if status in AUTH_STATUSES:
            delay_ms = self.config.reconnect.auth_backoff_ms
            message = f"the service refused our credentials (HTTP {status}); retrying in {delay_ms / 1000:.0f} s"
            if not self._reported_refusal:
                self._emit(UplinkError(message, fatal=True))
                self._reported_refusal = True
            log.error(message)
            self._next_attempt = self._clock() + delay_ms / 1000
            return
        self._schedule_retry(f"handshake refused: {detail}")

    def _schedule_retry(self, why: str) -> None:
        self._address_failed = True
        delay_ms = random.uniform(0.5, 1.0) * self._backoff_ms
        self._backoff_ms = min(self._backoff_ms * 2, self.config.reconnect.max_backoff_ms)
        self._next_attempt = self._clock() + delay_ms / 1000
        log.warning("%s; retrying in %.2f s", why, delay_ms / 1000)

    def _disconnect(self, why: str, normal: bool = False, fatal: bool = False) -> None:
        ws, self._ws = self._ws, None
        if ws is None:
            return
        try:
            ws.close(timeout=0.2)
        except (OSError, websocket.WebSocketException):
            pass
        self.connected = False
        if normal:
            return
        self._link(False, why)
        if fatal:
            self._emit(UplinkError(why, fatal=True))
            self._next_attempt = self._clock() + self.config.reconnect.auth_backoff_ms / 1000
            log.error("%s; retrying in %.0f s", why, self.config.reconnect.auth_backoff_ms / 1000)
        else:
            self._schedule_retry(why)

    # -- sending -----------------------------------------------------------------------------

    def _transmit(self, ws: websocket.WebSocket) -> None:
        self._send(ws, self._outbox.transmit())

    def _send(self, ws: websocket.WebSocket, messages: list[Message]) -> None:
        """Write what the outbox and session handed over; a failure costs the connection."""
        try:
            for message in messages:
                if isinstance(message, bytes):
                    ws.send_binary(message)
                else:
                    ws.send(message)
        except (OSError, websocket.WebSocketException) as exc:
            self._disconnect(f"send failed: {exc}")

    def _keepalive(self, ws: websocket.WebSocket) -> None:
        now = self._clock()
        rc = self.config.reconnect
        if now - self._last_ping >= rc.ping_interval_s:
            self._last_ping = now
            try:
                ws.ping()
            except (OSError, websocket.WebSocketException) as exc:
                return self._disconnect(f"ping failed: {exc}")
        if now - self._last_rx > rc.ping_interval_s + rc.ping_timeout_s:
            return self._disconnect(f"no answer from the service for {now - self._last_rx:.1f} s (half-open?)")
        if now - self._connected_at > rc.max_connection_s and not self._outbox.in_flight and not self._stop.is_set():
            self._disconnect("renewing the connection before the service's time limit", normal=True)
            self._next_attempt = now

    # -- receiving ---------------------------------------------------------------------------

    def _wait(self, sock) -> bool:
        """Sleep until new audio, socket data or POLL_S; True when the socket is readable."""
        watched = [self._wake_r] + ([sock] if sock is not None else [])
        readable, _, _ = select.select(watched, [], [], POLL_S)
        if self._wake_r in readable:
            try:
                while self._wake_r.recv(4096):
                    pass
            except BlockingIOError:
                pass
        return sock is not None and sock in readable

    def _receive(self, ws: websocket.WebSocket) -> None:
        """Read whole messages while the socket has data; wait at most POLL_S when it has none.

        A message is read with a blocking timeout only once data is there, so websocket-client
        never gives up half-way through a frame; a frame that stalls for ping_timeout_s is a
        broken connection.
        """
        if not (self._has_data(ws, 0.0) or self._wait(ws.sock)):
            return
        ws.settimeout(self.config.reconnect.ping_timeout_s)
        for _ in range(64):
            try:
                opcode, data = ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                return self._disconnect("the service stalled in the middle of a message")
            except websocket.WebSocketConnectionClosedException:
                return self._disconnect("the service closed the connection")
            except (OSError, websocket.WebSocketException) as exc:
                return self._disconnect(f"receive failed: {exc}")
            self._last_rx = self._clock()
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return self._on_close(data)
            if opcode not in (websocket.ABNF.OPCODE_PONG, websocket.ABNF.OPCODE_PING):
                message = data.decode("utf-8", errors="replace") if opcode == websocket.ABNF.OPCODE_TEXT else data
                try:
                    replies = self._outbox.receive(message)
                except ProtocolError as exc:
                    self.protocol_errors += 1
                    return self._disconnect(f"garbage from the service ({exc})")
                self._send(ws, replies)
            if self._ws is None or not self._has_data(ws, 0.0):
                return

    def _has_data(self, ws: websocket.WebSocket, timeout_s: float) -> bool:
        sock = ws.sock
        assert sock is not None  # websocket-client clears it only on close, and a closed ws is no longer self._ws
        if getattr(sock, "pending", lambda: 0)():
            return True  # TLS has decrypted bytes buffered that select cannot see
        return bool(select.select([sock], [], [], timeout_s)[0])

    def _on_close(self, data: bytes) -> None:
        code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
        reason = data[2:].decode(errors="replace")
        if code in FATAL_CLOSE_CODES:
            self._outbox.rejected(f"close {code}: {reason}")
            return self._disconnect(f"the service closed with {code}: {reason}", fatal=True)
        if (code in NORMAL_CLOSE_CODES or code == BUSY_CLOSE_CODE) and not self._outbox and self._inbound.empty():
            log.info("the service closed an idle connection (%d: %s); reconnecting when speech starts", code, reason)
            self._idle_closed = True
            return self._disconnect("idle close", normal=True)
        self._disconnect(f"the service closed with {code}: {reason}")

    def _spoken_language(self) -> str:
        voice = self.config.voice
        return base_language(voice) if voice else self.config.to_languages[0]

    def _emit(self, event: ResultEvent) -> None:
        lost = QUEUES["results"].offer(self.results, event, expendable=isinstance(event, PartialResult))
        if lost and not isinstance(event, PartialResult):  # a newer partial or the final will follow
            log.error("results queue full: lost %s for utterance %s", type(event).__name__,
                      getattr(event, "utterance_id", "?"))
