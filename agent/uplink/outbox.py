"""The outbox and result attribution: which utterance is owed what, with no socket and no thread.

Driven by the connection owner and a clock, like ``state.py``: events in (segments from the front
end, service events from the wire), result events out through ``emit``. Every utterance stays
here until it is done — everything it asked for arrived: its final and, when speech output is
on, its synthesized speech (USP: ``turn.end``) — so a renewal never cuts off a translation. After
a reconnect every one without a final is sent again, whole, in order.

A backlog is sent at the pace the service answers: at most ``window`` utterances are in flight
(begun and not done). Each final timeout starts when that utterance's end was sent. A timeout
never writes an empty final for speech that may still be recognised: while the service keeps
answering (it is behind, not gone) the utterance waits on, else it is resent on a fresh connection
(``check_timeouts`` asks for one); a late final is accepted while it waits, and after
``MAX_TIMEOUTS`` it is dropped with a warning. An empty final is written only when the
service said so (USP ``turn.end`` without a phrase; v1 results from past its end).

Attributing results:
- USP: one turn per utterance; results carry the turn's request id. A turn the service ends
  before the utterance's end was sent, or fails with a retryable status, continues in a new turn
  from the audio its finals acknowledged (finals already in are kept), after a back-off when the
  turn brought no final; ``MAX_TURN_RETRIES`` such turns without progress give the utterance up.
- Translator v1: no ids, so a result is placed by the bytes the agent itself sent. Each
  utterance's speech occupies ``[stream_start, speech_end)`` of the connection's stream, followed
  by ``silence_tail_ms`` of zeros (default 1 000 ms = 32 000 bytes). A result's span is
  ``[audioStreamPosition, + audioSizeBytes)`` (``V1_UNSIZED_SPAN_BYTES`` = 1 s when it has no
  size); it belongs to the owed utterance whose *speech* it overlaps most, and to none when it
  overlaps none. The service's phrase starts up to its pre-roll before the first speech byte (the
  gateway's 300 ms = 9 600 bytes: measured 20-280 ms early), i.e. in the previous utterance's
  silence tail, which holds no speech and so never claims it: a noise-only utterance without a
  final cannot capture the next one's phrase. A final that fits no owed utterance is logged and
  shown (an UplinkError with its text), never attached by arrival order; so is one without
  timing info. A final passes every owed utterance whose speech ends at or before the final's
  start, and every one sent before the utterance it belongs to (the service finalises in stream
  order): those are complete now, empty when nothing was recognised in them. A final that arrives
  before its utterance's end was sent is a piece of it (the service ended a phrase early) and is
  joined; the first final after its end was sent completes it, and so does ``V1_SETTLE_S`` of
  quiet after the end when pieces are already in. Audio goes to the utterance whose final came
  last, and nowhere when that final belonged to no owed utterance.
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
from agent.uplink.spool import Spool, SpooledUtterance
from agent.uplink.protocol import Opened, ServiceAudio, ServiceEvent, ServiceFailure, ServiceResult, TurnEnded
from parley_common.protocols.wav import TICKS_PER_SAMPLE, WIRE_BYTES_PER_S, WIRE_BYTES_PER_SAMPLE, WIRE_SAMPLE_RATE_HZ

log = logging.getLogger("parley.uplink")

V1_SETTLE_S = 1.5
MAX_TIMEOUTS = 3  # an utterance unanswered this many times is dropped, not written empty
V1_UNSIZED_SPAN_BYTES = WIRE_BYTES_PER_S  # a v1 result without audioSizeBytes: taken to reach 1 s past its start
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
    speech_end: int | None = None  # v1: where its speech ends; the silence tail follows
    ended_at: float | None = None  # clock when the talker stopped; None: in an earlier run
    finalized_at: float | None = None
    awaiting_speech: bool = False  # v1: the final is out, its synthesized speech is owed
    timeouts: int = 0
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
        self.stream_start = self.speech_end = None
        self.acked_bytes, self.failure = 0, None

    def continue_from_ack(self, at: float) -> None:
        """A new turn at ``at`` from the first chunk not yet acknowledged; the finals so far are kept."""
        offset = self.sent_chunks = 0
        while self.sent_chunks < len(self.chunks) and offset + len(self.chunks[self.sent_chunks]) <= self.acked_bytes:
            offset += len(self.chunks[self.sent_chunks])
            self.sent_chunks += 1
        self.begun, self.end_sent_at, self.turn, self.failure, self.retry_at = False, None, None, None, at


class Outbox:
    """Utterances owed a result. ``turns``: results name their utterance (USP) or not (v1).

    ``window``: utterances in flight at once. ``speech_expected``: the service was asked for
    synthesized speech, so a v1 utterance is done only once its speech arrived too. ``spool``:
    where every owed utterance is also kept on disk (None: memory only).
    """

    def __init__(self, *, turns: bool, max_audio_s: float, final_timeout_s: float, spoken_language: str,
                 emit: Callable[[ResultEvent], None], clock=time.monotonic, window: int = 1,
                 speech_expected: bool = False, spool: Spool | None = None):
        self.turns = turns
        self.max_audio_s = max_audio_s
        self.final_timeout_s = final_timeout_s
        self.spoken_language = spoken_language
        self.window = window
        self.speech_expected = speech_expected
        self._emit = emit
        self._clock = clock
        self._spool = spool
        self._utterances: OrderedDict[int, Utterance] = OrderedDict()
        self._overflowed: set[int] = set()
        self._last_final_utterance: int | None = None
        self._last_heard: float | None = None  # clock of the service's latest result or speech
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
            if self._spool:
                self._spool.started(event)
            self._enforce_limit()
        elif event.utterance_id in self._utterances:
            utterance = self._utterances[event.utterance_id]
            if isinstance(event, SpeechChunk):
                pcm = event.frame.samples[:, 0].astype("<i2").tobytes()
                utterance.chunks.append(pcm)
                if self._spool:
                    self._spool.audio(event.utterance_id, pcm)
            elif isinstance(event, SpeechEnded):
                utterance.ended, utterance.ended_at = event, self._clock()
                if self._spool:
                    self._spool.ended(event)

    def restore(self, spooled: list[SpooledUtterance]) -> None:
        """Utterances an earlier run left on disk: owed first, in order, under the same budget.

        One cut off by the stop or a crash ends where its audio ends."""
        for entry in spooled:
            samples = sum(len(c) for c in entry.chunks) // 2
            ended = entry.ended or SpeechEnded(entry.started.utterance_id, entry.started.start_sample + samples,
                                               1000 * samples / WIRE_SAMPLE_RATE_HZ, "restart")
            self._utterances[entry.started.utterance_id] = Utterance(entry.started, list(entry.chunks), ended)
        self._utterances = OrderedDict(sorted(self._utterances.items()))
        self._enforce_limit()

    def _enforce_limit(self) -> None:
        while len(self._utterances) > 1 and sum(u.audio_s for u in self._utterances.values()) > self.max_audio_s:
            self.drop(next(iter(self._utterances)), f"more than {self.max_audio_s:.0f} s of speech waiting")

    def drop(self, utterance_id: int, why: str, fatal: bool = False) -> None:
        """``fatal``: the service refused it, shown as an error (LEDs) until something works again."""
        if self._utterances.pop(utterance_id, None) is not None or utterance_id in self._overflowed:
            self.dropped_utterances += 1
            log.warning("dropped utterance %d: %s (%d dropped so far)", utterance_id, why, self.dropped_utterances)
            self._emit(UplinkError(f"utterance {utterance_id} dropped: {why}", fatal))
            if self._spool:
                self._spool.remove(utterance_id)
        self._overflowed.discard(utterance_id)

    # -- for the sender ----------------------------------------------------------------------

    def connected(self) -> None:
        """A new connection: nothing without a final is trusted to have arrived."""
        for utterance in list(self._utterances.values()):
            if utterance.finalized:  # its final is out; what else it asked for went with the old connection
                log.warning("utterance %d: its synthesized speech was lost with the connection", utterance.id)
                self._done(utterance)
            else:
                utterance.reset_transmission()
        self._last_final_utterance = None

    def unsent(self) -> Iterator[Utterance]:
        """Utterances whose end is not sent yet, in order, as far as the window allows.

        The sender stops at one still open or backing off, so the window is checked before each
        one begins."""
        now = self._clock()
        for utterance in list(self._utterances.values()):
            if utterance.end_sent_at is not None or utterance.id not in self._utterances:
                continue
            if utterance.retry_at is not None and now < utterance.retry_at:
                return
            if not utterance.begun and self.in_flight >= self.window:
                return
            yield utterance

    def opened(self, utterance: Utterance, opened: Opened) -> None:
        """The protocol began sending this utterance on the current connection."""
        utterance.attempts += 1
        utterance.begun = True
        utterance.turn, utterance.stream_start = opened.turn, opened.stream_position
        utterance.turn_start_bytes = sum(len(c) for c in utterance.chunks[:utterance.sent_chunks])
        utterance.turn_progressed = False

    def end_sent(self, utterance: Utterance) -> None:
        utterance.end_sent_at = self._clock()
        if utterance.stream_start is not None:  # v1 sends an utterance whole on each connection
            utterance.speech_end = utterance.stream_start + sum(len(c) for c in utterance.chunks)

    @property
    def in_flight(self) -> int:
        """Utterances begun on this connection and not done yet."""
        return sum(u.begun for u in self._utterances.values())

    @property
    def finals_due(self) -> int:
        """Utterances begun on this connection whose final has not come yet."""
        return sum(u.begun and not u.finalized for u in self._utterances.values())

    @property
    def finals_owed(self) -> int:
        return sum(not u.finalized for u in self._utterances.values())

    def rejected(self, why: str) -> None:
        """The service closed fatally: the utterance it was working on is dropped on its second refusal."""
        utterance = next((u for u in self._utterances.values() if u.begun and not u.finalized), None)
        if utterance is not None and utterance.attempts >= 2:
            self.drop(utterance.id, f"the service rejected it twice ({why})")

    # -- from the service --------------------------------------------------------------------

    def receive(self, event: ServiceEvent) -> bool:
        """Attribute one service event; True when it ended a USP turn of ours (the protocol acknowledges)."""
        self._last_heard = self._clock()
        if isinstance(event, ServiceResult):
            self._result(event)
        elif isinstance(event, ServiceFailure):
            self._failure(event)
        elif isinstance(event, ServiceAudio):
            self._audio(event)
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

    def _audio(self, event: ServiceAudio) -> None:
        if event.turn:
            owner = self._turn_owner(event.turn)
        else:
            owner = self._last_final_utterance
            self._last_final_utterance = None  # one speech per final: a second belongs to nobody
        utterance = self._utterances.get(owner) if owner is not None else None
        if utterance is None:
            log.info("synthesized speech that belongs to no waiting utterance was ignored")
            return
        self._emit(SynthesizedSpeech(utterance.id, event.language or self.spoken_language, event.wav_bytes,
                                     self._clock(), utterance.ended_at))
        if utterance.awaiting_speech:
            self._done(utterance)

    def _result(self, event: ServiceResult) -> None:
        utterance = self._turn_target(event.turn) if self.turns else self._v1_target(event)
        if event.final and not self.turns:
            self._passed(event, utterance)
        if utterance is None:
            if event.final:
                self._last_final_utterance = None  # its speech, if any, belongs to nobody either
                if event.text:
                    log.warning("final %r (stream bytes %s+%s) fits no utterance owed a result", event.text,
                                event.stream_position, event.stream_size_bytes)
                    self._emit(UplinkError(f"the service recognized {event.text!r} outside any utterance sent"))
            return
        if not event.final:
            self._emit(PartialResult(utterance.id, _join(utterance.pieces + [event]),
                                     _join_translations(utterance.pieces + [event]), language=event.language))
            return
        utterance.pieces.append(event)
        self._last_final_utterance = utterance.id  # v1 audio follows its final
        if event.end_ticks is not None:
            acked = utterance.turn_start_bytes + event.end_ticks // TICKS_PER_SAMPLE * WIRE_BYTES_PER_SAMPLE
            if acked > utterance.acked_bytes:
                utterance.acked_bytes, utterance.turn_retries, utterance.turn_progressed = acked, 0, True
        if not self.turns and utterance.end_sent_at is not None and not utterance.finalized:
            # USP finalises at turn.end, when every phrase of the turn is in
            self._finalize(utterance, speech_follows=bool(event.translations.get(self.spoken_language)))

    def _passed(self, event: ServiceResult, owner: Utterance | None) -> None:
        """v1: the service finalises in stream order, so a final means every utterance whose speech
        ended before it, or that was sent before its owner, was heard in full: complete now (empty when
        nothing was recognised) instead of waiting for the timeout."""
        start = event.stream_position
        for utterance in list(self._utterances.values()):
            if utterance is owner:
                break
            if utterance.speech_end is None or utterance.finalized:
                continue
            if owner is not None or (start is not None and utterance.speech_end <= start):
                self._finalize(utterance, speech_follows=False)
    def check_timeouts(self) -> list[int]:
        """Complete what is settled; returns the utterances that timed out and need a fresh connection."""
        now = self._clock()
        stalled = []
        for utterance in list(self._utterances.values()):
            if utterance.finalized:
                if now - utterance.finalized_at >= self.final_timeout_s:
                    log.warning("utterance %d: no synthesized speech within %.0f s of its final", utterance.id,
                                self.final_timeout_s)
                    self._done(utterance)
                continue
            if utterance.end_sent_at is None:
                continue
            waited_s = now - utterance.end_sent_at
            if not self.turns and utterance.pieces and waited_s >= V1_SETTLE_S:
                self._complete(utterance)
            elif waited_s < self.final_timeout_s:
                continue
            elif utterance.pieces:
                self._complete(utterance)
            else:
                utterance.timeouts += 1
                busy = self._last_heard is not None and now - self._last_heard < self.final_timeout_s
                if utterance.timeouts >= MAX_TIMEOUTS:
                    self.drop(utterance.id, f"no result from the service within {utterance.timeouts} x "
                                            f"{self.final_timeout_s:.0f} s")
                    continue
                if busy:
                    log.warning("no result for utterance %d within %.0f s; the service is answering, so it is "
                                "behind: waiting on", utterance.id, self.final_timeout_s)
                else:
                    log.warning("no result for utterance %d within %.0f s and nothing else from the service; "
                                "sending it again", utterance.id, self.final_timeout_s)
                    stalled.append(utterance.id)
                utterance.end_sent_at = now  # waits on, accepting a late final (until it is resent)
        return stalled

    def _turn_owner(self, turn: str | None) -> int | None:
        return next((u.id for u in self._utterances.values() if u.turn == turn), None)

    def _turn_target(self, turn: str | None) -> Utterance | None:
        owner = self._turn_owner(turn)
        return self._utterances.get(owner) if owner is not None else None

    def _v1_target(self, event: ServiceResult) -> Utterance | None:
        """The owed utterance whose speech bytes the result's span overlaps most (module docstring)."""
        if event.stream_position is None:
            return None
        start = event.stream_position
        end = start + (event.stream_size_bytes or V1_UNSIZED_SPAN_BYTES)
        best, best_overlap = None, 0
        for utterance in self._utterances.values():
            if not utterance.begun or utterance.finalized or utterance.stream_start is None:
                continue
            speech_end = utterance.speech_end if utterance.speech_end is not None else float("inf")
            overlap = min(end, speech_end) - max(start, utterance.stream_start)
            if overlap > best_overlap:
                best, best_overlap = utterance, overlap
        return best

    def _finalize(self, utterance: Utterance, speech_follows: bool = False) -> None:
        utterance.finalized, utterance.finalized_at = True, self._clock()
        self._emit(FinalResult(utterance.id, _join(utterance.pieces), _join_translations(utterance.pieces),
                               _azimuth(utterance), utterance.started.start_sample, _duration(utterance),
                               language=_identified_language(utterance.pieces)))
        if self._spool:
            self._spool.remove(utterance.id)  # delivered: a restart must not send it again (its speech would be stale)
        if self.turns:
            return  # done at turn.end, which follows the turn's speech
        if self.speech_expected and speech_follows:
            utterance.awaiting_speech = True
        else:
            self._done(utterance)

    def _complete(self, utterance: Utterance) -> None:
        if not utterance.finalized:
            self._finalize(utterance)
        if not utterance.awaiting_speech:
            self._done(utterance)

    def _done(self, utterance: Utterance) -> None:
        """Everything the utterance asked for arrived (or was given up): it leaves the outbox."""
        self._utterances.pop(utterance.id, None)


def _join(pieces: list[ServiceResult]) -> str:
    return " ".join(p.text for p in pieces if p.text)


def _join_translations(pieces: list[ServiceResult]) -> dict[str, str]:
    languages = dict.fromkeys(lang for p in pieces for lang in p.translations)
    return {lang: " ".join(p.translations[lang] for p in pieces if p.translations.get(lang)) for lang in languages}


def _identified_language(pieces: list[ServiceResult]) -> str | None:
    """The language the service identified, by the most speech; None when it identified none."""
    lengths: dict[str, int] = {}
    for piece in pieces:
        if piece.language:
            lengths[piece.language] = lengths.get(piece.language, 0) + len(piece.text)
    return max(lengths, key=lengths.get) if lengths else None


def _azimuth(utterance: Utterance) -> float | None:
    """The direction estimated over the whole utterance once it has ended, else the early one."""
    if utterance.ended is not None and utterance.ended.azimuth_deg is not None:
        return utterance.ended.azimuth_deg
    return utterance.started.azimuth_deg


def _duration(utterance: Utterance) -> float | None:
    return utterance.ended.duration_ms if utterance.ended else None
