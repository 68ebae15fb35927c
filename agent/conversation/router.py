"""Which party said it: seats on the azimuth circle, and the per-utterance routing decision.

Pure units, no threads and no sockets, so they are tested directly. Audio streams while the
person is still talking, so the decision is made early and in two steps: a first guess from the
direction at speech start, then the route is fixed once ``decide_after_ms`` of speech has
refined the front end's estimate: at once if the estimate still points at the first guess's seat
(confirmed), else once it has stayed in one seat for the last ``settle_ms`` (corrected), or at
the end of an utterance that never settled, from its whole-utterance direction. A correction has
to settle because at low SNR in a reverberant room, a few hundred milliseconds into a new
talker's speech, the estimate can still jump to the talker's mirror image (θ + 180° on a small
array) and back. Until the route is fixed the utterance's events are held here, so a corrected
utterance goes only to the right connection. Once fixed, every later event of the utterance
follows it: an utterance is never split between languages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Literal

from agent.events import SegmentEvent, SpeechChunk, SpeechEnded, SpeechStarted

log = logging.getLogger("parley.conversation")

SETTLE_MS = 300.0  # longer than the mirror-image excursions measured at RT60 0.6 s and 5 dB (up to 200 ms)


def sector_width_deg(from_deg: float, to_deg: float) -> float:
    """Counter-clockwise from ``from_deg`` to ``to_deg``; 0 -> 360 is the whole circle."""
    width = (to_deg - from_deg) % 360.0
    return 360.0 if width == 0.0 and from_deg != to_deg else width


@dataclass(frozen=True)
class Seat:
    party: str
    from_deg: float
    to_deg: float

    @property
    def width_deg(self) -> float:
        return sector_width_deg(self.from_deg, self.to_deg)

    def contains(self, azimuth_deg: float) -> bool:
        return (azimuth_deg - self.from_deg) % 360.0 <= self.width_deg

    def overlaps(self, other: "Seat") -> bool:
        """Sharing a boundary is not overlapping: 0-180 and 180-0 split the circle."""
        return ((other.from_deg - self.from_deg) % 360.0 < self.width_deg
                or (self.from_deg - other.from_deg) % 360.0 < other.width_deg)


class SeatMap:
    """Azimuth -> party name: the seat containing it, else ``default_party`` (None: nobody)."""

    def __init__(self, seats: list[Seat], default_party: str | None = None):
        self.seats = seats
        self.default_party = default_party

    def party_at(self, azimuth_deg: float | None) -> str | None:
        if azimuth_deg is not None:
            for seat in self.seats:
                if seat.contains(azimuth_deg % 360.0):
                    return seat.party
        return self.default_party


@dataclass(frozen=True)
class Delivery:
    """Send ``event`` on ``party``'s connection (None: a seatless utterance, kept for language identification)."""

    party: str | None
    event: SegmentEvent


@dataclass(frozen=True)
class RouteDecision:
    utterance_id: int
    party: str | None  # None: dropped (outside every seat and no default party)
    first_guess: str | None
    azimuth_deg: float | None
    how: Literal["at start", "after decide_after_ms", "at the end"]
    held_ms: float = 0.0  # audio held before the decision: what it cost the partials

    @property
    def corrected(self) -> bool:
        return self.party != self.first_guess


@dataclass
class _Open:
    started: SpeechStarted
    first_guess: str | None
    held: list[SegmentEvent]
    held_ms: float = 0.0
    seat_party: str | None = None  # the party whose seat the estimate points at now ...
    seat_since_ms: float | None = None  # ... since this much held audio; None: never left the first guess's
    decision: RouteDecision | None = None


class UtteranceRouter:
    """Segment events in (with the front end's current direction), deliveries out.

    ``route(event, azimuth_now_deg)`` returns what to send where now; ``on_decision`` hears each
    utterance's decision. An utterance whose whole-utterance direction points at another seat than
    the route already fixed is counted in ``late_disagreements`` and logged, not re-sent.
    """

    def __init__(self, seats: SeatMap, decide_after_ms: float,
                 on_decision: Callable[[RouteDecision], None] | None = None, settle_ms: float = SETTLE_MS,
                 keep_unseated: bool = False):
        self.seats = seats
        self.decide_after_ms = decide_after_ms
        self.settle_ms = settle_ms
        self.keep_unseated = keep_unseated  # deliver seatless utterances too (party None): the language decides
        self._on_decision = on_decision or (lambda decision: None)
        self._open: dict[int, _Open] = {}
        self.routed: dict[str, int] = {}
        self.corrected = 0
        self.dropped = 0
        self.late_disagreements = 0

    def route(self, event: SegmentEvent, azimuth_now_deg: float | None = None) -> list[Delivery]:
        if isinstance(event, SpeechStarted):
            first_guess = self.seats.party_at(event.azimuth_deg)
            self._open[event.utterance_id] = _Open(event, first_guess, [event], seat_party=first_guess)
            if self.decide_after_ms <= 0:
                return self._decide(self._open[event.utterance_id], event.azimuth_deg, "at start")
            return []
        state = self._open.get(event.utterance_id)
        if state is None:
            return []  # an utterance whose start this router never saw (it cannot know the language)
        if isinstance(event, SpeechEnded):
            del self._open[event.utterance_id]
            azimuth = event.azimuth_deg if event.azimuth_deg is not None else azimuth_now_deg
            if state.decision is None:
                state.held.append(event)
                return self._decide(state, azimuth, "at the end")
            if state.decision.party is not None and self.seats.party_at(azimuth) not in (state.decision.party, None):
                self.late_disagreements += 1
                log.warning("utterance %d went to %s after %.0f ms, but its whole-utterance direction %.0f° is %s's seat",
                            event.utterance_id, state.decision.party, state.decision.held_ms, azimuth,
                            self.seats.party_at(azimuth))
            return self._deliver(state.decision, [event])
        if state.decision is None:
            state.held.append(event)
            azimuth = azimuth_now_deg if azimuth_now_deg is not None else state.started.azimuth_deg
            party_now = self.seats.party_at(azimuth)
            if party_now != state.seat_party:
                state.seat_party, state.seat_since_ms = party_now, state.held_ms
            if isinstance(event, SpeechChunk):
                state.held_ms += event.frame.duration_ms
            settled = state.seat_since_ms is None or state.held_ms - state.seat_since_ms >= self.settle_ms
            if state.held_ms >= self.decide_after_ms and settled:
                return self._decide(state, azimuth, "after decide_after_ms")
            return []
        return self._deliver(state.decision, [event])

    def _decide(self, state: _Open, azimuth_deg: float | None, how) -> list[Delivery]:
        party = self.seats.party_at(azimuth_deg)
        decision = state.decision = RouteDecision(state.started.utterance_id, party, state.first_guess, azimuth_deg, how,
                                                  state.held_ms)
        if party is None and self.keep_unseated:
            log.info("utterance %d has no seat; its language decides", decision.utterance_id)
        elif party is None:
            self.dropped += 1
            where = "no direction" if azimuth_deg is None else f"{azimuth_deg:.0f}°"
            log.warning("utterance %d dropped: %s is outside every seat and there is no default_party",
                        decision.utterance_id, where)
        else:
            self.routed[party] = self.routed.get(party, 0) + 1
            self.corrected += decision.corrected
        self._on_decision(decision)
        held, state.held = state.held, []
        return self._deliver(decision, held)

    def _deliver(self, decision: RouteDecision, events: list[SegmentEvent]) -> list[Delivery]:
        party = decision.party
        if party is None and not self.keep_unseated:
            return []
        return [Delivery(party, event) for event in events]
