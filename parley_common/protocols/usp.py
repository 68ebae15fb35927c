"""Azure Speech USP framing (text and binary messages with ``Name:value`` header blocks).

Text:   ``Name:value\\r\\n`` ... ``\\r\\n`` then the body (usually JSON).
Binary: 2-byte big-endian header length N, N bytes of ``Name:value\\r\\n`` lines, then the payload.
Header names are case-insensitive; values are trimmed (the SDK writes no space after the colon,
Azure writes one).
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

REQUEST_ID = re.compile(r"^[0-9a-fA-F]{32}$")
USP_V1_PATH = "/speech/translation/cognitiveservices/v1"  # languages in the query
USP_V2_PATH = "/stt/speech/universal/v2"  # languages in speech.context
# Speech-to-text without translation; the path names the mode the SDK chose (host= construction).
RECOGNITION_PATHS = {f"/speech/recognition/{mode}/cognitiveservices/v1": mode.upper()
                     for mode in ("interactive", "conversation", "dictation")}

# Message paths (compare lower-cased: header values are case-insensitive in practice).
SPEECH_CONFIG = "speech.config"
SPEECH_CONTEXT = "speech.context"
AUDIO = "audio"
TELEMETRY = "telemetry"
TURN_START = "turn.start"
TURN_END = "turn.end"
SPEECH_START_DETECTED = "speech.startDetected"
SPEECH_END_DETECTED = "speech.endDetected"
SPEECH_HYPOTHESIS = "speech.hypothesis"  # speech-to-text without translation
SPEECH_PHRASE = "speech.phrase"
HYPOTHESIS = "translation.hypothesis"  # v1 flavour
PHRASE = "translation.phrase"  # v1 flavour
RESPONSE = "translation.response"  # v2 flavour: hypotheses and phrases
SYNTHESIS = "translation.synthesis"  # v1 flavour: binary TTS audio
SYNTHESIS_END = "translation.synthesis.end"
AUDIO_START = "audio.start"  # v2 flavour TTS: start, binary audio, end on one X-StreamId
AUDIO_END = "audio.end"
WAV_CONTENT_TYPE = "audio/x-wav"


class FramingError(ValueError):
    """Malformed framing: the USP answer is close code 1007."""


@dataclass
class UspMessage:
    path: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes | str = b""

    @property
    def request_id(self) -> str | None:
        return self.headers.get("x-requestid")

    def json(self) -> dict:
        text = self.body.decode() if isinstance(self.body, bytes) else self.body
        return json.loads(text) if text.strip() else {}


def new_request_id() -> str:
    return uuid.uuid4().hex


def timestamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _parse_headers(block: str) -> dict[str, str]:
    headers = {}
    for line in block.split("\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise FramingError(f"header line without a colon: {line[:60]!r}")
        headers[name.strip().lower()] = value.strip()
    return headers


def parse_text(message: str) -> UspMessage:
    head, sep, body = message.partition("\r\n\r\n")
    if not sep:
        raise FramingError("text message without the blank line that ends its headers")
    headers = _parse_headers(head)
    return UspMessage(headers.get("path", ""), headers, body)


def parse_binary(message: bytes) -> UspMessage:
    if len(message) < 2:
        raise FramingError("binary message shorter than its 2-byte header length")
    length = int.from_bytes(message[:2], "big")
    if length > len(message) - 2:
        raise FramingError(f"header length {length} exceeds the message ({len(message) - 2} bytes)")
    try:
        block = message[2:2 + length].decode("ascii")
    except UnicodeDecodeError:
        raise FramingError("binary header block is not ASCII") from None
    headers = _parse_headers(block)
    return UspMessage(headers.get("path", ""), headers, message[2 + length:])


def _header_lines(path: str, request_id: str | None, extra: dict[str, str] | None) -> str:
    headers = {"Path": path}
    if request_id:
        headers["X-RequestId"] = request_id
    headers["X-Timestamp"] = timestamp()
    headers.update(extra or {})
    return "".join(f"{k}:{v}\r\n" for k, v in headers.items())


def build_text(path: str, request_id: str | None, body: dict | str | None = None,
               extra: dict[str, str] | None = None, content_type: str | None = "application/json") -> str:
    if isinstance(body, dict):
        body = json.dumps(body, ensure_ascii=False)
    extra = dict(extra or {})
    if content_type and body:
        extra.setdefault("Content-Type", content_type)
    return _header_lines(path, request_id, extra) + "\r\n" + (body or "")


def build_binary(path: str, request_id: str | None, payload: bytes, extra: dict[str, str] | None = None) -> bytes:
    block = _header_lines(path, request_id, extra).encode("ascii")
    return len(block).to_bytes(2, "big") + block + payload
