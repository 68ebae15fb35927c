"""Azure Speech USP messages, each written once: one class per message that encodes and decodes itself.

One interface for every class, as wyoming's events: ``encode(request_id)`` gives the wire message
(text or binary) and ``decode(message)`` takes a parsed :class:`UspMessage`; :func:`decode_message`
maps a received message to its class by its path, with one table per direction
(``CLIENT_MESSAGES``: what the gateway receives; ``SERVICE_MESSAGES``: what the agent receives).
Result decoders are as lenient as Azure needs: ``DisplayText`` or ``Text``, ``Translations`` at the
top (v2) or under ``Translation`` (v1), a missing status meaning success. A body that is not a
JSON object, or ``speech.context`` off its schema (``usp_schema.py``), is a :class:`MessageError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from parley_common.protocols.usp import (
    AUDIO,
    AUDIO_END,
    AUDIO_START,
    HYPOTHESIS,
    PHRASE,
    RESPONSE,
    SPEECH_CONFIG,
    SPEECH_CONTEXT,
    SPEECH_END_DETECTED,
    SPEECH_HYPOTHESIS,
    SPEECH_PHRASE,
    SPEECH_START_DETECTED,
    SYNTHESIS,
    SYNTHESIS_END,
    TELEMETRY,
    TURN_END,
    TURN_START,
    WAV_CONTENT_TYPE,
    UspMessage,
    build_binary,
    build_text,
)
from parley_common.protocols.usp_context import SpeechContext, json_body, ticks
from parley_common.protocols.usp_schema import MessageError

RESULT_PATHS = (HYPOTHESIS, PHRASE, RESPONSE)
# RecognitionStatus values that end a phrase normally (with or without text); any other is an error.
NON_ERROR_STATUSES = ("Success", "NoMatch", "InitialSilenceTimeout", "BabbleTimeout", "EndOfDictation")
FLAVOURS = ("v1", "v2")  # served on USP_V1_PATH and USP_V2_PATH
OUTPUT_FORMATS = ("simple", "detailed")  # speech-only results: DisplayText alone, or with NBest


def _translation_list(translations: dict[str, str]) -> list[dict]:
    return [{"Language": language, "Text": text} for language, text in translations.items()]


def _translations_from(items) -> dict[str, str]:
    return {str(t.get("Language")): str(t.get("Text") or t.get("DisplayText") or "") for t in items or []}


def _object(message: UspMessage) -> dict:
    body = json_body(message)
    if not isinstance(body, dict):
        raise MessageError(f"{message.path.lower()}: the body is not a JSON object")
    return body


def _succeeded(speech: dict) -> bool:
    return speech.get("RecognitionStatus", "Success") == "Success"


@dataclass(frozen=True)
class DetectedLanguage:
    """Language identification's verdict on a phrase: ``PrimaryLanguage`` in the phrase's speech part.

    ``confidence`` is the service's word for it (``High``, ``Normal``, ``Low``, ``Unknown``).
    """

    language: str
    confidence: str = "Unknown"

    @classmethod
    def decode(cls, speech: dict) -> "DetectedLanguage | None":
        primary = speech.get("PrimaryLanguage")
        if not isinstance(primary, dict) or not primary.get("Language"):
            return None
        return cls(str(primary["Language"]), str(primary.get("Confidence") or "Unknown"))


def _primary_language(language: DetectedLanguage | None) -> dict:
    return {} if language is None else {"PrimaryLanguage": {"Language": language.language,
                                                            "Confidence": language.confidence}}


@dataclass(frozen=True)
class Hypothesis:
    """A partial recognition with its translations; offsets in 100 ns ticks from the turn's start."""

    text: str
    translations: dict[str, str] = field(default_factory=dict)
    offset_ticks: int = 0
    duration_ticks: int = 0
    language: DetectedLanguage | None = None
    flavour: str = "v1"  # translation.hypothesis (v1) or translation.response (v2)

    def encode(self, request_id: str) -> str:
        speech = {"Text": self.text, "Offset": self.offset_ticks, "Duration": self.duration_ticks,
                  **_primary_language(self.language)}
        translated = {"TranslationStatus": "Success", "Translations": _translation_list(self.translations)}
        if self.flavour == "v2":
            return build_text(RESPONSE, request_id, {"SpeechHypothesis": speech, **translated})
        return build_text(HYPOTHESIS, request_id, {**speech, "Translation": translated})

    @classmethod
    def decode(cls, message: UspMessage) -> "Hypothesis":
        body = _object(message)
        v2 = message.path.lower() == RESPONSE
        if v2:
            speech = body.get("SpeechHypothesis", {})
            text = speech.get("DisplayText") or speech.get("Text") or ""
            translations = body.get("Translations", [])
        else:
            speech = body
            text = body.get("Text", "") if _succeeded(body) else ""
            translations = body.get("Translation", {}).get("Translations", [])
        return cls(text, _translations_from(translations), ticks(speech.get("Offset")), ticks(speech.get("Duration")),
                   DetectedLanguage.decode(speech), "v2" if v2 else "v1")


