"""``speech.context``: the per-turn settings a client sends, checked against a schema.

What a client sends is validated (pydantic), so a type-confused body is a :class:`MessageError`
naming the field, never an AttributeError. Unknown keys pass: the SDKs add sections over time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictStr, ValidationError

from parley_common.languages import base_language
from parley_common.protocols.usp import SPEECH_CONTEXT, UspMessage, build_text


class MessageError(ValueError):
    """A message whose body does not fit its schema; the reason names the field."""


def ticks(value) -> int:
    """Offsets and durations; a value we cannot read is 0, never an error (nothing downstream needs them)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def json_body(message: UspMessage) -> Any:
    """The body as JSON (empty: ``{}``); MessageError when it is not JSON."""
    try:
        return message.json()
    except (ValueError, UnicodeDecodeError):
        raise MessageError(f"{message.path.lower()}: the body is not JSON") from None


def _voice_language(targets: tuple[str, ...], voice: str) -> str:
    """The target a voice speaks: the one sharing its language (``de`` for de-DE-KatjaNeural)."""
    base = base_language(voice)
    return next((t for t in targets if base_language(t) == base), base)


@dataclass(frozen=True)
class SpeechContext:
    """Per-turn settings a client sends before the turn's audio; v2 clients put the languages here."""

    targets: tuple[str, ...] = ()
    voice: str | None = None
    stream_id: str | None = None
    source: str | None = None
    mode: str | None = None  # phraseDetection.mode, upper-case: INTERACTIVE ends the turn after one phrase
    continuation: tuple[str, int] | None = None  # (previous turn's serviceTag, where the replay starts in ticks)
    output_format: str | None = None  # phraseOutput.format, lower-case: simple | detailed
    profanity: str | None = None  # phraseDetection.enrichment.profanity: masked | removed | raw
    candidates: tuple[str, ...] = ()  # languageId.languages: identify the spoken one among these
    expected_language: str | None = None  # languageId.expectedLanguage (Parley's): the one a seat predicts
    voices: tuple[tuple[str, str], ...] = ()  # synthesis.defaultVoices as (language, voice), beyond ``voice``
    speak_passthrough: bool = True  # translation.onPassthrough: synthesize a target in the spoken language

    @property
    def voice_map(self) -> dict[str, str]:
        """Target language -> voice: ``voices`` as given, else the one ``voice`` for its language."""
        if self.voices:
            return dict(self.voices)
        return {_voice_language(self.targets, self.voice): self.voice} if self.voice else {}

    def encode(self, request_id: str) -> str:
        """The body SDK 1.53 sends (B.5.2): ``phraseDetection`` only when a source or mode is given (v2)."""
        body: dict = {}
        if self.source or self.mode or self.profanity:
            body["phraseDetection"] = {k: v for k, v in (("mode", self.mode), ("language", self.source)) if v}
            body["phraseDetection"].update({"onSuccess": {"action": "Translate"}, "onInterim": {"action": "Translate"}})
            if self.profanity:
                body["phraseDetection"]["enrichment"] = {"profanity": self.profanity}
        if self.candidates:
            body["languageId"] = {"languages": list(self.candidates), "mode": "DetectContinuous",
                                  "onSuccess": {"action": "Recognize"}, "onUnknown": {"action": "None"},
                                  "Priority": "PrioritizeLatency"}  # capitalised, as SDK 1.53 (C++) sends it
            if self.expected_language:
                body["languageId"]["expectedLanguage"] = self.expected_language
        body["translation"] = {"targetLanguages": list(self.targets), "output": {"includePassThroughResults": True}}
        voices = self.voice_map
        if voices:
            passthrough = "Synthesize" if self.speak_passthrough else "None"
            body["translation"].update({"onSuccess": {"action": "Synthesize"}, "onPassthrough": {"action": passthrough}})
            body["synthesis"] = {"synthesizedLanguages": list(voices), "defaultVoices": voices}
        if self.stream_id is not None:
            body["audio"] = {"streams": {self.stream_id: None}}
        if self.continuation is not None:
            tag, offset_ticks = self.continuation
            body["continuation"] = {"previousServiceTag": tag,
                                    "audio": {"streams": {self.stream_id or "1": {"offset": str(offset_ticks)}}}}
        if self.output_format:
            body["phraseOutput"] = {"format": self.output_format.capitalize()}
        return build_text(SPEECH_CONTEXT, request_id, body, content_type=None)

    @classmethod
    def decode(cls, message: UspMessage) -> "SpeechContext":
        """Also SDK <= 1.42's ``translationcontext.to``; raises MessageError for a body off the schema."""
        context = _validated(_ContextBody, json_body(message), SPEECH_CONTEXT)
        detection = context.phraseDetection or _PhraseDetection()
        translation = context.translation or _TranslationSection()
        targets = translation.targetLanguages or (context.translationcontext.to if context.translationcontext else [])
        voices = context.synthesis.defaultVoices if context.synthesis and context.synthesis.defaultVoices else {}
        streams = context.audio.streams if context.audio and context.audio.streams else {}
        output = context.phraseOutput.format if context.phraseOutput and context.phraseOutput.format else None
        profanity = detection.enrichment.profanity if detection.enrichment else None
        continuation = None
        if context.continuation is not None:
            offsets = [s.get("offset") for s in (context.continuation.audio or {}).get("streams", {}).values()
                       if isinstance(s, dict)]
            continuation = (str(context.continuation.previousServiceTag), ticks(offsets[0] if offsets else 0))
        identify = context.languageId or _LanguageId()
        passthrough = translation.onPassthrough.action if translation.onPassthrough else None
        return cls(tuple(targets), next(iter(voices.values()), None), next(iter(streams), None), detection.language,
                   detection.mode.upper() if detection.mode else None, continuation,
                   output.lower() if output else None, profanity.lower() if profanity else None,
                   tuple(identify.languages or ()), identify.expectedLanguage,
                   tuple(voices.items()) if len(voices) > 1 else (),
                   (passthrough or "Synthesize").lower() == "synthesize")


