"""Language identification among a client's candidate languages, one phrase at a time.

Azure's speech translation can be told "it is one of these languages" (``languageId.languages``)
and answers with the language it heard (``PrimaryLanguage``). Here Whisper's multilingual model
judges each phrase: early, on its first second, so partials come in the right language; and again
on the whole phrase for the final, which is recognized (and translated) in the language of that
second verdict.

A client may also name the language it expects (Parley's ``languageId.expectedLanguage``: the
agent's seat for the talker's direction). Short phrases are where the detector is least sure
("Sí." comes out English), and where a seat is most often right, so the expected language stands
unless the detector is sure of another (``override_probability``) over enough audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from gateway.engines.transcript import Transcript

MIN_DETECT_AUDIO_S = 1.0  # the first verdict waits for this much of the phrase
BYTES_PER_S = 32000  # 16 kHz 16-bit mono, the recognizers' input


@dataclass(frozen=True)
class LanguageRule:
    """When identification overrules an expected language. Whisper base on phrases under ~2.5 s of
    audio (pre-roll and endpointing silence included) is often sure and wrong: espeak-ng's
    "Sí, claro." comes out English at 0.94-0.97, "Yes, okay." Spanish at 0.7 (bench/e2e.py --conversation)."""

    override_probability: float = 0.97
    min_override_audio_s: float = 2.5


@dataclass(frozen=True)
class LanguageChoice:
    language: str  # a candidate, as the client wrote it (es-ES)
    probability: float

    @property
    def confidence(self) -> str:
        """The service's words for it."""
        return "High" if self.probability >= 0.9 else "Normal" if self.probability >= 0.6 else "Low"


def choose_language(probabilities: dict[str, float], expected: str | None, audio_s: float,
                    rule: LanguageRule = LanguageRule()) -> LanguageChoice:
    """The most probable candidate; with an expected one, that one unless another is sure enough."""
    best = max(probabilities, key=probabilities.__getitem__)
    if expected is None or expected not in probabilities or best == expected:
        return LanguageChoice(best, probabilities[best])
    if probabilities[best] >= rule.override_probability and audio_s >= rule.min_override_audio_s:
        return LanguageChoice(best, probabilities[best])
    return LanguageChoice(expected, probabilities[expected])


class RecognizerStream(Protocol):
    """What a phrase is recognized through: a plain engine's stream or a :class:`LanguageIdStream`."""

    @property
    def identified(self) -> LanguageChoice | None: ...

    @property
    def details(self) -> Transcript | None: ...

    def feed(self, pcm: bytes) -> None: ...

    def hypothesis(self) -> str | None: ...

    def finish(self) -> str: ...

    def close(self) -> None: ...


class LanguageIdStream:
    """A recognizer stream for a phrase in one of ``candidates``: the same face as a plain one
    (``feed``, ``hypothesis``, ``finish``, ``close``), plus ``identified`` once it is known.

    ``detect(pcm, wait)`` gives candidate -> probability (None: busy, try later); ``open_stream(code)``
    a plain stream in that language. The audio is kept so a late change of mind re-recognizes it.
    """

    def __init__(self, detect: Callable[[bytes, bool], dict[str, float] | None],
                 open_stream: Callable[[str], RecognizerStream],
                 expected: str | None, rule: LanguageRule, close_detector: Callable[[], None]):
        self._detect = detect
        self._open_stream = open_stream
        self._expected = expected
        self._rule = rule
        self._close_detector = close_detector
        self._pcm = bytearray()
        self._inner: RecognizerStream | None = None
        self.identified: LanguageChoice | None = None

    @property
    def details(self) -> Transcript | None:
        return self._inner.details if self._inner is not None else None

    def feed(self, pcm: bytes) -> None:
        self._pcm += pcm
        if self._inner is not None:
            self._inner.feed(pcm)

    def hypothesis(self) -> str | None:
        if self._inner is None:
            if len(self._pcm) < MIN_DETECT_AUDIO_S * BYTES_PER_S:
                return None
            if not self._identify(wait=False):
                return None  # the worker is busy: a partial is skippable, so is its verdict
        return self._stream().hypothesis()

    def finish(self) -> str:
        if self._pcm:
            self._identify(wait=True)
        if self._inner is None:
            return ""
        return self._inner.finish()

    def close(self) -> None:
        if self._inner is not None:
            self._inner.close()
            self._inner = None
        self._close_detector()

    def _identify(self, wait: bool) -> bool:
        probabilities = self._detect(bytes(self._pcm), wait)
        if probabilities is None:
            return False
        choice = choose_language(probabilities, self._expected, len(self._pcm) / BYTES_PER_S, self._rule)
        if self._inner is not None and self.identified is not None and choice.language != self.identified.language:
            self._inner.close()  # partials went out in the other language; the final is heard afresh
            self._inner = None
        self.identified = choice
        if self._inner is None:
            self._inner = self._open_stream(choice.language)
            self._inner.feed(bytes(self._pcm))
        return True

    def _stream(self) -> RecognizerStream:
        """The inner stream, once :meth:`_identify` has succeeded (it opens one whenever it does)."""
        if self._inner is None:
            raise RuntimeError("no language identified yet")
        return self._inner