@dataclass(frozen=True)
class Phrase:
    """A final recognition: ``NoMatch`` when there is no text; a failed translation carries its reason.

    ``status`` is the RecognitionStatus: one of NON_ERROR_STATUSES, or an error the service
    ended recognition with (``TooManyRequests``, ``BadRequest``, ``Error``, …) that a client must
    act on rather than read as silence.
    """

    text: str
    translations: dict[str, str] = field(default_factory=dict)
    offset_ticks: int = 0
    duration_ticks: int = 0
    translation_error: str | None = None
    status: str = "Success"
    language: DetectedLanguage | None = None
    best: dict | None = field(default=None, compare=False)  # detailed output: the one NBest entry
    flavour: str = "v1"  # translation.phrase (v1) or translation.response (v2)
    failure_reason: str | None = None  # with an error status: the service's FailureReason

    def encode(self, request_id: str) -> str:
        timing = {"Offset": self.offset_ticks, "Duration": self.duration_ticks, **_primary_language(self.language)}
        if self.best is not None and self.text:
            timing["NBest"] = [self.best]
        if self.failure_reason:
            timing["FailureReason"] = self.failure_reason
        status = self.status if self.status != "Success" else ("Success" if self.text else "NoMatch")
        translated = ({"TranslationStatus": "Error", "FailureReason": self.translation_error}
                      if self.translation_error else
                      {"TranslationStatus": "Success", "Translations": _translation_list(self.translations)})
        if self.flavour == "v2":
            return build_text(RESPONSE, request_id, {
                "SpeechPhrase": {"RecognitionStatus": status, "DisplayText": self.text, **timing}, **translated})
        body = {"RecognitionStatus": status, "Text": self.text, **timing}
        if self.text:
            body["Translation"] = translated
        return build_text(PHRASE, request_id, body)

    @classmethod
    def decode(cls, message: UspMessage) -> "Phrase":
        body = _object(message)
        v2 = message.path.lower() == RESPONSE
        if v2:
            speech = body.get("SpeechPhrase", {})
            text = (speech.get("DisplayText") or speech.get("Text") or "") if _succeeded(speech) else ""
            translated = body
        else:
            speech = body
            text = body.get("Text", "") if _succeeded(body) else ""
            translated = body.get("Translation", {}) if text else {}
        error = translated.get("FailureReason") if translated.get("TranslationStatus") == "Error" else None
        return cls(text, _translations_from(translated.get("Translations")), ticks(speech.get("Offset")),
                   ticks(speech.get("Duration")), error, str(speech.get("RecognitionStatus", "Success")),
                   DetectedLanguage.decode(speech), flavour="v2" if v2 else "v1",
                   failure_reason=None if _succeeded(speech) else speech.get("FailureReason"))

    @property
    def end_ticks(self) -> int:
        """Where the phrase ends, from the turn's first sample: what a client may treat as acknowledged."""
        return self.offset_ticks + self.duration_ticks


def _response(message: UspMessage) -> "Hypothesis | Phrase":
    """v2's one result path: a phrase when it holds a ``SpeechPhrase``, else a hypothesis."""
    return (Phrase if _object(message).get("SpeechPhrase") is not None else Hypothesis).decode(message)


@dataclass(frozen=True)
class SpeechHypothesis:
    """Speech-to-text without translation: an interim result (``speech.hypothesis``)."""

    text: str
    offset_ticks: int = 0
    duration_ticks: int = 0
    language: DetectedLanguage | None = None

    def encode(self, request_id: str) -> str:
        return build_text(SPEECH_HYPOTHESIS, request_id, {"Text": self.text, "Offset": self.offset_ticks,
                                                          "Duration": self.duration_ticks, **_primary_language(self.language)})

    @classmethod
    def decode(cls, message: UspMessage) -> "SpeechHypothesis":
        body = _object(message)
        return cls(str(body.get("Text", "")), ticks(body.get("Offset")), ticks(body.get("Duration")),
                   DetectedLanguage.decode(body))