class _Lenient(BaseModel):
    """Unknown keys pass (the SDKs add sections over time); known keys must have their type."""

    model_config = ConfigDict(extra="allow")


class _Enrichment(_Lenient):
    profanity: StrictStr | None = None


class _PhraseDetection(_Lenient):
    mode: StrictStr | None = None
    language: StrictStr | None = None
    enrichment: _Enrichment | None = None


class _Action(_Lenient):
    action: StrictStr | None = None


class _TranslationSection(_Lenient):
    targetLanguages: list[StrictStr] | None = None
    onPassthrough: _Action | None = None


class _LanguageId(_Lenient):
    languages: list[StrictStr] | None = None
    expectedLanguage: StrictStr | None = None


class _OldTranslationContext(_Lenient):
    to: list[StrictStr] | None = None


class _Synthesis(_Lenient):
    defaultVoices: dict[str, StrictStr] | None = None


class _AudioSection(_Lenient):
    streams: dict[str, Any] | None = None


class _PhraseOutput(_Lenient):
    format: StrictStr | None = None


class _Continuation(_Lenient):
    previousServiceTag: StrictStr | None = None
    audio: dict[str, Any] | None = None


class _ContextBody(_Lenient):
    phraseDetection: _PhraseDetection | None = None
    translation: _TranslationSection | None = None
    translationcontext: _OldTranslationContext | None = None
    synthesis: _Synthesis | None = None
    audio: _AudioSection | None = None
    phraseOutput: _PhraseOutput | None = None
    continuation: _Continuation | None = None
    languageId: _LanguageId | None = None


class _AnyObject(_Lenient):
    """``speech.config`` and ``telemetry``: informational, but a JSON object."""


def _validated(model: type[BaseModel], body: Any, path: str):
    try:
        value = model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        what = first["msg"].split(" or instance of")[0]  # not our private class names
        raise MessageError(f"{path}: {where}: {what}") from None
    return value


def check_object(body: Any, path: str) -> None:
    """A body that must be a JSON object (``speech.config``, ``telemetry``)."""
    _validated(_AnyObject, body, path)
