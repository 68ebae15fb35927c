"""The engines a gateway runs with, and what they make available (languages, voices)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import GatewayConfig
from gateway.engines.apertium_mt import ApertiumTranslator
from gateway.engines.espeak_tts import EspeakSynthesizer
from gateway.engines.recognizers import Recognizers, base_language

LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "ca": "Catalan", "fr": "French", "de": "German",
                  "it": "Italian", "pt": "Portuguese", "gl": "Galician", "eo": "Esperanto", "oc": "Occitan",
                  "eu": "Basque", "nl": "Dutch"}


@dataclass(frozen=True)
class LanguageRequest:
    source: str
    targets: tuple[str, ...]
    speak: str | None  # the target whose translation is synthesized, if any


class LanguageError(ValueError):
    """An unsupported language or pair; the message names what is installed."""


class Engines:
    def __init__(self, config: GatewayConfig):
        self.config = config
        self.recognizer = Recognizers(config.recognition)
        self.translator = ApertiumTranslator()
        spoken = {t for source in self.recognizer.languages for t in self.translator.targets(source)}
        self.synthesizer = EspeakSynthesizer({lang: voice for lang, voice in config.voices.items() if lang in spoken})

    def resolve(self, source: str, targets: list[str], voice: str | None, speech_wanted: bool) -> LanguageRequest:
        if base_language(source) not in self.recognizer.languages:
            raise LanguageError(
                f"unsupported source language {source!r}; installed: {', '.join(self.recognizer.languages.values())}")
        installed = self.translator.targets(base_language(source))
        wanted = tuple(dict.fromkeys(base_language(t) for t in targets if t))
        if not wanted:
            raise LanguageError(f"no target language given; installed from {source}: {', '.join(installed)}")
        missing = [t for t in wanted if t not in installed]
        if missing:
            raise LanguageError(f"unsupported target language(s) {', '.join(missing)} from {source}; "
                                f"installed: {', '.join(installed)}")
        speak = None
        if speech_wanted:
            speak = base_language(voice) if voice else wanted[0]
            if speak not in wanted or speak not in self.synthesizer.voices:
                raise LanguageError(
                    f"no voice {voice!r} for the requested targets; voices: {', '.join(sorted(self.synthesizer.voices))}")
        return LanguageRequest(source, wanted, speak)

    def translate(self, text: str, request: LanguageRequest) -> dict[str, str]:
        """``text`` in every target of ``request``."""
        source = base_language(request.source)
        return {t: self.translator.translate(text, source, t) for t in request.targets}

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