@dataclass(frozen=True)
class SpeechPhrase:
    """Speech-to-text without translation: a final (``speech.phrase``), simple or detailed.

    Detailed adds ``NBest``: ``best`` as the server built it (confidence, ITN, words), else the
    lexical form alone. ``status`` as in :class:`Phrase` (``InitialSilenceTimeout`` for a turn that
    heard no speech).
    """

    text: str
    offset_ticks: int = 0
    duration_ticks: int = 0
    detailed: bool = False
    status: str = "Success"
    language: DetectedLanguage | None = None
    best: dict | None = field(default=None, compare=False)

    def encode(self, request_id: str) -> str:
        status = self.status if self.status != "Success" else ("Success" if self.text else "NoMatch")
        body: dict = {"RecognitionStatus": status, "Offset": self.offset_ticks, "Duration": self.duration_ticks,
                      **_primary_language(self.language)}
        if self.text:
            body["DisplayText"] = self.text
            if self.detailed:
                lexical = lexical_form(self.text)
                body["NBest"] = [self.best or {"Lexical": lexical, "ITN": lexical, "MaskedITN": lexical,
                                               "Display": self.text}]
        return build_text(SPEECH_PHRASE, request_id, body)

    @classmethod
    def decode(cls, message: UspMessage) -> "SpeechPhrase":
        body = _object(message)
        text = str(body.get("DisplayText") or body.get("Text") or "") if _succeeded(body) else ""
        nbest = body.get("NBest")
        best = nbest[0] if isinstance(nbest, list) and nbest and isinstance(nbest[0], dict) else None
        return cls(text, ticks(body.get("Offset")), ticks(body.get("Duration")), "NBest" in body,
                   str(body.get("RecognitionStatus", "Success")), DetectedLanguage.decode(body), best)


def lexical_form(text: str) -> str:
    """What the service calls the lexical form: spoken words, lower case, no punctuation."""
    return " ".join(re.sub(r"[^\w'\s-]", " ", text.lower()).split())


@dataclass(frozen=True)
class Audio:
    """Client audio of a turn: the WAV header first (with its content type), PCM, then an empty end."""

    payload: bytes
    stream_id: str | None = None
    wav_header: bool = False

    def encode(self, request_id: str) -> bytes:
        headers = {"X-StreamId": self.stream_id} if self.stream_id is not None else {}
        if self.wav_header:
            headers["Content-Type"] = WAV_CONTENT_TYPE
        return build_binary(AUDIO, request_id, self.payload, headers)

    @classmethod
    def decode(cls, message: UspMessage) -> "Audio":
        payload = message.body if isinstance(message.body, bytes) else message.body.encode()
        return cls(payload, message.headers.get("x-streamid"),
                   message.headers.get("content-type", "").lower() == WAV_CONTENT_TYPE)


@dataclass(frozen=True)
class SynthesisStart:
    """v2: the language of the synthesized audio that follows on ``stream_id``."""

    language: str
    stream_id: str

    def encode(self, request_id: str) -> str:
        return build_text(AUDIO_START, request_id, {"TranslationLanguage": self.language}, {"X-StreamId": self.stream_id})

    @classmethod
    def decode(cls, message: UspMessage) -> "SynthesisStart":
        body = _object(message)
        return cls(str(body.get("TranslationLanguage", "")), message.headers.get("x-streamid", ""))


@dataclass(frozen=True)
class SynthesisAudio:
    """Synthesized WAV: ``translation.synthesis`` (v1) or ``audio`` on a stream id (v2)."""

    wav_bytes: bytes
    stream_id: str | None = None

    def encode(self, request_id: str) -> bytes:
        if self.stream_id is None:
            return build_binary(SYNTHESIS, request_id, self.wav_bytes, {"Content-Type": WAV_CONTENT_TYPE})
        return build_binary(AUDIO, request_id, self.wav_bytes,
                            {"X-StreamId": self.stream_id, "Content-Type": WAV_CONTENT_TYPE})

    @classmethod
    def decode(cls, message: UspMessage) -> "SynthesisAudio":
        return cls(message.body if isinstance(message.body, bytes) else message.body.encode(),
                   message.headers.get("x-streamid"))


