"""The engines a gateway runs with, and what they make available (languages, voices)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import GatewayConfig
from gateway.engines.apertium_mt import ApertiumTranslator
from gateway.engines.espeak_tts import EspeakSynthesizer
from gateway.engines.pocketsphinx_asr import PocketsphinxRecognizer

LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "ca": "Catalan", "fr": "French", "de": "German",
                  "it": "Italian", "pt": "Portuguese", "gl": "Galician", "eo": "Esperanto", "oc": "Occitan",
                  "eu": "Basque", "nl": "Dutch"}


def base_language(code: str) -> str:
    """``es-ES`` -> ``es``; ``zh-Hans`` -> ``zh``."""
    return code.replace("_", "-").split("-")[0].lower()


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
        self.recognizer = PocketsphinxRecognizer(config.recognition.processes)
        self.translator = ApertiumTranslator()
        self.synthesizer = EspeakSynthesizer(
            {lang: voice for lang, voice in config.voices.items() if lang in self.translator.targets})

    def resolve(self, source: str, targets: list[str], voice: str | None, speech_wanted: bool) -> LanguageRequest:
        if base_language(source) != base_language(self.config.source_language):
            raise LanguageError(
                f"unsupported source language {source!r}; installed: {self.config.source_language}")
        wanted = tuple(dict.fromkeys(base_language(t) for t in targets if t))
        if not wanted:
            raise LanguageError(f"no target language given; installed: {', '.join(self.translator.targets)}")
        missing = [t for t in wanted if t not in self.translator.targets]
        if missing:
            raise LanguageError(
                f"unsupported target language(s) {', '.join(missing)}; installed: {', '.join(self.translator.targets)}")
        speak = None
        if speech_wanted:
            speak = base_language(voice) if voice else wanted[0]
            if speak not in wanted or speak not in self.synthesizer.voices:
                raise LanguageError(
                    f"no voice {voice!r} for the requested targets; voices: {', '.join(sorted(self.synthesizer.voices))}")
        return LanguageRequest(source, wanted, speak)

    def languages_document(self, scopes: list[str]) -> dict:
        """The Translator Languages API answer for what is installed."""
        doc: dict = {}
        if "speech" in scopes:
            src = self.config.source_language
            doc["speech"] = {src: {"name": LANGUAGE_NAMES.get(base_language(src), src), "language": base_language(src)}}
        if "text" in scopes:
            doc["text"] = {t: {"name": LANGUAGE_NAMES.get(t, t), "dir": "ltr"} for t in self.translator.targets}
        if "tts" in scopes:
            doc["tts"] = {
                f"{lang}-espeak": {"displayName": f"espeak-ng {voice}", "gender": "male", "locale": lang,
                                   "language": lang, "languageName": LANGUAGE_NAMES.get(lang, lang), "regionName": ""}
                for lang, voice in sorted(self.synthesizer.voices.items())}
        return doc

    def close(self) -> None:
        self.translator.close()
        self.recognizer.close()
