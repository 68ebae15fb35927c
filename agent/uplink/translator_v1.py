"""Translator Speech v1 as a client: one continuous WAV stream per connection, JSON results back.

v1 has no utterance ids, so each utterance is followed by ``silence_tail_ms`` of zeros that makes
the service end the phrase, and each utterance's byte range in the stream is recorded: results
carry ``audioStreamPosition`` (timing info), which names the utterance they belong to.
"""

from __future__ import annotations

from urllib.parse import urlencode


from agent.uplink.config import UplinkConfig
from agent.uplink.protocol import Opened, ProtocolError, ServiceAudio, ServiceEvent, ServiceResult
from parley_common.protocols.translator_v1 import PATH, MessageError, V1Result
from parley_common.protocols.wav import WIRE_BYTES_PER_S, streaming_header

GATEWAY_DEFAULT_URL = "ws://127.0.0.1:5318"


class TranslatorV1Protocol:
    turns = False  # results carry no utterance id
    max_in_flight = 2  # one being recognised while the next is uploaded

    def __init__(self, config: UplinkConfig, key: str | None):
        self.config = config
        self.key = key
        self._header_sent = False
        self._position = 0  # bytes sent on this connection, header included

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

    subprotocols = None

    def credentials_rejected(self) -> bool:
        return False  # one key, nothing else to try

    def on_connect(self, ws) -> None:
        self._header_sent = False
        self._position = 0

    def _send(self, ws, data: bytes) -> None:
        ws.send_binary(data)
        self._position += len(data)

    def begin(self, ws, utterance) -> Opened:
        if not self._header_sent:
            self._send(ws, streaming_header())
            self._header_sent = True
        return Opened(stream_position=self._position)

    def send_audio(self, ws, utterance, pcm: bytes) -> None:
        self._send(ws, pcm)

    def end(self, ws, utterance) -> None:
        self._send(ws, bytes(self.config.silence_tail_ms * WIRE_BYTES_PER_S // 1000))

    def turn_completed(self, ws, turn: str) -> None:
        pass  # v1 has no turns

    def parse(self, message: str | bytes) -> list[ServiceEvent]:
        if isinstance(message, bytes):
            if message[:4] != b"RIFF":
                raise ProtocolError("binary message that is not WAV audio")
            return [ServiceAudio(message)]
        try:
            result = V1Result.decode(message, self.config.to_languages[0])
        except MessageError as exc:
            raise ProtocolError(str(exc)) from None
        position = result.timing.stream_position if result.timing else None
        size = result.timing.size_bytes if result.timing else None
        return [ServiceResult(result.final, result.recognition, result.translations, stream_position=position,
                              stream_size_bytes=size)]
