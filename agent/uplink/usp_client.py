"""Azure Speech USP as a client: one turn per utterance, strictly one turn at a time, like SDK 1.53.

Per turn: ``speech.context`` (new request id), the RIFF header as the turn's first audio message,
PCM in 3 200-byte (100 ms) messages as it is spoken, and a zero-length audio message the moment the
talker stops. The service discards what is queued for a turn once audio with a new request id
arrives, so the next turn opens only after ``turn.end`` (``max_in_flight = 1``).

What the service says goes back as events: results with the acknowledged position, synthesized
speech once whole (``translation.synthesis``/``audio`` pieces until ``.end``), and a RecognitionStatus
error as a ServiceFailure (retry with back-off, or cancel), never as an empty final. Every
``turn.end`` is acknowledged with telemetry listing the received messages and their times.
"""

from __future__ import annotations

import logging
import platform
from typing import Callable

from agent import __version__
from agent.uplink.azure_endpoints import endpoint_url, is_v2, region_url, with_query
from agent.uplink.translator_v1 import GATEWAY_DEFAULT_URL
from agent.uplink.config import UplinkConfig
from agent.uplink.credentials import AzureCredentials
from agent.uplink.protocol import (
    Opened,
    ProtocolError,
    ServiceAudio,
    ServiceEvent,
    ServiceFailure,
    ServiceResult,
    TurnEnded,
)
from parley_common.languages import base_language
from parley_common.protocols.usp import (
    AUDIO,
    AUDIO_END,
    AUDIO_START,
    SPEECH_CONFIG,
    SYNTHESIS,
    SYNTHESIS_END,
    TELEMETRY,
    TURN_END,
    TURN_START,
    USP_V1_PATH,
    USP_V2_PATH,
    FramingError,
    build_text,
    new_request_id,
    parse_binary,
    parse_text,
    timestamp,
)
from parley_common.protocols.usp_messages import (
    NON_ERROR_STATUSES,
    RESULT_PATHS,
    Audio,
    Phrase,
    SpeechContext,
    SynthesisAudio,
    SynthesisEnd,
    SynthesisStart,
    decode_result,
)
from parley_common.protocols.wav import TICKS_PER_SAMPLE, WIRE_BYTES_PER_SAMPLE, WIRE_SAMPLE_RATE_HZ, streaming_header

log = logging.getLogger("parley.uplink")

AUDIO_MESSAGE_BYTES = 3200  # 100 ms of wire audio per message, as the SDK sends
CONTEXT_STREAM = "1"  # the audio source in speech.context; the SDK keeps it while X-StreamId counts turns
# Real Azure neural voices for a target's language; other targets get none unless uplink.voice is set.
DEFAULT_VOICES = {"en": "en-US-JennyNeural", "es": "es-ES-ElviraNeural", "ca": "ca-ES-JoanaNeural",
                  "de": "de-DE-KatjaNeural", "fr": "fr-FR-DeniseNeural", "it": "it-IT-ElsaNeural",
                  "pt": "pt-PT-RaquelNeural"}
# RecognitionStatus errors worth sending the utterance again for (after a back-off); others cancel it.
RETRY_STATUSES = ("TooManyRequests", "ServiceUnavailable", "Error")
THROTTLED_STATUS = "TooManyRequests"


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


