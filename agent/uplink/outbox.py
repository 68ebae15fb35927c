"""The outbox and result attribution: which utterance is owed what, with no socket and no thread.

Driven by the connection owner and a clock, like ``state.py``: events in (segments from the front
end, service events from the wire), result events out through ``emit``. Every utterance stays
here until its final result arrived; after a reconnect every one without a final is sent again,
whole, in order.

Attributing results:
- USP: one turn per utterance; results carry the turn's request id. A turn the service ends
  before the utterance's end was sent, or fails with a retryable status, continues in a new turn
  from the audio its finals acknowledged (finals already in are kept), after a back-off when the
  turn brought no final; ``MAX_TURN_RETRIES`` such turns without progress give the utterance up.
- Translator v1: no ids. Results belong to the oldest utterance without a final, or (timing
  info) to the open utterance whose byte range holds ``audioStreamPosition``. A final that
  arrives before that utterance's end was sent is a piece of it (the service ended a phrase
  early) and is joined; the first final after its end was sent completes it, and so does
  ``V1_SETTLE_S`` of quiet after the end when pieces are already in (the silence tail then holds
  no more speech). Audio goes to the utterance whose final came last.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Iterator

from agent.events import (
    FinalResult,
    PartialResult,
    ResultEvent,
    SegmentEvent,
    SpeechChunk,
    SpeechEnded,
    SpeechStarted,
    SynthesizedSpeech,
    UplinkError,
)
from agent.uplink.protocol import Opened, ServiceAudio, ServiceEvent, ServiceFailure, ServiceResult, TurnEnded
from parley_common.protocols.wav import TICKS_PER_SAMPLE, WIRE_BYTES_PER_S, WIRE_BYTES_PER_SAMPLE

log = logging.getLogger("parley.uplink")

V1_SETTLE_S = 1.5
V1_PRE_ROLL_BYTES = WIRE_BYTES_PER_S  # a recognizer's pre-roll may reach up to a second back
MAX_TURN_RETRIES = 4  # the SDK's retry count; reset whenever a final acknowledges more audio
TURN_RETRY_BACKOFF_S = 0.25  # the SDK's retry interval, doubled per retry without progress
THROTTLED_BACKOFF_S = 1.0  # TooManyRequests: start slower


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
    turn_start_bytes: int = 0  # USP: where the current turn's audio starts in this utterance
    acked_bytes: int = 0  # USP: audio the finals so far cover; a continuation turn starts here
    turn_progressed: bool = False  # USP: a final of the current turn acknowledged more audio
    failure: ServiceFailure | None = None  # USP: what the service said went wrong in the current turn
    turn_retries: int = 0
    retry_at: float | None = None  # not sent again before this time (back-off)

    @property
    def id(self) -> int:
        return self.started.utterance_id

    @property
    def audio_s(self) -> float:
        return sum(len(c) for c in self.chunks) / WIRE_BYTES_PER_S

    def reset_transmission(self) -> None:
        self.sent_chunks, self.begun, self.end_sent_at, self.turn, self.pieces = 0, False, None, None, []
        self.stream_start = self.stream_end = None
        self.acked_bytes, self.failure = 0, None

    def continue_from_ack(self, at: float) -> None:
        """A new turn at ``at`` from the first chunk not yet acknowledged; the finals so far are kept."""
        offset = self.sent_chunks = 0
        while self.sent_chunks < len(self.chunks) and offset + len(self.chunks[self.sent_chunks]) <= self.acked_bytes:
            offset += len(self.chunks[self.sent_chunks])
            self.sent_chunks += 1
        self.begun, self.end_sent_at, self.turn, self.failure, self.retry_at = False, None, None, None, at


class Outbox:
    """Utterances owed a final. ``turns``: results name their utterance (USP) or not (v1)."""

    def __init__(self, *, turns: bool, max_audio_s: float, final_timeout_s: float, spoken_language: str,
                 emit: Callable[[ResultEvent], None], clock=time.monotonic):
        self.turns = turns
        self.max_audio_s = max_audio_s
        self.final_timeout_s = final_timeout_s
        self.spoken_language = spoken_language
        self._emit = emit
        self._clock = clock
        self._utterances: OrderedDict[int, Utterance] = OrderedDict()
        self._overflowed: set[int] = set()
        self._last_final_utterance: int | None = None
        self.dropped_utterances = 0

    def __len__(self) -> int:
        return len(self._utterances)

    def __contains__(self, utterance_id: int) -> bool:
        return utterance_id in self._utterances

    # -- from the front end ------------------------------------------------------------------

    def overflowed(self, utterance_id: int) -> None:
        """The inbound queue had no room for an event of this utterance: all of it is dropped."""
        self._overflowed.add(utterance_id)

    def accept(self, event: SegmentEvent) -> None:
        if event.utterance_id in self._overflowed:
            self.drop(event.utterance_id, "the uplink queue overflowed")
            return
        if isinstance(event, SpeechStarted):
            self._utterances[event.utterance_id] = Utterance(event)
            self._enforce_limit()
        elif event.utterance_id in self._utterances:
            utterance = self._utterances[event.utterance_id]
            if isinstance(event, SpeechChunk):
                utterance.chunks.append(event.frame.samples[:, 0].astype("<i2").tobytes())
            elif isinstance(event, SpeechEnded):
                utterance.ended = event

    def _enforce_limit(self) -> None:
        while len(self._utterances) > 1 and sum(u.audio_s for u in self._utterances.values()) > self.max_audio_s:
            self.drop(next(iter(self._utterances)), f"more than {self.max_audio_s:.0f} s of speech waiting")

    def drop(self, utterance_id: int, why: str, fatal: bool = False) -> None:
        """``fatal``: the service refused it, shown as an error (LEDs) until something works again."""
        if self._utterances.pop(utterance_id, None) is not None or utterance_id in self._overflowed:
            self.dropped_utterances += 1
            log.warning("dropped utterance %d: %s (%d dropped so far)", utterance_id, why, self.dropped_utterances)
            self._emit(UplinkError(f"utterance {utterance_id} dropped: {why}", fatal))
        self._overflowed.discard(utterance_id)

    # -- for the sender ----------------------------------------------------------------------

    def connected(self) -> None:
        """A new connection: nothing without a final is trusted to have arrived."""
        for utterance in self._utterances.values():
            utterance.reset_transmission()

    def unsent(self) -> Iterator[Utterance]:
        """Utterances whose end is not sent yet, in order (the sender stops at one still open or backing off)."""
        now = self._clock()
        for utterance in list(self._utterances.values()):
            if utterance.end_sent_at is not None:
                continue
            if utterance.retry_at is not None and now < utterance.retry_at:
                return
            yield utterance

    def opened(self, utterance: Utterance, opened: Opened) -> None:
        """The protocol began sending this utterance on the current connection."""
        utterance.attempts += 1
        utterance.begun = True
        utterance.turn, utterance.stream_start = opened.turn, opened.stream_position
        utterance.turn_start_bytes = sum(len(c) for c in utterance.chunks[:utterance.sent_chunks])
        utterance.turn_progressed = False

    def end_sent(self, utterance: Utterance, stream_end: int | None) -> None:
        utterance.end_sent_at = self._clock()
        utterance.stream_end = stream_end

    @property
    def in_flight(self) -> bool:
        return any(u.begun for u in self._utterances.values())

    @property
    def begun_count(self) -> int:
        """Utterances begun on the wire and not completed: what a protocol's ``max_in_flight`` limits."""
        return sum(1 for u in self._utterances.values() if u.begun)

    def rejected(self, why: str) -> None:
        """The service closed fatally: the utterance it was working on is dropped on its second refusal."""
        utterance = next((u for u in self._utterances.values() if u.begun and not u.finalized), None)
        if utterance is not None and utterance.attempts >= 2:
            self.drop(utterance.id, f"the service rejected it twice ({why})")

    # -- from the service --------------------------------------------------------------------

    def receive(self, event: ServiceEvent) -> bool:
        """Attribute one service event; True when it ended a USP turn of ours (the protocol acknowledges)."""
        if isinstance(event, ServiceResult):
            self._result(event)
        elif isinstance(event, ServiceFailure):
            self._failure(event)
        elif isinstance(event, ServiceAudio):
            target = self._utterances.get(self._turn_owner(event.turn)) if event.turn else None
            utterance_id = target.id if target else self._last_final_utterance
            if utterance_id is not None:
                self._emit(SynthesizedSpeech(utterance_id, event.language or self.spoken_language, event.wav_bytes,
                                             self._clock()))
        elif isinstance(event, TurnEnded):
            owner = self._turn_owner(event.turn)
            if owner is not None:
                self._turn_ended(self._utterances[owner])
                return True
        return False

    def _failure(self, event: ServiceFailure) -> None:
        owner = self._turn_owner(event.turn)
        if event.action == "report" or owner is None:
            self._emit(UplinkError(event.reason))
        else:
            self._utterances[owner].failure = event  # acted on at turn.end, which follows

    def _turn_ended(self, utterance: Utterance) -> None:
        failure = utterance.failure
        if failure is not None and failure.action == "cancel":
            self._give_up(utterance, failure.reason)
        elif failure is not None or utterance.end_sent_at is None:
            self._retry(utterance, failure)
        else:
            self._complete(utterance)

    def _retry(self, utterance: Utterance, failure: ServiceFailure | None) -> None:
        """Continue the utterance in a new turn: at once after a turn that brought a final, else backing off."""
        if utterance.turn_progressed and failure is None:
            utterance.continue_from_ack(self._clock())
            return
        utterance.turn_retries += 1
        why = failure.reason if failure else "the service ended its turn before the utterance did"
        if utterance.turn_retries > MAX_TURN_RETRIES:
            self._give_up(utterance, f"{why}, {MAX_TURN_RETRIES} retries")
            return
        base_s = THROTTLED_BACKOFF_S if failure is not None and failure.throttled else TURN_RETRY_BACKOFF_S
        delay_s = base_s * 2 ** (utterance.turn_retries - 1)
        log.warning("utterance %d: %s; sending it again in %.2f s", utterance.id, why, delay_s)
        if failure is not None:
            self._emit(UplinkError(f"{why}; utterance {utterance.id} again in {delay_s:.1f} s"))
        utterance.continue_from_ack(self._clock() + delay_s)

    def _give_up(self, utterance: Utterance, why: str) -> None:
        """Cancelled: the finals already in still make the utterance's final; without any it is dropped."""
        if utterance.pieces:
            self._emit(UplinkError(f"utterance {utterance.id} cut short: {why}"))
            self._complete(utterance)
        else:
            self.drop(utterance.id, why, fatal=True)

    def _result(self, event: ServiceResult) -> None:
        utterance = self._target(event.turn, event.stream_position)
        if utterance is None:
            return
        if not event.final:
            self._emit(PartialResult(utterance.id, _join(utterance.pieces + [event]),
                                     _join_translations(utterance.pieces + [event])))
            return
        utterance.pieces.append(event)
        self._last_final_utterance = utterance.id  # v1 audio follows its final
        if event.end_ticks is not None:
            acked = utterance.turn_start_bytes + event.end_ticks // TICKS_PER_SAMPLE * WIRE_BYTES_PER_SAMPLE
            if acked > utterance.acked_bytes:
                utterance.acked_bytes, utterance.turn_retries, utterance.turn_progressed = acked, 0, True
        if not self.turns and utterance.end_sent_at is not None and not utterance.finalized:
            self._finalize(utterance)  # USP: at turn.end, when every phrase of the turn is in

    def check_timeouts(self) -> None:
        now = self._clock()
        for utterance in list(self._utterances.values()):
            if utterance.end_sent_at is None:
                continue
            waited_s = now - utterance.end_sent_at
            if not self.turns and utterance.pieces and waited_s >= V1_SETTLE_S:
                self._complete(utterance)
                continue
            if waited_s < self.final_timeout_s:
                continue
            if utterance.pieces or utterance.finalized:
                self._complete(utterance)
            else:
                log.warning("no result for utterance %d within %.0f s", utterance.id, self.final_timeout_s)
                self._emit(FinalResult(utterance.id, "", {}, _azimuth(utterance),
                                       utterance.started.start_sample, _duration(utterance)))
                self._utterances.pop(utterance.id, None)

    def _turn_owner(self, turn: str | None) -> int | None:
        return next((u.id for u in self._utterances.values() if u.turn == turn), None)

    def _target(self, turn: str | None, position: int | None = None) -> Utterance | None:
        if turn is not None:
            owner = self._turn_owner(turn)
            return self._utterances.get(owner) if owner is not None else None
        open_ones = [u for u in self._utterances.values() if u.begun and not u.finalized]
        if position is not None:
            for utterance in open_ones:
                end = utterance.stream_end if utterance.stream_end is not None else float("inf")
                if utterance.stream_start is not None and utterance.stream_start - V1_PRE_ROLL_BYTES <= position < end:
                    return utterance
            return None  # speech the service found outside any open utterance (tail noise, a finished one)
        return open_ones[0] if open_ones else None

    def _finalize(self, utterance: Utterance) -> None:
        utterance.finalized = True
        self._emit(FinalResult(utterance.id, _join(utterance.pieces), _join_translations(utterance.pieces),
                               _azimuth(utterance), utterance.started.start_sample, _duration(utterance)))
        if not self.turns:
            self._utterances.pop(utterance.id, None)

    def _complete(self, utterance: Utterance) -> None:
        if not utterance.finalized:
            self._finalize(utterance)
        self._utterances.pop(utterance.id, None)


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
