"""Azure Speech USP as a sans-I/O client session: one turn per utterance, one turn at a time, like SDK 1.53.

Per turn: ``speech.context`` (new request id), the RIFF header as the turn's first audio message,
PCM in 3 200-byte (100 ms) messages as it is spoken, and a zero-length audio message the moment the
talker stops. The service discards what is queued for a turn once audio with a new request id
arrives, so the next turn opens only after ``turn.end`` (``max_in_flight = 1``).

What the service says goes back as events: results with the acknowledged position, synthesized
speech once whole (``translation.synthesis``/``audio`` pieces until ``.end``), and a RecognitionStatus
error acted on at ``turn.end`` (retry with back-off, or cancel), never as an empty final. Every
``turn.end`` is acknowledged with telemetry listing the received messages and their times.

Placing: results carry the turn's request id, and each turn belongs to one utterance. A turn the
service ends before the utterance's end was sent, or fails with a retryable status, continues in
a new turn from the audio its finals acknowledged (finals already in are kept; the new
``speech.context`` names the last ``serviceTag`` and the offset), at once after a turn that
brought a final, else after a back-off of 0.25 s (TooManyRequests: 1 s) doubling per retry;
``MAX_TURN_RETRIES`` (4, the SDK's count) such turns without progress give the utterance up.

Error statuses, measured against SDK 1.53 on a scripted service: on ``BadRequest``,
``TooManyRequests`` or ``Error`` the SDK opens a new connection and replays the turn 4 times,
0.35-0.45 s apart, then cancels with that status; on a 1007 close it cancels at once (no retry).
The agent retries every error status 4 times too, then gives the utterance up with the reason, but
differs in two ways on purpose: it opens a new *turn* on the open connection (the replay is the
same: ``continuation`` with the acknowledged offset; a handshake adds nothing the service needs),
and it doubles the back-off (0.25-2 s; throttled 1-8 s) where the SDK waits 0.25 s each time: an
utterance said in a room is not repeated by its talker, so it is worth a 4-15 s budget rather than
the SDK's ~1.5 s, and a throttled service needs time, not a burst of replays. A 1007 close is
fatal (``connection.py``): the utterance is dropped on its second refusal, after the slow back-off.
Wall time appears only as a label (``X-Timestamp``, telemetry); decisions use the ``now`` given.
"""

from __future__ import annotations

import logging
import platform
from dataclasses import dataclass, field
from typing import Callable

from agent import __version__
from agent.uplink.azure_endpoints import endpoint_url, is_v2, region_url, with_query
from agent.uplink.translator_v1 import GATEWAY_DEFAULT_URL
from agent.uplink.config import UplinkConfig
from agent.uplink.credentials import AzureCredentials
from agent.uplink.protocol import (
    Completed,
    GaveUp,
    Heard,
    Message,
    Notice,
    Placed,
    ProtocolError,
    Resume,
    Sending,
    ServiceResult,
    Spoken,
)
from parley_common.languages import base_language
from parley_common.protocols.usp import (
    USP_V1_PATH,
    USP_V2_PATH,
    FramingError,
    new_request_id,
    parse_binary,
    parse_text,
    timestamp,
)
from parley_common.protocols.usp_messages import (
    NON_ERROR_STATUSES,
    SERVICE_MESSAGES,
    Audio,
    Hypothesis,
    MessageError,
    Phrase,
    SpeechConfig,
    SpeechContext,
    SynthesisAudio,
    SynthesisEnd,
    SynthesisStart,
    Telemetry,
    TurnEnd,
    TurnStart,
    decode_message,
)
from parley_common.protocols.wav import TICKS_PER_SAMPLE, WIRE_BYTES_PER_SAMPLE, WIRE_SAMPLE_RATE_HZ, streaming_header

log = logging.getLogger("parley.uplink")

AUDIO_MESSAGE_BYTES = 3200  # 100 ms of wire audio per message, as the SDK sends
CONTEXT_STREAM = "1"  # the audio source in speech.context; the SDK keeps it while X-StreamId counts turns
# Real Azure neural voices for a target's language; other targets get none unless uplink.voice is set.
DEFAULT_VOICES = {"en": "en-US-JennyNeural", "es": "es-ES-ElviraNeural", "ca": "ca-ES-JoanaNeural",
                  "de": "de-DE-KatjaNeural", "fr": "fr-FR-DeniseNeural", "it": "it-IT-ElsaNeural",
                  "pt": "pt-PT-RaquelNeural"}
