"""Which recognizer hears which source language, as ``recognition.languages`` says.

Whisper languages share one pool of worker processes (each loads the models it is asked for), so
``recognition.processes`` stays one per core however many languages are configured.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from gateway.config import RecognitionConfig
from gateway.engines.language_id import LanguageIdStream, LanguageRule
from gateway.engines.pocketsphinx_asr import PocketsphinxRecognizer
from gateway.engines.whisper_asr import DecodeOptions, WhisperRecognizer
from gateway.engines.whisper_models import resolve_model
from gateway.engines.workers import WorkerLoad
from parley_common.languages import base_language


class Recognizers:
    def __init__(self, config: RecognitionConfig):
        cache_dir = Path(config.model_cache_dir).expanduser() if config.model_cache_dir else None
        self.languages = {base_language(code): code for code in config.languages}
        self._whisper_options: dict[str, DecodeOptions] = {}
        for code, chosen in config.languages.items():
            if chosen.engine == "whisper":
                self._whisper_options[base_language(code)] = DecodeOptions(
                    str(resolve_model(chosen.model, cache_dir)), base_language(code), chosen.beam_size,
                    chosen.no_speech_threshold, chosen.log_prob_threshold, chosen.compression_ratio_threshold)
        wants_pocketsphinx = any(chosen.engine == "pocketsphinx" for chosen in config.languages.values())
        self.whisper = WhisperRecognizer(config.processes) if self._whisper_options else None
        self._language_id_model = str(resolve_model(config.language_id_model, cache_dir)) if self.whisper else None
        self._language_rule = LanguageRule(config.language_override_probability)
        self.pocketsphinx = PocketsphinxRecognizer(config.processes) if wants_pocketsphinx else None

    def open_stream(self, source: str, phrases: tuple[str, ...] = (), word_timings: bool = False):
        """A stream for one phrase in ``source`` (a configured language, any region). Whisper takes a
        phrase list as ``hotwords`` (its prompt) and gives word timings; pocketsphinx neither."""
        options = self._whisper_options.get(base_language(source))
        if not options:
            # a configured language (the registry checks each source) that is not Whisper's is pocketsphinx's
            assert self.pocketsphinx is not None, f"{source} is not a configured language"
            return self.pocketsphinx.open_stream()
        if phrases or word_timings:
            options = replace(options, hotwords=", ".join(phrases) or None, word_timestamps=word_timings)
        assert self.whisper is not None  # there are Whisper options only when it was configured
        return self.whisper.open_stream(options)

    def open_identifying_stream(self, candidates: tuple[str, ...], expected: str | None,
                                phrases: tuple[str, ...] = (), word_timings: bool = False) -> LanguageIdStream:
        """A stream for one phrase in whichever of ``candidates`` (configured languages) it turns out to be;
        only when ``identifies`` (the request was refused otherwise)."""
        by_base = {base_language(code): code for code in candidates}
        # the registry refuses identification unless ``identifies``; the model is resolved with Whisper
        assert self.whisper is not None and self._language_id_model is not None
        detector = self.whisper.open_detector(self._language_id_model, tuple(by_base))

        def detect(pcm: bytes, wait: bool) -> dict[str, float] | None:
            found = detector.probabilities(pcm, wait)
            return None if found is None else {by_base[base]: p for base, p in found.items()}

        def open_stream(language: str):
            return self.open_stream(language, phrases, word_timings)

        return LanguageIdStream(detect, open_stream, expected, self._language_rule, detector.close)

    @property
    def identifies(self) -> bool:
        """Language identification needs Whisper's workers (a multilingual model)."""
        return self.whisper is not None

    @property
    def worker_pids(self) -> list[int]:
        return [pid for engine in (self.whisper, self.pocketsphinx) if engine for pid in engine.worker_pids]

    @property
    def load(self) -> WorkerLoad:
        return sum((engine.load for engine in (self.whisper, self.pocketsphinx) if engine), WorkerLoad())

    def warm_up(self) -> None:
        """Load every model in every worker before the first session."""
        if self.whisper:
            self.whisper.warm_up(sorted({o.model_path for o in self._whisper_options.values()}))
        if self.pocketsphinx:
            self.pocketsphinx.warm_up(2)

    def close(self) -> None:
        for engine in (self.whisper, self.pocketsphinx):
            if engine:
                engine.close()