class UspProtocol:
    turns = True
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
            self._base_url = region_url(config.region, config.endpoint_version)
        self.v2 = is_v2(self._base_url)
        self._next_stream = 1
        self._stream_ids: dict[str, str] = {}
        self._unsent: dict[str, bytearray] = {}  # per turn: PCM waiting to fill a 3 200-byte message
        self._received: dict[str, dict[str, list[str]]] = {}  # per turn: path -> arrival times
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

    def on_connect(self, ws) -> None:
        """A new connection: stream ids start at 1 again, nothing half-sent or half-received carries over."""
        self.credentials.accepted()
        self._next_stream, self._service_tag = 1, None
        for per_turn in (self._stream_ids, self._unsent, self._received, self._tts_languages, self._synthesis):
            per_turn.clear()
        config = {"context": {
            "system": {"name": "Parley", "version": __version__, "build": platform.machine(), "lang": "Python"},
            "os": {"platform": platform.system(), "name": platform.platform(), "version": platform.release()},
            "audio": {"source": {"type": "Microphones", "samplerate": str(WIRE_SAMPLE_RATE_HZ), "bitspersample": "16",
                                 "channelcount": "1"}},
        }}
        ws.send(build_text(SPEECH_CONFIG, None, config))

    # -- sending -----------------------------------------------------------------------------

    def begin(self, ws, utterance) -> Opened:
        turn = new_request_id()
        stream = self._stream_ids[turn] = str(self._next_stream)
        self._next_stream += 1
        self._unsent[turn] = bytearray()
        self._received[turn] = {}
        # CONVERSATION on both paths: a turn that names no mode is single-shot to our gateway (as
        # recognize_once is to the service), which would end an utterance at its first phrase
        source = self.config.from_language if self.v2 and not self.identifying else None
        ws.send(SpeechContext(tuple(self.config.to_languages), self.voice, CONTEXT_STREAM, source, "CONVERSATION",
                              self._continuation(utterance), candidates=tuple(self.config.identify_languages),
                              expected_language=self._expected_language(utterance.id) if self.identifying else None,
                              voices=tuple(self.voices.items()), speak_passthrough=not self.identifying).encode(turn))
        ws.send_binary(Audio(streaming_header(), stream, wav_header=True).encode(turn))
        return Opened(turn=turn)

    def _continuation(self, utterance) -> tuple[str, int] | None:
        """An utterance resent from past its start continues the last turn, as the SDK's replay does."""
        replay_bytes = sum(len(chunk) for chunk in utterance.chunks[:utterance.sent_chunks])
        if not replay_bytes or self._service_tag is None:
            return None
        return self._service_tag, replay_bytes // WIRE_BYTES_PER_SAMPLE * TICKS_PER_SAMPLE

    def send_audio(self, ws, utterance, pcm: bytes) -> None:
        pending = self._unsent[utterance.turn]
        pending += pcm
        while len(pending) >= AUDIO_MESSAGE_BYTES:
            ws.send_binary(Audio(bytes(pending[:AUDIO_MESSAGE_BYTES]), self._stream_ids[utterance.turn])
                           .encode(utterance.turn))
            del pending[:AUDIO_MESSAGE_BYTES]

    def end(self, ws, utterance) -> None:
        turn, stream = utterance.turn, self._stream_ids[utterance.turn]
        rest = self._unsent.pop(turn)
        if rest:
            ws.send_binary(Audio(bytes(rest), stream).encode(turn))
        ws.send_binary(Audio(b"", stream).encode(turn))

    def turn_completed(self, ws, turn: str) -> None:
        """Acknowledge what the turn brought, as the SDK does: the service may close silent clients."""
        received = self._received.pop(turn, {})
        self._stream_ids.pop(turn, None)
        self._unsent.pop(turn, None)
        self._synthesis.pop(turn, None)  # a v1 synthesis the service never ended
        ws.send(build_text(TELEMETRY, turn, {"ReceivedMessages": [{path: times} for path, times in received.items()],
                                             "Metrics": []}, content_type="application/json; charset=utf-8"))

    # -- receiving ---------------------------------------------------------------------------

    def parse(self, message: str | bytes) -> list[ServiceEvent]:
        try:
            parsed = parse_text(message) if isinstance(message, str) else parse_binary(message)
        except FramingError as exc:
            raise ProtocolError(str(exc)) from None
        turn, path = parsed.request_id, parsed.path.lower()
        if not turn:
            raise ProtocolError(f"{path or 'message'} without X-RequestId")
        if turn in self._received:
            self._received[turn].setdefault(parsed.path, []).append(timestamp())
        if path in (SYNTHESIS, AUDIO):
            audio = SynthesisAudio.decode(parsed)
            self._synthesis.setdefault(audio.stream_id or turn, bytearray()).extend(audio.wav_bytes)
            return []
        if path == TURN_END:
            return [TurnEnded(turn)]
        if path not in RESULT_PATHS and path not in (TURN_START, AUDIO_START, SYNTHESIS_END, AUDIO_END):
            return []
        try:
            body = parsed.json()
        except ValueError:
            raise ProtocolError(f"{path} body is not JSON") from None
        if not isinstance(body, dict):
            raise ProtocolError(f"{path} body is not a JSON object")
        if path == TURN_START:
            self._service_tag = (body.get("context") or {}).get("serviceTag") or self._service_tag
            return []
        if path == AUDIO_START:
            start = SynthesisStart.decode(parsed, body)
            self._tts_languages[start.stream_id] = start.language
            return []
        if path in (SYNTHESIS_END, AUDIO_END):
            return self._synthesis_end(turn, SynthesisEnd.decode(parsed, body))
        try:
            result = decode_result(path, body)
        except (AttributeError, TypeError) as exc:
            raise ProtocolError(f"{path} body has an unexpected shape ({exc})") from None
        if isinstance(result, Phrase) and result.status not in NON_ERROR_STATUSES:
            return [_recognition_failure(turn, result.status, body)]
        final = isinstance(result, Phrase)
        return [ServiceResult(final, result.text, result.translations, turn,
                              end_ticks=result.end_ticks if final else None,
                              language=result.language.language if result.language else None)]

    def _synthesis_end(self, turn: str, end: SynthesisEnd) -> list[ServiceEvent]:
        """The pieces of one synthesis, joined: the WAV as the service streamed it."""
        wav = bytes(self._synthesis.pop(end.stream_id or turn, b""))
        language = self._tts_languages.pop(end.stream_id, None) if end.stream_id else None
        if end.failure is not None:
            return [ServiceFailure(turn, f"speech synthesis failed: {end.failure}", "report")]
        return [ServiceAudio(wav, language, turn)] if wav else []


def _recognition_failure(turn: str, status: str, body: dict) -> ServiceFailure:
    """What the SDK does with an error status: cancel with the reason; throttling and transient errors
    we retry from the acknowledged audio after a back-off instead of losing the utterance."""
    detail = body.get("FailureReason") or body.get("SpeechPhrase", {}).get("FailureReason") or ""
    reason = f"the service answered {status}" + (f" ({detail})" if detail else "")
    if status in RETRY_STATUSES:
        return ServiceFailure(turn, reason, "retry", throttled=status == THROTTLED_STATUS)
    return ServiceFailure(turn, reason, "cancel")