@dataclass(frozen=True)
class SynthesisEnd:
    """The end of a synthesis: ``translation.synthesis.end`` (v1) or ``audio.end`` on a stream id (v2)."""

    failure: str | None = None
    stream_id: str | None = None

    def encode(self, request_id: str) -> str:
        key, path = ("SynthesisStatus", SYNTHESIS_END) if self.stream_id is None else ("Status", AUDIO_END)
        body = {key: "Success"} if self.failure is None else {key: "Error", "FailureReason": self.failure}
        extra = {"X-StreamId": self.stream_id} if self.stream_id is not None else None
        return build_text(path, request_id, body, extra)

    @classmethod
    def decode(cls, message: UspMessage) -> "SynthesisEnd":
        body = _object(message)
        status = body.get("SynthesisStatus", body.get("Status", "Success"))
        return cls(None if status == "Success" else str(body.get("FailureReason", status)),
                   message.headers.get("x-streamid"))


@dataclass(frozen=True)
class SpeechConfig:
    """Who the client is (``context.system``, ``os``, ``audio``): informational, but a JSON object."""

    body: dict

    def encode(self, request_id: str | None = None) -> str:
        return build_text(SPEECH_CONFIG, request_id, self.body)

    @classmethod
    def decode(cls, message: UspMessage) -> "SpeechConfig":
        return cls(_object(message))


@dataclass(frozen=True)
class Telemetry:
    """What a client received in a turn, sent at its end: informational, but a JSON object."""

    body: dict

    def encode(self, request_id: str) -> str:
        return build_text(TELEMETRY, request_id, self.body, content_type="application/json; charset=utf-8")

    @classmethod
    def decode(cls, message: UspMessage) -> "Telemetry":
        return cls(_object(message))


@dataclass(frozen=True)
class TurnStart:
    """The service took a turn; a continuation turn names its ``serviceTag``."""

    service_tag: str | None = None

    def encode(self, request_id: str) -> str:
        return build_text(TURN_START, request_id, {"context": {"serviceTag": self.service_tag}})

    @classmethod
    def decode(cls, message: UspMessage) -> "TurnStart":
        context = _object(message).get("context")
        tag = context.get("serviceTag") if isinstance(context, dict) else None
        return cls(str(tag) if tag else None)


@dataclass(frozen=True)
class TurnEnd:
    """Always the last message of a turn."""

    def encode(self, request_id: str) -> str:
        return build_text(TURN_END, request_id, None)

    @classmethod
    def decode(cls, message: UspMessage) -> "TurnEnd":
        return cls()


@dataclass(frozen=True)
class _SpeechBoundary:
    """Where the service heard speech start or end, in ticks from the turn's first sample (absent: 0)."""

    offset_ticks: int = 0
    PATH: ClassVar[str] = ""

    def encode(self, request_id: str) -> str:
        return build_text(self.PATH, request_id, {"Offset": self.offset_ticks})

    @classmethod
    def decode(cls, message: UspMessage):
        return cls(ticks(_object(message).get("Offset")))


class SpeechStartDetected(_SpeechBoundary):
    PATH = SPEECH_START_DETECTED


class SpeechEndDetected(_SpeechBoundary):
    """The client may stop sending this turn's audio."""

    PATH = SPEECH_END_DETECTED


Decoder = Callable[[UspMessage], Any]
CLIENT_MESSAGES: dict[str, Decoder] = {
    SPEECH_CONFIG: SpeechConfig.decode, SPEECH_CONTEXT: SpeechContext.decode, AUDIO: Audio.decode,
    TELEMETRY: Telemetry.decode,
}
SERVICE_MESSAGES: dict[str, Decoder] = {
    TURN_START: TurnStart.decode, TURN_END: TurnEnd.decode, SPEECH_START_DETECTED.lower(): SpeechStartDetected.decode,
    SPEECH_END_DETECTED.lower(): SpeechEndDetected.decode, HYPOTHESIS: Hypothesis.decode, PHRASE: Phrase.decode,
    RESPONSE: _response, SPEECH_HYPOTHESIS: SpeechHypothesis.decode, SPEECH_PHRASE: SpeechPhrase.decode,
    SYNTHESIS: SynthesisAudio.decode, AUDIO: SynthesisAudio.decode, AUDIO_START: SynthesisStart.decode,
    SYNTHESIS_END: SynthesisEnd.decode, AUDIO_END: SynthesisEnd.decode,
}


def decode_message(message: UspMessage, table: dict[str, Decoder]):
    """The message as its class, found by its path (case-insensitive) in ``table``; None for a path the
    table does not know (the SDKs and services add paths over time). Raises MessageError."""
    decoder = table.get(message.path.lower())
    if decoder is None:
        return None
    try:
        return decoder(message)
    except (AttributeError, TypeError) as exc:
        raise MessageError(f"{message.path.lower()}: the body has an unexpected shape ({exc})") from None
