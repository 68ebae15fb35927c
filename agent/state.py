"""The one place that decides what state the device is in (and so what the LEDs show).

Stages report facts; the state follows from them by precedence:

    starting (until started) > error > mic_lost > offline > muted > output_lost > listening > speaking
    > translating > idle

(listening outranks speaking: in full duplex a person talking over the playback is what matters.)

How every state is left, so none can stick:
- error: a fatal uplink error; cleared when the link comes up again — never by time alone,
  because the cause is real. Also a hardware problem the self-check found and could not repair
  (a dead or swapped mic, a rotated channel order with repair off): it lasts until the next start.
  And an internal error that stopped a thread of the agent: the agent then exits, to be restarted.
- mic_lost: the input device is missing (at boot: a HAT not yet probed, a USB mic unplugged) or
  stopped delivering audio; capture keeps reopening it with backoff, and the first frame that
  flows again clears it. Never left by time alone, and never a crash: the box waits for its mic.
- offline: the link dropped; cleared when it reconnects.
- muted: the button/command; cleared by the same.
- output_lost: an output cannot write or play (the transcript's or the spool's disk is full, the
  speaker device is missing); the results still reach every other output and the failing one keeps
  retrying; cleared when it works again (``outputs_failing(())``), never by time alone.
- speaking: the speaker started; cleared when playback finished.
- listening: the front end hears speech; cleared at the end of the utterance.
- translating: an utterance ended and its final is due; cleared by the final or after
  ``translating_timeout_s``.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

STATES = ("starting", "idle", "listening", "translating", "speaking", "muted", "output_lost", "offline", "mic_lost",
          "error")


class DeviceStateMachine:
    def __init__(self, translating_timeout_s: float = 15.0, clock=time.monotonic):
        self._lock = threading.Lock()
        self._clock = clock
        self._timeout_s = translating_timeout_s
        self._subscribers: list[Callable[[str], object]] = []
        self._starting = True
        self._link_up: bool | None = None
        self._uplink_error: str | None = None
        self._capture_error: str | None = None
        self._hardware_problem: str | None = None
        self._internal_error: str | None = None
        self._muted = False
        self._outputs_failing: tuple[str, ...] = ()
        self._speaking = False
        self._listening = False
        self._awaiting_finals = 0
        self._translating_since = 0.0
        self.current = "starting"
        self.history: list[str] = ["starting"]

    def subscribe(self, callback) -> None:
        """``callback(state)`` on every change (and once now)."""
        self._subscribers.append(callback)
        callback(self.current)

    @property
    def muted(self) -> bool:
        return self._muted

    # -- facts -------------------------------------------------------------------------------

    def starting(self) -> None:
        self._update(_starting=True)

    def started(self) -> None:
        self._update(_starting=False)

    def capture_ok(self) -> None:
        if self._capture_error is not None:
            self._update(_capture_error=None)

    def capture_stalled(self, detail: str) -> None:
        if detail and detail != self._capture_error:
            self._update(_capture_error=detail)

    def link_changed(self, connected: bool) -> None:
        changes: dict[str, bool | None] = {"_link_up": connected}
        if connected:
            changes["_uplink_error"] = None
        self._update(**changes)

    def uplink_error(self, message: str, fatal: bool) -> None:
        if fatal:
            self._update(_uplink_error=message)

    def outputs_failing(self, names: tuple[str, ...]) -> None:
        """Every output failing now (``OutputHealth``'s ``on_change``); empty once all work again."""
        self._update(_outputs_failing=tuple(names))

    def hardware_problem(self, detail: str) -> None:
        self._update(_hardware_problem=detail)

    def internal_error(self, detail: str) -> None:
        self._update(_internal_error=detail)

    def speech_started(self) -> None:
        self._update(_listening=True)

    def speech_ended(self) -> None:
        self._update(_listening=False, _awaiting_finals=lambda n: n + 1, _translating_since=self._clock())

    def final_received(self) -> None:
        """A final also proves the service answers again: an error it caused (a refusal) clears."""
        self._update(_awaiting_finals=lambda n: max(0, n - 1), _uplink_error=None)

    def speaker_started(self) -> None:
        self._update(_speaking=True)

    def speaker_finished(self) -> None:
        self._update(_speaking=False)

    def set_muted(self, muted: bool) -> None:
        self._update(_muted=muted, _listening=lambda listening: listening and not muted)

    def toggle_mute(self) -> None:
        self._update(_muted=lambda muted: not muted, _listening=False)

    def tick(self, now: float | None = None) -> None:
        now = self._clock() if now is None else now
        if self._awaiting_finals and now - self._translating_since > self._timeout_s:
            self._update(_awaiting_finals=0)

    # -- derivation --------------------------------------------------------------------------

    def _derive(self) -> str:
        if self._starting:
            return "starting"
        if self._uplink_error or self._hardware_problem or self._internal_error:
            return "error"
        if self._capture_error:
            return "mic_lost"
        if self._link_up is False:
            return "offline"
        if self._muted:
            return "muted"
        if self._outputs_failing:
            return "output_lost"
        if self._listening:
            return "listening"
        if self._speaking:
            return "speaking"
        if self._awaiting_finals:
            return "translating"
        return "idle"

    def _update(self, **changes) -> None:
        with self._lock:
            for name, value in changes.items():  # a callable value maps old -> new under the lock
                setattr(self, name, value(getattr(self, name)) if callable(value) else value)
            state = self._derive()
            changed = state != self.current
            if changed:
                self.current = state
                self.history.append(state)
        if changed:
            for callback in self._subscribers:
                callback(state)
