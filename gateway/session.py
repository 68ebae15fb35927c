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
from gateway.engines.registry import Engines, LanguageRequest
from gateway.phrases import PhraseDetector, PhraseFinal, PhrasePartial, PhraseStarted

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


class TranslationSession:
    def __init__(self, engines: Engines, request: LanguageRequest, partials: bool, executor: Executor,
                 profanity_mode: str = profanity.RAW):
        self.engines = engines
        self.request = request
        self.partials = partials
        self.profanity_mode = profanity_mode
        self._executor = executor
        self._detector = PhraseDetector(lambda: engines.recognizer.open_stream(request.source),
                                        engines.config.recognition)

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def feed(self, pcm: bytes) -> list[PhraseStarted | Result]:
        return await self._results(await self._run(self._detector.feed, pcm))

    async def flush(self) -> list[PhraseStarted | Result]:
        return await self._results(await self._run(self._detector.flush))

    async def speak(self, result: Result) -> bytes | None:
        """The synthesized translation of a final, or None when speech was not asked for or failed."""
        language = self.request.speak
        text = result.translations.get(language, "") if language else ""
        if not text:
            return None
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
            elif isinstance(event, PhrasePartial) and self.partials:
                translations, _ = await self._translate(event.text)
                out.append(Result(False, event.phrase, self._clean(event.text), self._clean_all(translations),
                                  event.start_sample, event.end_sample))
            elif isinstance(event, PhraseFinal):
                translations, error = await self._translate(event.text)
                out.append(Result(True, event.phrase, self._clean(event.text), self._clean_all(translations),
                                  event.start_sample, event.end_sample, error))
        return out

    def _clean(self, text: str) -> str:
        """Profanity applied after translation, so the translator sees what was said."""
        return profanity.apply(text, self.profanity_mode)

    def _clean_all(self, translations: dict[str, str]) -> dict[str, str]:
        return {language: self._clean(text) for language, text in translations.items()}

    async def _translate(self, text: str) -> tuple[dict[str, str], str | None]:
        if not text:
            return {t: "" for t in self.request.targets}, None
        try:
            pairs = await self._run(self.engines.translate, text, self.request)
            return pairs, None
        except Exception as exc:
            log.warning("translation failed: %s", exc)
            return {}, str(exc)
