"""``speech.context``: the per-turn settings a client sends, checked against its schema (``usp_schema.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from parley_common.languages import base_language
from parley_common.protocols.usp import SPEECH_CONTEXT, UspMessage, build_text
from parley_common.protocols.usp_schema import (
    ContextBody,
    Dgi,
    LanguageId,
    MessageError,
    ModeSection,
    PhraseDetection,
    TranslationSection,
    validated,
)

MODES = ("INTERACTIVE", "CONVERSATION", "DICTATION")  # phraseDetection.mode; INTERACTIVE is single-shot


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
    identify_once: bool = False  # languageId.mode DetectAtAudioStart (the SDK's default): one verdict per turn
    initial_silence_ms: int | None = None  # phraseDetection.initialSilenceTimeout
    end_silence_ms: int | None = None  # phraseDetection.trailingSilenceTimeout
    segmentation_silence_ms: int | None = None  # phraseDetection.<MODE>.segmentation.segmentationSilenceTimeoutMs
    word_timings: bool = False  # phraseOutput.detailed.options has WordTimings
    phrases: tuple[str, ...] = ()  # dgi.Groups[].Items[].Text: the phrase list that biases recognition

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
        context = validated(ContextBody, json_body(message), SPEECH_CONTEXT)
        detection = context.phraseDetection or PhraseDetection()
        translation = context.translation or TranslationSection()
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
        identify = context.languageId or LanguageId()
        passthrough = translation.onPassthrough.action if translation.onPassthrough else None
        options = context.phraseOutput.detailed.options if context.phraseOutput and context.phraseOutput.detailed else []
        return cls(tuple(targets), next(iter(voices.values()), None), next(iter(streams), None), detection.language,
                   detection.mode.upper() if detection.mode else None, continuation,
                   output.lower() if output else None, profanity.lower() if profanity else None,
                   tuple(identify.languages or ()), identify.expectedLanguage,
                   tuple(voices.items()) if len(voices) > 1 else (),
                   (passthrough or "Synthesize").lower() == "synthesize",
                   (identify.mode or "").lower() == "detectataudiostart",
                   detection.initialSilenceTimeout, detection.trailingSilenceTimeout, _segmentation_ms(detection),
                   "wordtimings" in {option.lower() for option in options or ()}, _phrase_list(context.dgi))


def _segmentation_ms(detection: "PhraseDetection") -> int | None:
    """``phraseDetection.<MODE>.segmentation.segmentationSilenceTimeoutMs``, under whichever mode the SDK names."""
    for name, section in (detection.model_extra or {}).items():
        if name.upper() in MODES and isinstance(section, dict):
            segmentation = validated(ModeSection, section, f"{SPEECH_CONTEXT}: phraseDetection.{name}").segmentation
            if segmentation and segmentation.segmentationSilenceTimeoutMs is not None:
                return segmentation.segmentationSilenceTimeoutMs
    return None


def _phrase_list(dgi: "Dgi | None") -> tuple[str, ...]:
    if dgi is None:
        return ()
    return tuple(item.Text for group in dgi.Groups or () for item in group.Items or () if item.Text and item.Text.strip())
