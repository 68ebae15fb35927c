"""Who may hold a session: no client locks others out by connecting and sending nothing.

Only audio counts as activity (telemetry, ``speech.config`` and pings do not). A session that has
sent no audio for ``idle_timeout_s`` is closed. One address holds at most
``max_sessions_per_address`` sessions: a newer one replaces that address's idlest. At
``max_sessions``, the session that has been without audio longest gives way to a new client once
it has been idle for ``idle_yield_s``; otherwise the newcomer gets 429 with a ``Retry-After``
saying when a slot can free up. Everything runs on the event loop thread, so no lock.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

from gateway.config import LimitsConfig

CLOSE_NORMAL = 1000


@dataclass(eq=False)
class Slot:
    """One admitted connection; ``last_audio_s`` starts at admission (monotonic clock)."""

    address: str
    connection: object
    last_audio_s: float = field(default_factory=time.monotonic)
    released: bool = False

    def heard_audio(self) -> None:
        self.last_audio_s = time.monotonic()

    def idle_s(self, now_s: float | None = None) -> float:
        return (time.monotonic() if now_s is None else now_s) - self.last_audio_s


@dataclass(frozen=True)
class Refusal:
    reason: str
    retry_after_s: int


class Admission:
    def __init__(self, limits: LimitsConfig):
        self._limits = limits
        self._slots: list[Slot] = []
        self.last_busy_s = time.monotonic()  # when a session was last open

    @property
    def sessions(self) -> int:
        return len(self._slots)

    def admit(self, address: str, connection) -> Slot | Refusal:
        """A slot for a new connection, making room by evicting an idle session if needed."""
        mine = [s for s in self._slots if s.address == address]
        if len(mine) >= self._limits.max_sessions_per_address:
            # The address's own idlest session makes way: usually a connection its client already
            # gave up on (half-open, abandoned), and an address never holds more than its share.
            self._evict(max(mine, key=lambda s: s.idle_s()), "replaced by a newer session from the same address")
        if len(self._slots) >= self._limits.max_sessions:
            now = time.monotonic()
            idlest = max(self._slots, key=lambda s: s.idle_s(now))
            if idlest.idle_s(now) < self._limits.idle_yield_s:
                wait_s = math.ceil(self._limits.idle_yield_s - idlest.idle_s(now))
                return Refusal(f"too many sessions (limit {self._limits.max_sessions}); retry after {wait_s} s",
                               max(1, wait_s))
            self._evict(idlest, "idle session gave way to a new client")
        slot = Slot(address, connection)
        self._slots.append(slot)
        self.last_busy_s = time.monotonic()
        return slot

    def release(self, slot: Slot) -> None:
        if not slot.released:
            slot.released = True
            self._slots.remove(slot)
            self.last_busy_s = time.monotonic()

    def _evict(self, slot: Slot, reason: str) -> None:
        self.release(slot)
        asyncio.ensure_future(slot.connection.close(CLOSE_NORMAL, reason))


async def receive(ws, slot: Slot, idle_timeout_s: float):
    """The next message, or None once the session has gone ``idle_timeout_s`` without audio."""
    remaining_s = idle_timeout_s - slot.idle_s()
    if remaining_s <= 0:
        return None
    try:
        return await asyncio.wait_for(ws.recv(), timeout=remaining_s)
    except asyncio.TimeoutError:
        return None
