"""The uplink's connection owner: one thread, one WebSocket, an outbox that loses nothing.

Flow: ``send()`` (pipeline thread) -> bounded inbound queue -> outbox of utterances -> socket.
Every utterance stays in the outbox until its final result arrived. When the connection drops,
every utterance without a final is sent again, whole, on the next connection, in order.

Attributing results:
- USP: one turn per utterance; results carry the turn's request id.
- Translator v1: no ids. Results belong to the oldest utterance without a final. A final that
  arrives before that utterance's end was sent is a piece of it (the service ended a phrase early)
  and is joined; the first final after its end was sent completes it, and so does
  ``V1_SETTLE_S`` of quiet after the end when pieces are already in (the silence tail then holds
  no more speech). Audio goes to the utterance whose final came last.

Reconnect: exponential backoff with full jitter up to a cap; 401/403 and fatal closes back off
slowly and are reported once per episode; pings detect a half-open socket within
``ping_timeout_s``; between utterances the connection is renewed before ``max_connection_s``.
"""

from __future__ import annotations

import logging
import queue
import random
import select
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import websocket

from agent.events import (
    FinalResult,
    LinkStatus,
    PartialResult,
    ResultEvent,
    SegmentEvent,
    SpeechChunk,
    SpeechEnded,
    SpeechStarted,
    SynthesizedSpeech,
    UplinkError,
)
from agent.uplink.config import UplinkConfig
from agent.uplink.protocol import ProtocolError, ServiceAudio, ServiceResult, TurnEnded

log = logging.getLogger("parley.uplink")

FATAL_CLOSE_CODES = {1002, 1007, 4000, 4429}
AUTH_STATUSES = {401, 403}
POLL_S = 0.02
V1_SETTLE_S = 1.5


@dataclass
class Utterance:
    started: SpeechStarted
    chunks: list[bytes] = field(default_factory=list)
    ended: SpeechEnded | None = None
    sent_chunks: int = 0
    begun: bool = False
    end_sent_at: float | None = None
    turn: str | None = None
    pieces: list[ServiceResult] = field(default_factory=list)
    finalized: bool = False
    attempts: int = 0
    stream_start: int | None = None  # v1: byte range on the current connection
    stream_end: int | None = None

    @property
    def id(self) -> int:
        return self.started.utterance_id

    @property
    def audio_s(self) -> float:
        return sum(len(c) for c in self.chunks) / 32000.0

    def reset_transmission(self) -> None:
        self.sent_chunks, self.begun, self.end_sent_at, self.turn, self.pieces = 0, False, None, None, []
        self.stream_start = self.stream_end = None