THROTTLED_STATUS = "TooManyRequests"
MAX_TURN_RETRIES = 4  # the SDK's retry count; reset whenever a final acknowledges more audio
TURN_RETRY_BACKOFF_S = 0.25  # the SDK's retry interval, doubled per retry without progress
THROTTLED_BACKOFF_S = 1.0  # TooManyRequests: start slower


def identified_voices(config: UplinkConfig) -> dict[str, str]:
    """With language identification any target may be spoken: each gets its configured or a real default voice."""
    if not config.speech_output:
        return {}
    voices = {t: config.voices.get(t) or DEFAULT_VOICES.get(base_language(t)) for t in config.to_languages}
    return {language: voice for language, voice in voices.items() if voice}


def default_voice(config: UplinkConfig) -> str | None:
    """The configured voice, a real default for the first target's language, or None (no synthesis)."""
    if not config.speech_output:
        return None
    return config.voice or DEFAULT_VOICES.get(base_language(config.to_languages[0]))


@dataclass(frozen=True)
class _Failure:
    """What the service said went wrong in a turn; acted on at its ``turn.end``."""

    reason: str
    throttled: bool = False


@dataclass
class _Turn:
    """One turn on this connection: the utterance it carries and what it brought so far."""

    utterance_id: int
    stream: str
    start_bytes: int  # where the turn's audio starts in its utterance
    unsent: bytearray = field(default_factory=bytearray)  # PCM waiting to fill a 3 200-byte message
    received: dict[str, list[str]] = field(default_factory=dict)  # path -> arrival times, for telemetry
    end_sent: bool = False
    progressed: bool = False  # a final of this turn acknowledged more audio
    failure: _Failure | None = None


