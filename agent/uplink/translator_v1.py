"""Translator Speech v1 as a sans-I/O session: one continuous WAV stream per connection, JSON results back.

v1 has no utterance ids, so each utterance is followed by ``silence_tail_ms`` of zeros that makes
the service end the phrase, and the session records where each utterance's speech lies in the
stream. Results carry ``audioStreamPosition`` and ``audioSizeBytes`` (timing info): the span the
service heard the phrase in, by which the session places it.

Placing, with the numbers. An utterance's speech occupies ``[start, speech_end)`` of the stream
(header included, as the service counts), then ``silence_tail_ms`` of zeros (default 1 000 ms =
32 000 bytes). A result's span is ``[position, position + size)``, taken as
``V1_UNSIZED_SPAN_BYTES`` (1 s) long when it has no size. It belongs to the owed utterance whose
*speech* it overlaps most, and to none when it overlaps none:

- the service's phrase starts up to its pre-roll before the first speech byte (the gateway's
  300 ms = 9 600 bytes; measured 20-280 ms early), i.e. in the previous utterance's silence tail,
  which holds no speech and so never claims it: a noise-only utterance that got no final cannot
  capture the next one's phrase;
- a final that fits no owed utterance (or has no timing info) is logged and shown as a notice,
  never attached by arrival order;
- the service finalises in stream order, so a final *passes* every owed utterance sent before the
  one it belongs to, and every one whose speech ends at or before the final's start: they are
  complete now, empty when nothing was recognised in them (a noise-only utterance);
- a final that arrives before its utterance's end was sent is a piece of it (the service ended a
  phrase early) and is joined; the first final after its end was sent completes it, and so does
  ``V1_SETTLE_S`` (1.5 s) of quiet after the end when pieces are already in;
- synthesized speech (binary WAV) belongs to the utterance of the final just before it; a second
  one, or one after a final that fit nothing, belongs to nobody.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlencode

from agent.uplink.config import UplinkConfig
from agent.uplink.protocol import (
    Completed,
    Heard,
    Message,
    Notice,
    Placed,
    ProtocolError,
    Sending,
    ServiceResult,
    Spoken,
)
from parley_common.protocols.translator_v1 import PATH, MessageError, V1Result
from parley_common.protocols.wav import WIRE_BYTES_PER_S, streaming_header

log = logging.getLogger("parley.uplink")

GATEWAY_DEFAULT_URL = "ws://127.0.0.1:5318"
V1_SETTLE_S = 1.5
V1_UNSIZED_SPAN_BYTES = WIRE_BYTES_PER_S


@dataclass
class _Sent:
    """Where one utterance's speech lies in this connection's stream."""

    start: int
    speech_end: int | None = None  # None while it is still being sent
    end_sent_at: float | None = None
    pieces: int = 0


class TranslatorV1Session:
    max_in_flight = 2  # one being recognised while the next is uploaded
    subprotocols = None

    def __init__(self, config: UplinkConfig, key: str | None):
        self.config = config
        self.key = key
        self._position = 0  # bytes sent on this connection, header included
        self._sent: dict[int, _Sent] = {}  # utterance id -> its speech, in stream order; until complete
        self._speech_owner: int | None = None  # the utterance whose final came last: its speech follows

    def url(self) -> str:
        base = (self.config.url or GATEWAY_DEFAULT_URL).rstrip("/")
        if not base.endswith(PATH):
            base += PATH
        features = ["timinginfo"]
        if self.config.partial_results:
            features.append("partial")
        if self.config.speech_output:
            features.append("texttospeech")
        query = [("api-version", "1.0"), ("from", self.config.from_language)]
        query += [("to", t) for t in self.config.to_languages]
        query.append(("features", ",".join(features)))
        if self.config.voice:
            query.append(("voice", self.config.voice))
        return f"{base}?{urlencode(query)}"

    def headers(self) -> list[str]:
        return [f"Ocp-Apim-Subscription-Key: {self.key}"] if self.key else []

    def credentials_rejected(self) -> bool:
        return False  # one key, nothing else to try

    # -- sending -----------------------------------------------------------------------------

    def connected(self) -> list[Message]:
        self._position, self._speech_owner = 0, None
        self._sent.clear()
        return []

    def begin(self, utterance: Sending) -> list[Message]:
        """Each connection's stream starts with the WAV header; an utterance is always sent whole."""
        header: list[Message] = [streaming_header()] if self._position == 0 else []
        self._position += sum(len(m) for m in header)
        self._sent[utterance.id] = _Sent(self._position)
        return header

    def audio(self, utterance: Sending, pcm: bytes) -> list[Message]:
        self._position += len(pcm)
        return [pcm]

    def end(self, utterance: Sending, now: float) -> list[Message]:
        sent = self._sent[utterance.id]
        sent.speech_end, sent.end_sent_at = self._position, now
        tail = bytes(self.config.silence_tail_ms * WIRE_BYTES_PER_S // 1000)
        self._position += len(tail)
        return [tail]

    def forget(self, utterance_id: int) -> None:
        self._sent.pop(utterance_id, None)

    # -- receiving ---------------------------------------------------------------------------

    def receive(self, message: Message, now: float) -> tuple[list[Message], list[Placed]]:
        if isinstance(message, bytes):
            return [], self._speech(message)
        try:
            result = V1Result.decode(message, self.config.to_languages[0])
        except MessageError as exc:
            raise ProtocolError(str(exc)) from None
        heard = ServiceResult(result.final, result.recognition, result.translations)
        span = (result.timing.stream_position, result.timing.size_bytes) if result.timing else None
        owner = self._owner(*span) if span else None
        if not result.final:
            return [], [Heard(owner, heard)] if owner is not None else []
        placed: list[Placed] = self._passed(owner, span[0] if span else None)
        self._speech_owner = owner
        if owner is None:
            if result.recognition:
                log.warning("final %r (stream span %s) fits no utterance owed a result", result.recognition, span)
                placed.append(Notice(f"the service recognized {result.recognition!r} outside any utterance sent"))
            return [], placed
        placed.append(Heard(owner, heard))
        sent = self._sent[owner]
        sent.pieces += 1
        if sent.end_sent_at is not None:
            placed.append(self._completed(owner, speech_may_follow=True))
        return [], placed

    def tick(self, now: float) -> list[Placed]:
        return [self._completed(utterance_id) for utterance_id, sent in list(self._sent.items())
                if sent.pieces and sent.end_sent_at is not None and now - sent.end_sent_at >= V1_SETTLE_S]

    def _owner(self, position: int, size_bytes: int) -> int | None:
        """The utterance whose speech bytes the span overlaps most (module docstring)."""
        end = position + (size_bytes or V1_UNSIZED_SPAN_BYTES)
        best: int | None = None
        best_overlap: float = 0  # a span still being sent reaches to infinity
        for utterance_id, sent in self._sent.items():
            speech_end = sent.speech_end if sent.speech_end is not None else float("inf")
            overlap = min(end, speech_end) - max(position, sent.start)
            if overlap > best_overlap:
                best, best_overlap = utterance_id, overlap
        return best

    def _passed(self, owner: int | None, position: int | None) -> list[Placed]:
        """Utterances heard in full by the time of this final: complete now, empty if nothing was in them."""
        passed: list[Placed] = []
        for utterance_id, sent in list(self._sent.items()):
            if utterance_id == owner:
                break
            if sent.speech_end is not None and (owner is not None or (position is not None and
                                                                      sent.speech_end <= position)):
                passed.append(self._completed(utterance_id))
        return passed

    def _completed(self, utterance_id: int, speech_may_follow: bool = False) -> Completed:
        del self._sent[utterance_id]
        return Completed(utterance_id, speech_may_follow)

    def _speech(self, wav: bytes) -> list[Placed]:
        if wav[:4] != b"RIFF":
            raise ProtocolError("binary message that is not WAV audio")
        owner, self._speech_owner = self._speech_owner, None  # one speech per final
        if owner is None:
            log.info("synthesized speech that belongs to no waiting utterance was ignored")
            return []
        return [Spoken(owner, wav)]
