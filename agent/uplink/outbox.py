"""The outbox: which utterance is owed what, with no socket and no thread.

Driven by the connection owner and a clock, like ``state.py``: events in (segments from the front
end, messages from the wire), messages to send and result events (through ``emit``) out. What is
common to every protocol lives here: what is owed, the spool, the window, replay after a
reconnect, final timeouts and the send loop itself. What a message means and which utterance it
belongs to is the protocol session's (``translator_v1.py``, ``usp_client.py``): it answers with
placed events (``protocol.py``) that name their utterance.

Every utterance stays here until it is done — everything it asked for arrived: its final and,
when speech output is on, its synthesized speech — so a renewal never cuts off a translation.
After a reconnect every one without a final is sent again, whole, in order.

A backlog is sent at the pace the service answers: at most ``session.max_in_flight`` utterances
are in flight (begun and not done). Each final timeout starts when that utterance's end was sent.
A timeout never writes an empty final for speech that may still be recognised: while the service
keeps answering (it is behind, not gone) the utterance waits on, else it is resent on a fresh
connection (``check_timeouts`` asks for one); a late final is accepted while it waits, and after
``MAX_TIMEOUTS`` it is dropped with a warning. An empty final is written only when the session
says the service is done with the utterance (USP ``turn.end`` without a phrase; v1 results from
past its end).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

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
from agent.uplink.protocol import (
    Completed,
    GaveUp,
    Heard,
    Message,
    Notice,
    Placed,
    Resume,
    ServiceResult,
    Session,
    Spoken,
)
from agent.uplink.spool import Spool, SpooledUtterance
from parley_common.protocols.wav import WIRE_BYTES_PER_S, WIRE_SAMPLE_RATE_HZ

log = logging.getLogger("parley.uplink")

MAX_TIMEOUTS = 3  # an utterance unanswered this many times is dropped, not written empty


@dataclass
class Utterance:
    """One utterance owed a result: its audio, how far it was sent, and what came back."""

    started: SpeechStarted
    chunks: list[bytes] = field(default_factory=list)
    ended: SpeechEnded | None = None
    ended_at: float | None = None  # clock when the talker stopped; None: in an earlier run
    sent_chunks: int = 0
    begun: bool = False
    end_sent_at: float | None = None
    attempts: int = 0
    retry_at: float | None = None  # not sent again before this time (back-off)
    pieces: list[ServiceResult] = field(default_factory=list)
    finalized_at: float | None = None
    awaiting_speech: bool = False  # the final is out, its synthesized speech is owed
    timeouts: int = 0

    @property
    def id(self) -> int:
        return self.started.utterance_id

    @property
    def finalized(self) -> bool:
        return self.finalized_at is not None

    @property
    def audio_s(self) -> float:
        return sum(len(c) for c in self.chunks) / WIRE_BYTES_PER_S

    @property
    def sent_bytes(self) -> int:
        return sum(len(c) for c in self.chunks[:self.sent_chunks])

    def reset_transmission(self) -> None:
        self.sent_chunks, self.begun, self.end_sent_at, self.pieces = 0, False, None, []

    def resume(self, from_bytes: int, not_before_s: float) -> None:
        """Sent again from the first chunk not wholly within ``from_bytes``; the finals so far are kept."""
        offset = self.sent_chunks = 0
        while self.sent_chunks < len(self.chunks) and offset + len(self.chunks[self.sent_chunks]) <= from_bytes:
            offset += len(self.chunks[self.sent_chunks])
            self.sent_chunks += 1
        self.begun, self.end_sent_at, self.retry_at = False, None, not_before_s


class Outbox:
    """Utterances owed a result, sent through ``session`` (which places what the service says).

    ``speech_expected``: the service was asked for synthesized speech, so an utterance whose final
    may be followed by speech (v1) is done only once it arrived too. ``spool``: where every owed
    utterance is also kept on disk (None: memory only).
    """

    def __init__(self, session: Session, *, max_audio_s: float, final_timeout_s: float, spoken_language: str,
                 emit: Callable[[ResultEvent], None], clock=time.monotonic, speech_expected: bool = False,
                 spool: Spool | None = None):
        self.session = session
        self.max_audio_s = max_audio_s
        self.final_timeout_s = final_timeout_s
        self.spoken_language = spoken_language
        self.window = session.max_in_flight
        self.speech_expected = speech_expected
        self._emit = emit
        self._clock = clock
        self._spool = spool
        self._utterances: OrderedDict[int, Utterance] = OrderedDict()
        self._overflowed: set[int] = set()
        self._last_heard: float | None = None  # clock of the service's latest message
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
            self.session.forget(utterance_id)
        self._overflowed.discard(utterance_id)

    # -- for the sender ----------------------------------------------------------------------

    def connected(self) -> list[Message]:
        """A new connection: nothing without a final is trusted to have arrived. Returns what opens it."""
        for utterance in list(self._utterances.values()):
            if utterance.finalized:  # its final is out; what else it asked for went with the old connection
                log.warning("utterance %d: its synthesized speech was lost with the connection", utterance.id)
                self._done(utterance)
            else:
                utterance.reset_transmission()
        return self.session.connected()

    def transmit(self) -> list[Message]:
        """What is new, utterance by utterance, in order; the next begins once the previous ended,
        and only while the window has room. Records how far each utterance was sent."""
        now, out = self._clock(), []
        for utterance in list(self._utterances.values()):
            if utterance.end_sent_at is not None:
                continue
            if utterance.retry_at is not None and now < utterance.retry_at:
                break
            if not utterance.begun:
                if self.in_flight >= self.window:
                    break
                utterance.attempts, utterance.begun = utterance.attempts + 1, True
                out += self.session.begin(utterance)
            while utterance.sent_chunks < len(utterance.chunks):
                out += self.session.audio(utterance, utterance.chunks[utterance.sent_chunks])
                utterance.sent_chunks += 1
            if utterance.ended is None:
                break
            utterance.end_sent_at = now
            out += self.session.end(utterance, now)
        return out

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

    def receive(self, message: Message) -> list[Message]:
        """One message from the service, placed by the session; returns its replies.

        Raises ProtocolError (from the session) for what cannot be parsed."""
        self._last_heard = now = self._clock()
        replies, placed = self.session.receive(message, now)
        self._apply(placed)
        return replies

    def _apply(self, placed: list[Placed]) -> None:
        for event in placed:
            if isinstance(event, Notice):
                self._emit(UplinkError(event.message))
                continue
            utterance = self._utterances.get(event.utterance_id)
            if utterance is None:
                log.info("%s for utterance %d, which is no longer owed anything: ignored", type(event).__name__,
                         event.utterance_id)
            elif isinstance(event, Heard):
                self._heard(utterance, event.result)
            elif isinstance(event, Completed):
                self._complete(utterance, event.speech_may_follow)
            elif isinstance(event, Spoken):
                self._spoken(utterance, event)
            elif isinstance(event, Resume):
                utterance.resume(event.from_bytes, event.not_before_s)
            elif isinstance(event, GaveUp):
                self._give_up(utterance, event.reason)

    def _heard(self, utterance: Utterance, result: ServiceResult) -> None:
        if utterance.finalized:
            log.info("a result for utterance %d after its final was ignored: %r", utterance.id, result.text)
        elif result.final:
            utterance.pieces.append(result)
        else:
            self._emit(PartialResult(utterance.id, _join(utterance.pieces + [result]),
                                     _join_translations(utterance.pieces + [result]), language=result.language,
                                     session=utterance.started.session))

    def _spoken(self, utterance: Utterance, event: Spoken) -> None:
        self._emit(SynthesizedSpeech(utterance.id, event.language or self.spoken_language, event.wav_bytes,
                                     self._clock(), utterance.ended_at))
        if utterance.awaiting_speech:
            self._done(utterance)

    def _give_up(self, utterance: Utterance, why: str) -> None:
        """Cancelled: the finals already in still make the utterance's final; without any it is dropped."""
        if utterance.pieces:
            self._emit(UplinkError(f"utterance {utterance.id} cut short: {why}"))
            self._complete(utterance)
        else:
            self.drop(utterance.id, why, fatal=True)

    def check_timeouts(self) -> list[int]:
        """Complete what is settled; returns the utterances that timed out and need a fresh connection."""
        now = self._clock()
        self._apply(self.session.tick(now))
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
            if waited_s < self.final_timeout_s:
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

    def _complete(self, utterance: Utterance, speech_may_follow: bool = False) -> None:
        """Write the final (once); the utterance is done unless its synthesized speech is still owed."""
        if not utterance.finalized:
            last = utterance.pieces[-1].translations if utterance.pieces else {}
            utterance.awaiting_speech = self.speech_expected and speech_may_follow and bool(
                last.get(self.spoken_language))
            self._finalize(utterance)
        if not utterance.awaiting_speech:
            self._done(utterance)

    def _finalize(self, utterance: Utterance) -> None:
        utterance.finalized_at = self._clock()
        self._emit(FinalResult(utterance.id, _join(utterance.pieces), _join_translations(utterance.pieces),
                               _azimuth(utterance), utterance.started.start_sample, _duration(utterance),
                               language=_identified_language(utterance.pieces), session=utterance.started.session,
                               started_at_s=utterance.started.started_at_s))

    def _done(self, utterance: Utterance) -> None:
        """Everything the utterance asked for arrived (or was given up): it leaves the outbox."""
        self._utterances.pop(utterance.id, None)
        self.session.forget(utterance.id)


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
    return max(lengths, key=lengths.__getitem__) if lengths else None


def _azimuth(utterance: Utterance) -> float | None:
    """The direction estimated over the whole utterance once it has ended, else the early one."""
    if utterance.ended is not None and utterance.ended.azimuth_deg is not None:
        return utterance.ended.azimuth_deg
    return utterance.started.azimuth_deg


def _duration(utterance: Utterance) -> float | None:
    return utterance.ended.duration_ms if utterance.ended else None
