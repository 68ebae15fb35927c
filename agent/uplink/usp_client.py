"""Azure Speech USP as a client: one turn per utterance, results matched by X-RequestId.

Per utterance: ``speech.context`` (new request id), the RIFF header as the turn's first audio
message, PCM as it is spoken, and a zero-length audio message the moment the talker stops — the
fastest end-of-speech signal USP has.
"""

from __future__ import annotations

import platform
from urllib.parse import urlencode

from agent import __version__
from parley_common.protocols.usp import FramingError, build_binary, build_text, new_request_id, parse_binary, parse_text
from parley_common.protocols.wav import streaming_header
from agent.uplink.config import UplinkConfig
from agent.uplink.protocol import Opened, ProtocolError, ServiceAudio, ServiceEvent, ServiceResult, TurnEnded

V1_PATH = "/speech/translation/cognitiveservices/v1"
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
                base += V1_PATH
        else:
            base = f"wss://{self.config.region}.s2s.speech.microsoft.com{V1_PATH}"
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
            "audio": {"source": {"type": "Microphones", "samplerate": "16000", "bitspersample": "16", "channelcount": "1"}},
        }}
        ws.send(build_text("speech.config", None, config))

    def begin(self, ws, utterance) -> Opened:
        turn = new_request_id()
        self._stream_ids[turn] = self._next_stream
        self._next_stream += 1
        context = {"translation": {"targetLanguages": list(self.config.to_languages),
                                   "output": {"includePassThroughResults": True}},
                   "audio": {"streams": {str(self._stream_ids[turn]): None}}}
        voice = self._voice()
        if voice:
            language = _base_language(voice)
            context["translation"]["onSuccess"] = {"action": "Synthesize"}
            context["synthesis"] = {"defaultVoices": {language: voice}}
        ws.send(build_text("speech.context", turn, context, content_type=None))
        ws.send_binary(build_binary("audio", turn, streaming_header(), self._audio_headers(turn, first=True)))
        return Opened(turn=turn)

    def _audio_headers(self, turn: str, first: bool = False) -> dict[str, str]:
        headers = {"X-StreamId": str(self._stream_ids.get(turn, 1))}
        if first:
            headers["Content-Type"] = "audio/x-wav"
        return headers

    def send_audio(self, ws, utterance, pcm: bytes) -> None:
        ws.send_binary(build_binary("audio", utterance.turn, pcm, self._audio_headers(utterance.turn)))

    def end(self, ws, utterance) -> None:
        ws.send_binary(build_binary("audio", utterance.turn, b"", self._audio_headers(utterance.turn)))

    def turn_completed(self, ws, turn: str) -> None:
        ws.send(build_text("telemetry", turn, {"ReceivedMessages": [], "Metrics": []},
                           content_type="application/json; charset=utf-8"))

    def parse(self, message: str | bytes) -> list[ServiceEvent]:
        try:
            parsed = parse_text(message) if isinstance(message, str) else parse_binary(message)
        except FramingError as exc:
            raise ProtocolError(str(exc)) from None
        turn, path = parsed.request_id, parsed.path.lower()
        if not turn:
            raise ProtocolError(f"{path or 'message'} without X-RequestId")
        if path in ("translation.synthesis", "audio"):
            if not isinstance(parsed.body, bytes) or not parsed.body:
                return []
            stream = parsed.headers.get("x-streamid")
            return [ServiceAudio(parsed.body, self._tts_languages.get(stream or "", None), turn)]
        if path == "turn.end":
            self._stream_ids.pop(turn, None)
            return [TurnEnded(turn)]
        if path not in ("translation.hypothesis", "translation.phrase", "translation.response", "audio.start"):
            return []
        try:
            body = parsed.json()
        except ValueError:
            raise ProtocolError(f"{path} body is not JSON") from None
        if path == "audio.start":
            self._tts_languages[parsed.headers.get("x-streamid", "")] = str(body.get("TranslationLanguage", ""))
            return []
        return [self._result(path, body, turn)]

    def _result(self, path: str, body: dict, turn: str) -> ServiceResult:
        if path == "translation.response":
            phrase = body.get("SpeechPhrase")
            final = phrase is not None
            speech = phrase if final else body.get("SpeechHypothesis", {})
            text = speech.get("DisplayText") or speech.get("Text") or ""
            if final and speech.get("RecognitionStatus", "Success") != "Success":
                text = ""
            translations = body.get("Translations", [])
        else:
            final = path == "translation.phrase"
            text = body.get("Text", "") if body.get("RecognitionStatus", "Success") == "Success" else ""
            translations = body.get("Translation", {}).get("Translations", []) if text or not final else []
        return ServiceResult(final, text, {
            str(t.get("Language")): str(t.get("Text") or t.get("DisplayText") or "") for t in translations}, turn)
