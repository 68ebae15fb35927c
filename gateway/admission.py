"""Who may hold a session: no client locks others out, and no one streaming speech is pushed out.

Activity is audio at a real-time rate, not any bytes: a message of audio counts only while the
session's audio over the last ``STREAMING_WINDOW_S`` adds up to ``streaming_rate`` of that time,
so 2 bytes a second never count, a 100 ms chunk every 100 ms always does, and a lump of audio
now and then counts only if the lumps average the rate. Telemetry, ``speech.config`` and pings
are not audio. A session whose phrase is still being recognized is busy too, whatever it sends.

Room is made only from idle sessions: at an address's quota or at ``max_sessions`` the session
idle longest gives way once idle for ``idle_yield_s``, closed with 4429, which the Speech SDK
reports as TooManyRequests instead of reconnecting silently (it does on 1000/1001/1011 — the
eviction storm behind a NAT). Otherwise the newcomer gets 429 and a ``Retry-After``. Everything
runs on the event loop thread, so no lock.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Awaitable, Protocol

from gateway.config import LimitsConfig

CLOSE_EVICTED = 4429  # the service's "too many requests": fatal for the SDKs, so no silent retry
STREAMING_WINDOW_S = 4.0  # the audio rate is judged over this much of the recent past
MIN_WINDOW_S = 0.5  # ... and over at least this much, right after admission


class Closable(Protocol):
    """A slot's connection, as far as admission is concerned: it can be closed with a code."""

    def close(self, code: int, reason: str) -> Awaitable[object]: ...


@dataclass(eq=False)
class Slot:
    """One admitted connection. A fresh slot counts as active at admission (monotonic clock)."""

    address: str
    connection: Closable
    streaming_rate: float = 0.5
    admitted_s: float = field(default_factory=time.monotonic)
    released: bool = False
    session: object | None = None  # the protocol's open TranslationSession, whose phrase state drain reads
    _recent: deque = field(default_factory=deque)  # (arrival_s, audio_s) within the window
    _recent_audio_s: float = 0.0
    _streamed_at_s: float = 0.0
    waited_s: float = 0.0  # spent waiting for a message since the last streaming audio (see receive)

    def __post_init__(self) -> None:
        self._streamed_at_s = self.admitted_s

    def heard_audio(self, audio_s: float, now_s: float | None = None) -> None:
        now_s = time.monotonic() if now_s is None else now_s
        self._recent.append((now_s, audio_s))
        self._recent_audio_s += audio_s
        while self._recent and self._recent[0][0] <= now_s - STREAMING_WINDOW_S:
            self._recent_audio_s -= self._recent.popleft()[1]
        window_s = max(MIN_WINDOW_S, min(STREAMING_WINDOW_S, now_s - self.admitted_s))
        if self._recent_audio_s >= self.streaming_rate * window_s:
            self._streamed_at_s = now_s
            self.waited_s = 0.0

    def idle_s(self, now_s: float | None = None) -> float:
        """How long since the session last streamed audio at the real-time rate."""
        return max(0.0, (time.monotonic() if now_s is None else now_s) - self._streamed_at_s)

    def in_phrase(self) -> bool:
        return bool(getattr(self.session, "phrase_open", False))


@dataclass(frozen=True)
class Refusal:
    status: int  # 429 at a limit, 503 while draining
    kind: str  # a short label for metrics: session_cap | address_quota | draining
    reason: str
    retry_after_s: int


class Admission:
    def __init__(self, limits: LimitsConfig, on_evict=None):
        self._limits = limits
        self._quotas = [(ipaddress.ip_network(net, strict=False), n) for net, n in limits.address_quotas.items()]
        self._slots: list[Slot] = []
        self._on_evict = on_evict or (lambda slot, reason: None)
        self.draining = False
        self.last_busy_s = time.monotonic()  # when a session was last open

    @property
    def sessions(self) -> int:
        return len(self._slots)

    @property
    def slots(self) -> tuple[Slot, ...]:
        return tuple(self._slots)

    def quota(self, address: str) -> int | None:
        """Sessions ``address`` may hold: the most specific ``address_quotas`` network, else the default."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return self._limits.max_sessions_per_address
        matches = [(net.prefixlen, n) for net, n in self._quotas if ip.version == net.version and ip in net]
        return max(matches)[1] if matches else self._limits.max_sessions_per_address

    def admit(self, address: str, connection) -> Slot | Refusal:
        """A slot for a new connection, making room from an idle session if one has idled long enough."""
        if self.draining:
            return Refusal(503, "draining", "this gateway is draining for maintenance; connect to another", 5)
        now_s = time.monotonic()
        quota = self.quota(address)
        mine = [s for s in self._slots if s.address == address]
        if quota is not None and len(mine) >= quota:
            made_room = self._make_room(mine, now_s, "idle session gave way to a newer one from the same address")
            if isinstance(made_room, int):
                return Refusal(429, "address_quota", f"{address} holds its quota of {quota} sessions, all active; "
                                                     f"retry after {made_room} s", made_room)
        if len(self._slots) >= self._limits.max_sessions:
            made_room = self._make_room(self._slots, now_s, "idle session gave way to a new client")
            if isinstance(made_room, int):
                return Refusal(429, "session_cap", f"too many sessions (limit {self._limits.max_sessions}), all "
                                                   f"active; retry after {made_room} s", made_room)
        slot = Slot(address, connection, self._limits.streaming_rate, now_s)
        self._slots.append(slot)
        self.last_busy_s = now_s
        return slot

    def has_room(self) -> bool:
        """Whether a new client from a fresh address would be admitted now."""
        if self.draining:
            return False
        if len(self._slots) < self._limits.max_sessions:
            return True
        now_s = time.monotonic()
        return any(not s.in_phrase() and s.idle_s(now_s) >= self._limits.idle_yield_s for s in self._slots)

    def _make_room(self, candidates: list[Slot], now_s: float, reason: str) -> Slot | int:
        """Evict the idlest candidate idle for ``idle_yield_s``; else the seconds until one may be."""
        idle = [s for s in candidates if not s.in_phrase()]
        idlest = max(idle, key=lambda s: s.idle_s(now_s), default=None)
        if idlest is None or idlest.idle_s(now_s) < self._limits.idle_yield_s:
            waited_s = idlest.idle_s(now_s) if idlest else 0.0
            return max(1, math.ceil(self._limits.idle_yield_s - waited_s))
        self.evict(idlest, CLOSE_EVICTED, reason)
        return idlest

    def release(self, slot: Slot) -> None:
        if not slot.released:
            slot.released = True
            self._slots.remove(slot)
            self.last_busy_s = time.monotonic()

    def evict(self, slot: Slot, code: int, reason: str) -> None:
        self.release(slot)
        self._on_evict(slot, reason)
        asyncio.ensure_future(slot.connection.close(code, reason))


async def receive(ws, slot: Slot, idle_timeout_s: float):
    """The next message, or None once the session has waited ``idle_timeout_s`` in here without
    streaming audio. Only time spent waiting counts: while the gateway decodes, a client's audio
    queues up unread, and that client is not idle."""
    remaining_s = idle_timeout_s - slot.waited_s
    if remaining_s <= 0:
        return None
    started_s = time.monotonic()
    try:
        return await asyncio.wait_for(ws.recv(), timeout=remaining_s)
    except asyncio.TimeoutError:
        return None
    finally:
        slot.waited_s += time.monotonic() - started_s
