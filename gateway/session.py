"""What every protocol session does with audio, independent of the wire format.

PCM -> phrase detection and recognition -> translation of partials and finals -> synthesis of
finals. Engine calls run on the shared worker pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from dataclasses import dataclass, field

from gateway import profanity
from gateway.engines.language_id import LanguageChoice
from gateway.engines.registry import Engines, LanguageRequest
from gateway.engines.transcript import Transcript
from gateway.phrases import PhraseDetector, PhraseFinal, PhrasePartial, PhraseStarted
from gateway.turn_options import PhraseTuning

log = logging.getLogger("parley.gateway.session")


@dataclass(frozen=True)
class Result:
    """A partial or final recognition with its translations; samples count from the stream start."""

    final: bool
    phrase: int
    text: str
    translations: dict[str, str] = field(default_factory=dict)
    start_sample: int = 0
    end_sample: int = 0
    translation_error: str | None = None
    language: LanguageChoice | None = None  # identified among the request's candidates; None: its source
    details: Transcript | None = None  # a final's confidence and word timings, where the engine gives them

    def source(self, request: LanguageRequest) -> str:
        return self.language.language if self.language else request.source


class TranslationSession:
    def __init__(self, engines: Engines, request: LanguageRequest, partials: bool, executor: Executor,
                 profanity_mode: str = profanity.RAW, tuning: PhraseTuning = PhraseTuning()):
        self.engines = engines
        self.request = request
        self.partials = partials
        self.profanity_mode = profanity_mode
        self.tuning = tuning
        self._executor = executor
        recognizer, hints = engines.recognizer, (tuning.phrases, tuning.word_timings)
        if request.candidates and tuning.language is None:
            def open_stream():
                return recognizer.open_identifying_stream(request.candidates, request.expected, *hints)
        else:
            source = tuning.language.language if tuning.language else request.source

            def open_stream():
                return recognizer.open_stream(source, *hints)
        self._detector = PhraseDetector(open_stream, engines.config.recognition,
                                        endpoint_silence_ms=tuning.endpoint_silence_ms)

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def feed(self, pcm: bytes) -> list[PhraseStarted | Result]:
        return await self._results(await self._run(self._detector.feed, pcm))

    async def flush(self) -> list[PhraseStarted | Result]:
        return await self._results(await self._run(self._detector.flush))

    async def speak(self, result: Result) -> list[tuple[str, bytes | None]]:
        """The synthesized translations of a final, per language (None where synthesis failed)."""
        spoken = []
        for language in self.request.spoken_for(result.source(self.request)):
            text = result.translations.get(language, "")
            if text:
                spoken.append((language, await self._synthesize(text, language)))
        return spoken

    async def _synthesize(self, text: str, language: str) -> bytes | None:
        try:
            return await self._run(self.engines.synthesizer.synthesize, text, language)
        except Exception as exc:  # an engine failure costs this audio, never the session
            log.warning("synthesis failed: %s", exc)
            return None

    async def close(self) -> None:
        """Off the event loop: closing an open phrase waits for its recognizer worker, which may be busy
        with another session's audio for seconds, and the loop must keep answering everyone (pings too)."""
        try:
            await self._run(self._detector.close)
        except RuntimeError:  # the executor is shut down: the gateway is stopping, nothing else waits on the loop
            self._detector.close()

    async def _results(self, events) -> list[PhraseStarted | Result]:
        out: list[PhraseStarted | Result] = []
        for event in events:
            if isinstance(event, PhraseStarted):
                out.append(event)
            elif isinstance(event, PhraseFinal) or (isinstance(event, PhrasePartial) and self.partials):
                final = isinstance(event, PhraseFinal)
                language = event.language or self.tuning.language
                source = language.language if language else self.request.source
                translations, error = await self._translate(event.text, source)
                translations = await self._run(self._clean_all, translations)
                out.append(Result(final, event.phrase, self._clean(event.text), translations,
                                  event.start_sample, event.end_sample, error if final else None, language,
                                  event.details if isinstance(event, PhraseFinal) else None))
        return out

    def _clean(self, text: str) -> str:
        """Profanity applied after translation, so the translator sees what was said."""
        return profanity.apply(text, self.profanity_mode)

    def _clean_all(self, translations: dict[str, str]) -> dict[str, str]:
        """Each translation against the list in its own language (see gateway.profanity)."""
        if self.profanity_mode == profanity.RAW:
            return translations
        return {language: profanity.apply(text, self.profanity_mode, self.engines.profanity_words(language))
                for language, text in translations.items()}

    async def _translate(self, text: str, source: str) -> tuple[dict[str, str], str | None]:
        if not text:
            return {t: "" for t in self.request.targets}, None
        try:
            return await self._run(self.engines.translate, text, source, self.request.targets), None
        except Exception as exc:
            log.warning("translation failed: %s", exc)
            return {}, str(exc)