class UspSession:
    max_in_flight = 1  # one turn at a time
    subprotocols = ["USP"]

    def __init__(self, config: UplinkConfig, credentials: AzureCredentials,
                 expected_language: Callable[[int], str | None] | None = None):
        self.config = config
        self.credentials = credentials
        self.connection_id = new_request_id()  # kept across reconnects, like the SDK
        self.identifying = bool(config.identify_languages)
        self._expected_language = expected_language or (lambda utterance_id: None)
        self.voice = None if self.identifying else default_voice(config)
        self.voices = identified_voices(config) if self.identifying else {}
        if config.speech_output and not (self.voice or self.voices):
            log.warning("no Azure voice known for %s: set uplink.voice for speech output", config.to_languages[0])
        if config.url or config.backend == "gateway":  # the gateway speaks USP on the same paths as Azure
            default_path = USP_V2_PATH if self.identifying else USP_V1_PATH
            self._base_url = endpoint_url(config.url or GATEWAY_DEFAULT_URL, default_path)
        else:
            assert config.region is not None  # backend azure without url: UplinkConfig demands a region
            self._base_url = region_url(config.region, config.endpoint_version)
        self.v2 = is_v2(self._base_url)
        self._next_stream = 1
        self._turns: dict[str, _Turn] = {}  # request id -> turn, on this connection
        self._current: dict[int, str] = {}  # utterance id -> the request id of its turn being sent
        self._acked: dict[int, int] = {}  # utterance id -> audio its finals cover on this connection
        self._retries: dict[int, int] = {}  # utterance id -> turns in a row without progress
        self._tts_languages: dict[str, str] = {}  # v2: X-StreamId -> language of its synthesized audio
        self._synthesis: dict[str, bytearray] = {}  # per turn (v1) or stream (v2): WAV pieces so far
        self._service_tag: str | None = None  # the last turn.start's, named by a continuation turn

    # -- connection --------------------------------------------------------------------------

    def url(self) -> str:
        """v2: the URL as configured (languages go in speech.context); v1: the SDK's query added to it."""
        if self.v2:
            return self._base_url
        query = [("from", self.config.from_language)] + [("to", t) for t in self.config.to_languages]
        if self.voice:
            query += [("features", "texttospeech"), ("voice", self.voice)]
        return with_query(self._base_url, query)

    def headers(self) -> list[str]:
        headers = [f"X-ConnectionId: {self.connection_id}"]
        credential = self.credentials.current()
        if credential and credential[0] == "token":
            headers.append(f"Authorization: Bearer {credential[1]}")
        elif credential:
            headers.append(f"Ocp-Apim-Subscription-Key: {credential[1]}")
        return headers

    def credentials_rejected(self) -> bool:
        return self.credentials.rejected()

    def connected(self) -> list[Message]:
        """A new connection: stream ids start at 1 again, nothing half-sent or half-received carries over."""
        self.credentials.accepted()
        self._next_stream, self._service_tag = 1, None
        for state in (self._turns, self._current, self._acked, self._tts_languages, self._synthesis):
            state.clear()
        config = {"context": {
            "system": {"name": "Parley", "version": __version__, "build": platform.machine(), "lang": "Python"},
            "os": {"platform": platform.system(), "name": platform.platform(), "version": platform.release()},
            "audio": {"source": {"type": "Microphones", "samplerate": str(WIRE_SAMPLE_RATE_HZ), "bitspersample": "16",
                                 "channelcount": "1"}},
        }}
        return [SpeechConfig(config).encode()]

    def forget(self, utterance_id: int) -> None:
        self._current.pop(utterance_id, None)
        self._acked.pop(utterance_id, None)
        self._retries.pop(utterance_id, None)

    # -- sending -----------------------------------------------------------------------------

    def begin(self, utterance: Sending) -> list[Message]:
        turn = new_request_id()
        stream = str(self._next_stream)
        self._next_stream += 1
        self._turns[turn] = _Turn(utterance.id, stream, utterance.sent_bytes)
        self._current[utterance.id] = turn
        # CONVERSATION on both paths: a turn that names no mode is single-shot to our gateway (as
        # recognize_once is to the service), which would end an utterance at its first phrase
        source = self.config.from_language if self.v2 and not self.identifying else None
        context = SpeechContext(tuple(self.config.to_languages), self.voice, CONTEXT_STREAM, source, "CONVERSATION",
                                self._continuation(utterance), candidates=tuple(self.config.identify_languages),
                                expected_language=self._expected_language(utterance.id) if self.identifying else None,
                                voices=tuple(self.voices.items()), speak_passthrough=not self.identifying)
        return [context.encode(turn), Audio(streaming_header(), stream, wav_header=True).encode(turn)]

    def _continuation(self, utterance: Sending) -> tuple[str, int] | None:
        """An utterance resent from past its start continues the last turn, as the SDK's replay does."""
        replay_bytes = utterance.sent_bytes
        if not replay_bytes or self._service_tag is None:
            return None
        return self._service_tag, replay_bytes // WIRE_BYTES_PER_SAMPLE * TICKS_PER_SAMPLE

    def audio(self, utterance: Sending, pcm: bytes) -> list[Message]:
        request_id = self._current[utterance.id]
        turn = self._turns[request_id]
        turn.unsent += pcm
        out: list[Message] = []
        while len(turn.unsent) >= AUDIO_MESSAGE_BYTES:
            out.append(Audio(bytes(turn.unsent[:AUDIO_MESSAGE_BYTES]), turn.stream).encode(request_id))
            del turn.unsent[:AUDIO_MESSAGE_BYTES]
        return out

    def end(self, utterance: Sending, now: float) -> list[Message]:
        request_id = self._current[utterance.id]
        turn = self._turns[request_id]
        rest, turn.end_sent = bytes(turn.unsent), True
        turn.unsent.clear()
        messages: list[Message] = [Audio(rest, turn.stream).encode(request_id)] if rest else []
        return messages + [Audio(b"", turn.stream).encode(request_id)]

    def tick(self, now: float) -> list[Placed]:
        return []  # USP verdicts come with messages

    # -- receiving ---------------------------------------------------------------------------

    def receive(self, message: Message, now: float) -> tuple[list[Message], list[Placed]]:
        try:
            parsed = parse_text(message) if isinstance(message, str) else parse_binary(message)
            if not parsed.request_id:
                raise ProtocolError(f"{parsed.path or 'message'} without X-RequestId")
            decoded = decode_message(parsed, SERVICE_MESSAGES)
        except (FramingError, MessageError) as exc:
            raise ProtocolError(str(exc)) from None
        request_id = parsed.request_id
        turn = self._turns.get(request_id)
        if turn is not None:
            turn.received.setdefault(parsed.path, []).append(timestamp())
        if isinstance(decoded, TurnEnd):
            return self._turn_ended(request_id, now) if turn is not None else ([], [])
        if isinstance(decoded, TurnStart):
            self._service_tag = decoded.service_tag or self._service_tag
        elif isinstance(decoded, SynthesisAudio):
            self._synthesis.setdefault(decoded.stream_id or request_id, bytearray()).extend(decoded.wav_bytes)
        elif isinstance(decoded, SynthesisStart):
            self._tts_languages[decoded.stream_id] = decoded.language
        elif isinstance(decoded, SynthesisEnd):
            return [], self._synthesis_end(request_id, turn, decoded)
        elif isinstance(decoded, (Hypothesis, Phrase)):
            return [], self._result(turn, decoded)
        return [], []  # speech.startDetected/endDetected, speech-only results, paths we do not use

    def _result(self, turn: _Turn | None, result: Hypothesis | Phrase) -> list[Placed]:
        final = isinstance(result, Phrase)
        if isinstance(result, Phrase) and result.status not in NON_ERROR_STATUSES:
            failure = _recognition_failure(result)
            if turn is None:
                return [Notice(failure.reason)]
            turn.failure = failure
            return []
        if turn is None:
            return []  # a turn of an earlier connection, or of an utterance no longer owed
        if isinstance(result, Phrase):
            acked = turn.start_bytes + result.end_ticks // TICKS_PER_SAMPLE * WIRE_BYTES_PER_SAMPLE
            if acked > self._acked.get(turn.utterance_id, 0):
                self._acked[turn.utterance_id], turn.progressed = acked, True
                self._retries.pop(turn.utterance_id, None)
        return [Heard(turn.utterance_id, ServiceResult(
            final, result.text, result.translations, result.language.language if result.language else None))]

    def _turn_ended(self, request_id: str, now: float) -> tuple[list[Message], list[Placed]]:
        """Acknowledge what the turn brought, as the SDK does (the service may close silent clients),
        and say what becomes of its utterance."""
        turn = self._turns.pop(request_id)
        self._synthesis.pop(request_id, None)  # a v1 synthesis the service never ended
        telemetry = Telemetry({"ReceivedMessages": [{path: times} for path, times in turn.received.items()],
                               "Metrics": []}).encode(request_id)
        if turn.failure is not None or not turn.end_sent:
            return [telemetry], self._retry(turn, now)
        return [telemetry], [Completed(turn.utterance_id)]

    def _retry(self, turn: _Turn, now: float) -> list[Placed]:
        """Continue the utterance in a new turn: at once after a turn that brought a final, else backing off."""
        utterance_id, failure = turn.utterance_id, turn.failure
        acked = self._acked.get(utterance_id, 0)
        if turn.progressed and failure is None:
            return [Resume(utterance_id, acked, now)]
        retries = self._retries[utterance_id] = self._retries.get(utterance_id, 0) + 1
        why = failure.reason if failure else "the service ended its turn before the utterance did"
        if retries > MAX_TURN_RETRIES:
            return [GaveUp(utterance_id, f"{why}, {MAX_TURN_RETRIES} retries")]
        base_s = THROTTLED_BACKOFF_S if failure is not None and failure.throttled else TURN_RETRY_BACKOFF_S
        delay_s = base_s * 2 ** (retries - 1)
        log.warning("utterance %d: %s; sending it again in %.2f s", utterance_id, why, delay_s)
        notice: list[Placed] = [Notice(f"{why}; utterance {utterance_id} again in {delay_s:.1f} s")] if failure else []
        return notice + [Resume(utterance_id, acked, now + delay_s)]

    def _synthesis_end(self, request_id: str, turn: _Turn | None, end: SynthesisEnd) -> list[Placed]:
        """The pieces of one synthesis, joined: the WAV as the service streamed it."""
        wav = bytes(self._synthesis.pop(end.stream_id or request_id, b""))
        language = self._tts_languages.pop(end.stream_id, None) if end.stream_id else None
        if end.failure is not None:
            return [Notice(f"speech synthesis failed: {end.failure}")]
        if turn is None or not wav:
            return []
        return [Spoken(turn.utterance_id, wav, language)]


def _recognition_failure(phrase: Phrase) -> _Failure:
    """Any error status (BadRequest, TooManyRequests, Error, ...) is retried, then the utterance is given up
    with the reason: what SDK 1.53 does (measured: 4 replays, then cancelled with that status)."""
    detail = f" ({phrase.failure_reason})" if phrase.failure_reason else ""
    return _Failure(f"the service answered {phrase.status}{detail}", throttled=phrase.status == THROTTLED_STATUS)
