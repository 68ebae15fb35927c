"""Azure Speech USP messages, each written once: one class per message that encodes and decodes itself.

The gateway encodes what a service sends and the agent decodes it (and the other way round for
``speech.context`` and ``audio``). Result decoders are as lenient as Azure needs: ``DisplayText`` or
``Text``, ``Translations`` at the top (v2) or under ``Translation`` (v1), a missing status meaning
success. What a client sends is checked against a schema (:mod:`usp_schema`), so a type-confused body is a
:class:`MessageError` naming the field, never an AttributeError. Bodies are dicts (JSON); paths are
compared lower-cased.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


from parley_common.languages import base_language
from parley_common.protocols.usp import (
    AUDIO,
    AUDIO_END,
    AUDIO_START,
    HYPOTHESIS,
    PHRASE,
    RESPONSE,
    SPEECH_CONTEXT,
    SPEECH_HYPOTHESIS,
    SPEECH_PHRASE,
    SYNTHESIS,
    SYNTHESIS_END,
    WAV_CONTENT_TYPE,
    UspMessage,
    build_binary,
    build_text,
)
from parley_common.protocols.usp_schema import (
    ContextBody,
    Dgi,
    LanguageId,
    ModeSection,
    PhraseDetection,
    TranslationSection,
    validated,
)

RESULT_PATHS = (HYPOTHESIS, PHRASE, RESPONSE)
# RecognitionStatus values that end a phrase normally (with or without text); any other is an error.
NON_ERROR_STATUSES = ("Success", "NoMatch", "InitialSilenceTimeout", "BabbleTimeout", "EndOfDictation")
FLAVOURS = ("v1", "v2")  # served on USP_V1_PATH and USP_V2_PATH
MODES = ("INTERACTIVE", "CONVERSATION", "DICTATION")  # phraseDetection.mode; INTERACTIVE is single-shot
OUTPUT_FORMATS = ("simple", "detailed")  # speech-only results: DisplayText alone, or with NBest


def _translation_list(translations: dict[str, str]) -> list[dict]:
    return [{"Language": language, "Text": text} for language, text in translations.items()]


def _translations_from(items) -> dict[str, str]:
    return {str(t.get("Language")): str(t.get("Text") or t.get("DisplayText") or "") for t in items or []}


def _ticks(value) -> int:
    """Offsets and durations; a value we cannot read is 0, never an error (nothing downstream needs them)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


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

    def encode(self, request_id: str, flavour: str) -> str:
        speech = {"Text": self.text, "Offset": self.offset_ticks, "Duration": self.duration_ticks,
                  **_primary_language(self.language)}
        translated = {"TranslationStatus": "Success", "Translations": _translation_list(self.translations)}
        if flavour == "v2":
            return build_text(RESPONSE, request_id, {"SpeechHypothesis": speech, **translated})
        return build_text(HYPOTHESIS, request_id, {**speech, "Translation": translated})

    @classmethod
    def decode(cls, path: str, body: dict) -> "Hypothesis":
        if path == RESPONSE:
            speech = body.get("SpeechHypothesis", {})
            text = speech.get("DisplayText") or speech.get("Text") or ""
            translations = body.get("Translations", [])
        else:
            speech = body
            text = body.get("Text", "") if _succeeded(body) else ""
            translations = body.get("Translation", {}).get("Translations", [])
        return cls(text, _translations_from(translations), _ticks(speech.get("Offset")), _ticks(speech.get("Duration")),
                   DetectedLanguage.decode(speech))


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

    def encode(self, request_id: str, flavour: str) -> str:
        timing = {"Offset": self.offset_ticks, "Duration": self.duration_ticks, **_primary_language(self.language)}
        if self.best is not None and self.text:
            timing["NBest"] = [self.best]
        status = self.status if self.status != "Success" else ("Success" if self.text else "NoMatch")
        translated = ({"TranslationStatus": "Error", "FailureReason": self.translation_error}
                      if self.translation_error else
                      {"TranslationStatus": "Success", "Translations": _translation_list(self.translations)})
        if flavour == "v2":
            return build_text(RESPONSE, request_id, {
                "SpeechPhrase": {"RecognitionStatus": status, "DisplayText": self.text, **timing}, **translated})
        body = {"RecognitionStatus": status, "Text": self.text, **timing}
        if self.text:
            body["Translation"] = translated
        return build_text(PHRASE, request_id, body)

    @classmethod
    def decode(cls, path: str, body: dict) -> "Phrase":
        if path == RESPONSE:
            speech = body.get("SpeechPhrase", {})
            text = (speech.get("DisplayText") or speech.get("Text") or "") if _succeeded(speech) else ""
            translated = body
        else:
            speech = body
            text = body.get("Text", "") if _succeeded(body) else ""
            translated = body.get("Translation", {}) if text else {}
        error = translated.get("FailureReason") if translated.get("TranslationStatus") == "Error" else None
        return cls(text, _translations_from(translated.get("Translations")), _ticks(speech.get("Offset")),
                   _ticks(speech.get("Duration")), error, str(speech.get("RecognitionStatus", "Success")),
                   DetectedLanguage.decode(speech))

    @property
    def end_ticks(self) -> int:
        """Where the phrase ends, from the turn's first sample: what a client may treat as acknowledged."""
        return self.offset_ticks + self.duration_ticks


def _voice_language(targets: tuple[str, ...], voice: str) -> str:
    """The target a voice speaks: the one sharing its language (``de`` for de-DE-KatjaNeural)."""
    base = base_language(voice)
    return next((t for t in targets if base_language(t) == base), base)


def decode_result(path: str, body: dict) -> Hypothesis | Phrase:
    """A result message of either flavour (``path`` lower-cased, one of RESULT_PATHS)."""
    if path == PHRASE or (path == RESPONSE and body.get("SpeechPhrase") is not None):
        return Phrase.decode(path, body)
    return Hypothesis.decode(path, body)


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
    def decode(cls, body: dict) -> "SpeechHypothesis":
        return cls(str(body.get("Text", "")), _ticks(body.get("Offset")), _ticks(body.get("Duration")),
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
    def decode(cls, body: dict) -> "SpeechPhrase":
        text = str(body.get("DisplayText") or body.get("Text") or "") if _succeeded(body) else ""
        nbest = body.get("NBest")
        best = nbest[0] if isinstance(nbest, list) and nbest and isinstance(nbest[0], dict) else None
        return cls(text, _ticks(body.get("Offset")), _ticks(body.get("Duration")), "NBest" in body,
                   str(body.get("RecognitionStatus", "Success")), DetectedLanguage.decode(body), best)


def lexical_form(text: str) -> str:
    """What the service calls the lexical form: spoken words, lower case, no punctuation."""
    return " ".join(re.sub(r"[^\w'\s-]", " ", text.lower()).split())


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
    def decode(cls, body: Any) -> "SpeechContext":
        """Also SDK <= 1.42's ``translationcontext.to``; raises MessageError for a body off the schema."""
        context = validated(ContextBody, body, SPEECH_CONTEXT)
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
            continuation = (str(context.continuation.previousServiceTag), _ticks(offsets[0] if offsets else 0))
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
    def decode(cls, message: UspMessage, body: dict) -> "SynthesisStart":
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
    def decode(cls, message: UspMessage, body: dict) -> "SynthesisEnd":
        status = body.get("SynthesisStatus", body.get("Status", "Success"))
        return cls(None if status == "Success" else str(body.get("FailureReason", status)),
                   message.headers.get("x-streamid"))