class Uplink:
    """``start()``; ``send(event)`` from the audio path (never blocks); ``close()``."""

    def __init__(self, config: UplinkConfig, results: queue.Queue, protocol, *, clock=time.monotonic):
        self.config = config
        self.results = results
        self.protocol = protocol
        self._clock = clock
        self._inbound: queue.Queue[SegmentEvent] = queue.Queue(maxsize=config.inbound_queue_events)
        # send() pokes this pair so the uplink thread wakes for new audio as fast as for socket data.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._outbox: OrderedDict[int, Utterance] = OrderedDict()
        self._overflowed: set[int] = set()
        self._ws: websocket.WebSocket | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)
        self._backoff_ms = config.reconnect.initial_backoff_ms
        self._next_attempt = 0.0
        self._connected_at = 0.0
        self._last_rx = 0.0
        self._last_ping = 0.0
        self._last_final_utterance: int | None = None
        self._reported_refusal = False
        self.connected = False
        self.connect_attempts = 0
        self.connects = 0
        self.dropped_utterances = 0
        self.protocol_errors = 0

    # -- called from other threads -----------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def send(self, event: SegmentEvent) -> None:
        try:
            self._inbound.put_nowait(event)
        except queue.Full:
            self._overflowed.add(event.utterance_id)  # the whole utterance is dropped, with a warning
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # already awake, or closing

    @property
    def idle(self) -> bool:
        """Nothing queued and no utterance waiting for its final."""
        return self._inbound.empty() and not self._outbox

    @property
    def pending_utterances(self) -> int:
        return len(self._outbox)

    @property
    def thread_alive(self) -> bool:
        return self._thread.is_alive()

    def close(self, timeout_s: float = 2.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)
        self._wake_r.close()
        self._wake_w.close()

    # -- the uplink thread -------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:  # the uplink thread must never die; a bug costs a reconnect
                log.exception("uplink error; reconnecting")
                self._disconnect("internal error")
                time.sleep(0.1)
        self._disconnect("shutting down", normal=True)

    def _step(self) -> None:
        self._drain_inbound()
        now = self._clock()
        if self._ws is None:
            if now >= self._next_attempt:
                self._connect()
            else:
                self._wait(None)
            return
        self._transmit()
        self._receive()
        self._keepalive(now)
        self._check_final_timeouts(now)

    def _drain_inbound(self) -> None:
        while True:
            try:
                event = self._inbound.get_nowait()
            except queue.Empty:
                break
            if event.utterance_id in self._overflowed:
                self._drop(event.utterance_id, "the uplink queue overflowed")
                continue
            if isinstance(event, SpeechStarted):
                self._outbox[event.utterance_id] = Utterance(event)
                self._enforce_outbox_limit()
            elif event.utterance_id in self._outbox:
                utterance = self._outbox[event.utterance_id]
                if isinstance(event, SpeechChunk):
                    utterance.chunks.append(event.frame.samples[:, 0].astype("<i2").tobytes())
                elif isinstance(event, SpeechEnded):
                    utterance.ended = event

    def _enforce_outbox_limit(self) -> None:
        while len(self._outbox) > 1 and sum(u.audio_s for u in self._outbox.values()) > self.config.outbox_max_audio_s:
            oldest = next(iter(self._outbox))
            self._drop(oldest, f"more than {self.config.outbox_max_audio_s:.0f} s of speech waiting")

    def _drop(self, utterance_id: int, why: str) -> None:
        if self._outbox.pop(utterance_id, None) is not None or utterance_id in self._overflowed:
            self.dropped_utterances += 1
            log.warning("dropped utterance %d: %s (%d dropped so far)", utterance_id, why, self.dropped_utterances)
            self._emit(UplinkError(f"utterance {utterance_id} dropped: {why}"))
        self._overflowed.discard(utterance_id)

    # -- connection --------------------------------------------------------------------------

    def _connect(self) -> None:
        self.connect_attempts += 1
        url = self.protocol.url()
        try:
            ws = websocket.create_connection(
                url, header=self.protocol.headers(), subprotocols=self.protocol.subprotocols,
                timeout=self.config.reconnect.connect_timeout_s, enable_multithread=False)
        except websocket.WebSocketBadStatusException as exc:
            self._refused(exc.status_code, str(exc).split(" -+-+- ")[0])
            return
        except (OSError, websocket.WebSocketException) as exc:
            self._schedule_retry(f"cannot connect to {url.split('?')[0]}: {exc}")
            return
        self._ws = ws
        self.connected = True
        self.connects += 1
        self._connected_at = self._last_rx = self._last_ping = self._clock()
        self._backoff_ms = self.config.reconnect.initial_backoff_ms
        self._reported_refusal = False
        self.protocol.on_connect(ws)
        for utterance in self._outbox.values():
            utterance.reset_transmission()  # nothing without a final is trusted to have arrived
        log.info("connected to %s", url.split("?")[0])
        self._emit(LinkStatus(True, f"connected to {url.split('?')[0]}"))

    def _refused(self, status: int, detail: str) -> None:
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
        self._emit(LinkStatus(False, why))
        if fatal:
            self._emit(UplinkError(why, fatal=True))
            self._next_attempt = self._clock() + self.config.reconnect.auth_backoff_ms / 1000
            log.error("%s; retrying in %.0f s", why, self.config.reconnect.auth_backoff_ms / 1000)
        else:
            self._schedule_retry(why)

    # -- sending -----------------------------------------------------------------------------

    def _transmit(self) -> None:
        """Send what is new, utterance by utterance, in order; the next starts once the previous ended."""
        try:
            for utterance in self._outbox.values():
                if utterance.end_sent_at is not None:
                    continue
                if not utterance.begun:
                    utterance.attempts += 1
                    self.protocol.begin(self._ws, utterance)
                    utterance.begun = True
                while utterance.sent_chunks < len(utterance.chunks):
                    self.protocol.send_audio(self._ws, utterance, utterance.chunks[utterance.sent_chunks])
                    utterance.sent_chunks += 1
                if utterance.ended is None:
                    return
                self.protocol.end(self._ws, utterance)
                utterance.end_sent_at = self._clock()
        except (OSError, websocket.WebSocketException) as exc:
            self._disconnect(f"send failed: {exc}")

    def _keepalive(self, now: float) -> None:
        if self._ws is None:
            return
        rc = self.config.reconnect
        if now - self._last_ping >= rc.ping_interval_s:
            self._last_ping = now
            try:
                self._ws.ping()
            except (OSError, websocket.WebSocketException) as exc:
                return self._disconnect(f"ping failed: {exc}")
        if now - self._last_rx > rc.ping_interval_s + rc.ping_timeout_s:
            return self._disconnect(f"no answer from the service for {now - self._last_rx:.1f} s (half-open?)")
        in_flight = any(u.begun for u in self._outbox.values())
        if now - self._connected_at > rc.max_connection_s and not in_flight:
            self._disconnect("renewing the connection before the service's time limit", normal=True)
            self._next_attempt = now

    def _check_final_timeouts(self, now: float) -> None:
        for utterance in list(self._outbox.values()):
            if utterance.end_sent_at is None:
                continue
            waited_s = now - utterance.end_sent_at
            if not self.protocol.turns and utterance.pieces and waited_s >= V1_SETTLE_S:
                self._complete(utterance)
                continue
            if waited_s < self.config.final_timeout_s:
                continue
            if utterance.pieces or utterance.finalized:
                self._complete(utterance)
            else:
                log.warning("no result for utterance %d within %.0f s", utterance.id, self.config.final_timeout_s)
                self._emit(FinalResult(utterance.id, "", {}, _azimuth(utterance),
                                       utterance.started.start_sample, _duration(utterance)))
                self._outbox.pop(utterance.id, None)

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

    def _receive(self) -> None:
        """Read whole messages while the socket has data; wait at most POLL_S when it has none.

        A message is read with a blocking timeout only once data is there, so websocket-client
        never gives up half-way through a frame; a frame that stalls for ping_timeout_s is a
        broken connection.
        """
        if not (self._has_data(0.0) or self._wait(self._ws.sock)):
            return
        self._ws.settimeout(self.config.reconnect.ping_timeout_s)
        for _ in range(64):
            try:
                opcode, data = self._ws.recv_data(control_frame=True)
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
                    events = self.protocol.parse(message)
                except ProtocolError as exc:
                    self.protocol_errors += 1
                    return self._disconnect(f"garbage from the service ({exc})")
                for event in events:
                    self._dispatch(event)
            if self._ws is None or not self._has_data(0.0):
                return

    def _has_data(self, timeout_s: float) -> bool:
        sock = self._ws.sock
        if getattr(sock, "pending", lambda: 0)():
            return True  # TLS has decrypted bytes buffered that select cannot see
        return bool(select.select([sock], [], [], timeout_s)[0])

    def _on_close(self, data: bytes) -> None:
        code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
        reason = data[2:].decode(errors="replace")
        if code in FATAL_CLOSE_CODES:
            in_flight = next((u for u in self._outbox.values() if u.begun and not u.finalized), None)
            if in_flight is not None and in_flight.attempts >= 2:
                self._drop(in_flight.id, f"the service rejected it twice (close {code}: {reason})")
            return self._disconnect(f"the service closed with {code}: {reason}", fatal=True)
        self._disconnect(f"the service closed with {code}: {reason}")

    def _dispatch(self, event) -> None:
        if isinstance(event, ServiceResult):
            utterance = self._target(event.turn, event.stream_position)
            if utterance is None:
                return
            if not event.final:
                self._emit(PartialResult(utterance.id, _join(utterance.pieces + [event]),
                                         _join_translations(utterance.pieces + [event])))
                return
            utterance.pieces.append(event)
            self._last_final_utterance = utterance.id  # v1 audio follows its final
            if utterance.end_sent_at is not None and not utterance.finalized:
                self._finalize(utterance)
        elif isinstance(event, ServiceAudio):
            target = self._outbox.get(self._turn_owner(event.turn)) if event.turn else None
            utterance_id = target.id if target else self._last_final_utterance
            if utterance_id is not None:
                language = event.language or self._spoken_language()
                self._emit(SynthesizedSpeech(utterance_id, language, event.wav_bytes, time.monotonic()))
        elif isinstance(event, TurnEnded):
            owner = self._turn_owner(event.turn)
            if owner is not None:
                utterance = self._outbox[owner]
                if utterance.end_sent_at is None:
                    utterance.reset_transmission()  # the service ended the turn early: send it again
                    return
                self._complete(utterance)
                if hasattr(self.protocol, "telemetry") and self._ws is not None:
                    self.protocol.telemetry(self._ws, event.turn)

    def _spoken_language(self) -> str:
        voice = self.config.voice
        return voice.split("-")[0].lower() if voice else self.config.to_languages[0]

    def _turn_owner(self, turn: str | None) -> int | None:
        return next((u.id for u in self._outbox.values() if u.turn == turn), None)

    def _target(self, turn: str | None, position: int | None = None) -> Utterance | None:
        if turn is not None:
            owner = self._turn_owner(turn)
            return self._outbox.get(owner) if owner is not None else None
        open_ones = [u for u in self._outbox.values() if u.begun and not u.finalized]
        if position is not None:
            for utterance in open_ones:
                end = utterance.stream_end if utterance.stream_end is not None else float("inf")
                if utterance.stream_start is not None and utterance.stream_start - 32000 <= position < end:
                    return utterance  # (a recognizer's pre-roll may reach up to a second back)
            return None  # speech the service found outside any open utterance (tail noise, a finished one)
        return open_ones[0] if open_ones else None

    def _finalize(self, utterance: Utterance) -> None:
        utterance.finalized = True
        self._emit(FinalResult(utterance.id, _join(utterance.pieces), _join_translations(utterance.pieces),
                               _azimuth(utterance), utterance.started.start_sample, _duration(utterance)))
        if not self.protocol.turns:
            self._outbox.pop(utterance.id, None)

    def _complete(self, utterance: Utterance) -> None:
        if not utterance.finalized:
            self._finalize(utterance)
        self._outbox.pop(utterance.id, None)

    def _emit(self, event: ResultEvent) -> None:
        try:
            self.results.put_nowait(event)
        except queue.Full:
            if isinstance(event, PartialResult):
                return  # a newer partial or the final will follow
            try:
                self.results.put(event, timeout=1.0)
            except queue.Full:
                log.error("results queue full: lost %s for utterance %s", type(event).__name__,
                          getattr(event, "utterance_id", "?"))


def _join(pieces: list[ServiceResult]) -> str:
    return " ".join(p.text for p in pieces if p.text)


def _join_translations(pieces: list[ServiceResult]) -> dict[str, str]:
    languages = dict.fromkeys(lang for p in pieces for lang in p.translations)
    return {lang: " ".join(p.translations[lang] for p in pieces if p.translations.get(lang)) for lang in languages}


def _azimuth(utterance: Utterance) -> float | None:
    """The direction estimated over the whole utterance once it has ended, else the early one."""
    if utterance.ended is not None and utterance.ended.azimuth_deg is not None:
        return utterance.ended.azimuth_deg
    return utterance.started.azimuth_deg


def _duration(utterance: Utterance) -> float | None:
    return utterance.ended.duration_ms if utterance.ended else None
