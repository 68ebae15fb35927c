"""Azure Speech USP as a client: one turn per utterance, results matched by X-RequestId.

Per utterance: ``speech.context`` (new request id), the RIFF header as the turn's first audio
message, PCM as it is spoken, and a zero-length audio message the moment the talker stops — the
fastest end-of-speech signal USP has.
"""

from __future__ import annotations

import platform
from urllib.parse import urlencode

from agent import __version__
from agent.uplink.config import UplinkConfig
from agent.uplink.protocol import Opened, ProtocolError, ServiceAudio, ServiceEvent, ServiceResult, TurnEnded
from parley_common.protocols.usp import (
    AUDIO,
    AUDIO_START,
    SPEECH_CONFIG,
    SYNTHESIS,
    TELEMETRY,
    TURN_END,
    USP_V1_PATH,
    FramingError,
    build_text,
    new_request_id,
    parse_binary,
    parse_text,
)
from parley_common.protocols.usp_messages import (
    RESULT_PATHS,
    Audio,
    Phrase,
    SpeechContext,
    SynthesisAudio,
    SynthesisStart,
    decode_result,
)
from parley_common.protocols.wav import WIRE_SAMPLE_RATE_HZ, streaming_header

DEFAULT_VOICES = {"es": "es-ES-ElviraNeural", "ca": "ca-ES-JoanaNeural", "de": "de-DE-KatjaNeural",
                  "fr": "fr-FR-DeniseNeural", "it": "it-IT-ElsaNeural", "pt": "pt-PT-RaquelNeural"}


def _base_language(code: str) -> str:
    return code.split("-")[0].lower()


class UspProtocol:
    turns = True

    def __init__(self, config: UplinkConfig, key_provider):
        self.config = config
        self._key_provider = key_provider  # () -> ("key", value) | ("token", value) | None
        self.connection_id = new_request_id()  # kept across reconnects, like the SDK
        self._stream_ids: dict[str, int] = {}
        self._next_stream = 1
        self._tts_languages: dict[str, str] = {}

    subprotocols = ["USP"]

    def url(self) -> str:
        if self.config.url:
            base = self.config.url.rstrip("/")
            if "/speech/" not in base and "/stt/" not in base:
                base += USP_V1_PATH
        else:
            base = f"wss://{self.config.region}.s2s.speech.microsoft.com{USP_V1_PATH}"
        query = [("from", self.config.from_language)] + [("to", t) for t in self.config.to_languages]
        voice = self._voice()
        if voice:
            query += [("features", "texttospeech"), ("voice", voice)]
        return f"{base}?{urlencode(query)}"

    def _voice(self) -> str | None:
        if not self.config.speech_output:
            return None
        first = _base_language(self.config.to_languages[0])
        return self.config.voice or DEFAULT_VOICES.get(first, f"{first}-{first.upper()}-Neural")

    def headers(self) -> list[str]:
        headers = [f"X-ConnectionId: {self.connection_id}"]
        credential = self._key_provider()
        if credential and credential[0] == "token":
            headers.append(f"Authorization: Bearer {credential[1]}")
        elif credential:
            headers.append(f"Ocp-Apim-Subscription-Key: {credential[1]}")
        return headers

    def on_connect(self, ws) -> None:
        config = {"context": {
            "system": {"name": "Parley", "version": __version__, "build": platform.machine(), "lang": "Python"},
            "os": {"platform": platform.system(), "name": platform.platform(), "version": platform.release()},
            "audio": {"source": {"type": "Microphones", "samplerate": str(WIRE_SAMPLE_RATE_HZ), "bitspersample": "16",
                                 "channelcount": "1"}},
        }}
        ws.send(build_text(SPEECH_CONFIG, None, config))

    def begin(self, ws, utterance) -> Opened:
        turn = new_request_id()
        self._stream_ids[turn] = self._next_stream
        self._next_stream += 1
        stream = str(self._stream_ids[turn])
        # CONVERSATION: the gateway ends turns that do not name a mode after one phrase (single-shot)
        ws.send(SpeechContext(tuple(self.config.to_languages), self._voice(), stream, mode="CONVERSATION").encode(turn))
        ws.send_binary(Audio(streaming_header(), stream, wav_header=True).encode(turn))
        return Opened(turn=turn)

    def _stream(self, turn: str) -> str:
        return str(self._stream_ids.get(turn, 1))

    def send_audio(self, ws, utterance, pcm: bytes) -> None:
        ws.send_binary(Audio(pcm, self._stream(utterance.turn)).encode(utterance.turn))

    def end(self, ws, utterance) -> None:
        ws.send_binary(Audio(b"", self._stream(utterance.turn)).encode(utterance.turn))

    def turn_completed(self, ws, turn: str) -> None:
        ws.send(build_text(TELEMETRY, turn, {"ReceivedMessages": [], "Metrics": []},
                           content_type="application/json; charset=utf-8"))

    def parse(self, message: str | bytes) -> list[ServiceEvent]:
        try:
            parsed = parse_text(message) if isinstance(message, str) else parse_binary(message)
        except FramingError as exc:
            raise ProtocolError(str(exc)) from None
        turn, path = parsed.request_id, parsed.path.lower()
        if not turn:
            raise ProtocolError(f"{path or 'message'} without X-RequestId")
        if path in (SYNTHESIS, AUDIO):
            audio = SynthesisAudio.decode(parsed)
            if not audio.wav_bytes:
                return []
            return [ServiceAudio(audio.wav_bytes, self._tts_languages.get(audio.stream_id or "", None), turn)]
        if path == TURN_END:
            self._stream_ids.pop(turn, None)
            return [TurnEnded(turn)]
        if path not in RESULT_PATHS and path != AUDIO_START:
            return []
        try:
            body = parsed.json()
        except ValueError:
            raise ProtocolError(f"{path} body is not JSON") from None
        if not isinstance(body, dict):
            raise ProtocolError(f"{path} body is not a JSON object")
        if path == AUDIO_START:
            start = SynthesisStart.decode(parsed, body)
            self._tts_languages[start.stream_id] = start.language
            return []
        try:
            result = decode_result(path, body)
        except (AttributeError, TypeError) as exc:
            raise ProtocolError(f"{path} body has an unexpected shape ({exc})") from None
        return [ServiceResult(isinstance(result, Phrase), result.text, result.translations, turn)]
