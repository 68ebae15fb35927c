"""The engines a gateway runs with, and what they make available (languages, voices)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway import profanity
from gateway.config import GatewayConfig
from gateway.engines.apertium_mt import ApertiumTranslator
from gateway.engines.espeak_tts import EspeakSynthesizer
from gateway.engines.recognizers import Recognizers
from parley_common.languages import base_language

LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "ca": "Catalan", "fr": "French", "de": "German",
                  "it": "Italian", "pt": "Portuguese", "gl": "Galician", "eo": "Esperanto", "oc": "Occitan",
                  "eu": "Basque", "nl": "Dutch"}


@dataclass(frozen=True)
class LanguageRequest:
    source: str  # with candidates: the first of them, until a phrase says otherwise
    targets: tuple[str, ...]
    speak: tuple[str, ...] = ()  # the targets whose translations are synthesized
    candidates: tuple[str, ...] = ()  # identify each phrase's language among these (source languages)
    expected: str | None = None  # the candidate the client expects; see gateway.engines.language_id
    speak_passthrough: bool = True  # also synthesize a target in the phrase's own language

    def spoken_for(self, source: str) -> tuple[str, ...]:
        """What to synthesize for a phrase in ``source``."""
        own = base_language(source)
        return tuple(t for t in self.speak if self.speak_passthrough or t != own)


class LanguageError(ValueError):
    """An unsupported language or pair; the message names what is installed."""


class Engines:
    def __init__(self, config: GatewayConfig):
        self.config = config
        self.recognizer = Recognizers(config.recognition)
        self.translator = ApertiumTranslator()
        spoken = {t for source in self.recognizer.languages for t in self.translator.targets(source)}
        spoken |= set(self.recognizer.languages)  # passthrough: a target in the phrase's own language
        self.synthesizer = EspeakSynthesizer({lang: voice for lang, voice in config.voices.items() if lang in spoken})

    def resolve(self, source: str, targets: list[str], voice: str | None, speech_wanted: bool) -> LanguageRequest:
        wanted = self._targets_from(source, targets)
        speak: tuple[str, ...] = ()
        if speech_wanted:
            speak = (base_language(voice) if voice else wanted[0],)
            self._check_voices(speak, wanted, voice)
        return LanguageRequest(source, wanted, speak)

    def resolve_identified(self, candidates: list[str], targets: list[str], voices: dict[str, str],
                           expected: str | None, speak_passthrough: bool) -> LanguageRequest:
        """Language identification: every candidate must be recognized; no targets is speech-to-text. A
        candidate that cannot reach a target is still heard: its phrases fail to translate there
        (TranslationStatus Error), as long as some candidate reaches every target."""
        if not self.recognizer.identifies:
            raise LanguageError("language identification needs a Whisper language in the gateway's recognition.languages")
        wanted: tuple[str, ...] = tuple(dict.fromkeys(base_language(t) for t in targets if t))
        problems = []
        for candidate in candidates:
            self._check_source(candidate)
            if wanted:
                try:
                    self._targets_from(candidate, targets)
                except LanguageError as exc:
                    problems.append(str(exc))
        if problems and len(problems) == len(candidates):
            raise LanguageError(problems[0])
        if expected is not None and expected not in candidates:
            raise LanguageError(f"expected language {expected!r} is not one of the candidates {', '.join(candidates)}")
        speak = tuple(dict.fromkeys(base_language(language) for language in voices))
        self._check_voices(speak, wanted, None)
        return LanguageRequest(candidates[0], wanted, speak, tuple(candidates), expected, speak_passthrough)

    def _check_source(self, source: str) -> None:
        if base_language(source) not in self.recognizer.languages:
            raise LanguageError(
                f"unsupported source language {source!r}; installed: {', '.join(self.recognizer.languages.values())}")

    def _targets_from(self, source: str, targets: list[str]) -> tuple[str, ...]:
        self._check_source(source)
        installed = self.translator.targets(base_language(source))
        wanted = tuple(dict.fromkeys(base_language(t) for t in targets if t))
        if not wanted:
            raise LanguageError(f"no target language given; installed from {source}: {', '.join(installed)}")
        missing = [t for t in wanted if t not in installed and t != base_language(source)]
        if missing:
            raise LanguageError(f"unsupported target language(s) {', '.join(missing)} from {source}; "
                                f"installed: {', '.join(installed)}")
        return wanted

    def _check_voices(self, speak: tuple[str, ...], targets: tuple[str, ...], voice: str | None) -> None:
        if any(language not in targets or language not in self.synthesizer.voices for language in speak):
            asked = voice or ", ".join(speak)
            raise LanguageError(
                f"no voice {asked!r} for the requested targets; voices: {', '.join(sorted(self.synthesizer.voices))}")

    def profanity_words(self, language: str) -> frozenset[str] | None:
        """The profanity list for text in ``language``: None (English's) unless English translates into it,
        then the English list carried into it (built once, ~1 s; see gateway.profanity)."""
        if language == "en" or language not in self.translator.targets("en"):
            return None
        return profanity.translated_word_list(language, lambda word: self.translator.translate(word, "en", language))

    def warm_up_profanity(self) -> None:
        for language in self.translator.targets("en"):
            self.profanity_words(language)

    def translate(self, text: str, source: str, targets: tuple[str, ...]) -> dict[str, str]:
        """``text`` (in ``source``) in every target; a target in the source language gets the text itself."""
        own = base_language(source)
        return {t: text if t == own else self.translator.translate(text, own, t) for t in targets}

    def languages_document(self, scopes: list[str]) -> dict:
        """The Translator Languages API answer for what is installed; each speech language also lists
        the text languages it translates into (``translations``, our extension)."""
        doc: dict = {}
        sources = self.recognizer.languages  # base -> configured code
        if "speech" in scopes:
            doc["speech"] = {code: {"name": LANGUAGE_NAMES.get(base, code), "language": base,
                                    "translations": self.translator.targets(base)}
                             for base, code in sources.items()}
        if "text" in scopes:
            targets = sorted({t for base in sources for t in self.translator.targets(base)})
            doc["text"] = {t: {"name": LANGUAGE_NAMES.get(t, t), "dir": "ltr"} for t in targets}
        if "tts" in scopes:
            doc["tts"] = {
                f"{lang}-espeak": {"displayName": f"espeak-ng {voice}", "gender": "male", "locale": lang,
                                   "language": lang, "languageName": LANGUAGE_NAMES.get(lang, lang), "regionName": ""}
                for lang, voice in sorted(self.synthesizer.voices.items())}
        return doc

    def close(self) -> None:
        self.translator.close()
        self.recognizer.close()
