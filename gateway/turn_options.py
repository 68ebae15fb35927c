"""What a Speech SDK client tunes per turn: silence timeouts, word timings, a phrase list, how often
the language is identified. The same settings reach us two ways: the v1 paths' query
(``initialSilenceTimeoutMs``, ``endSilenceTimeoutMs``, ``wordLevelTimestamps``, …) and ``speech.context``
(``phraseDetection.initialSilenceTimeout``, ``trailingSilenceTimeout``, ``<MODE>.segmentation``,
``phraseOutput.detailed.options``, ``dgi``, ``languageId.mode``); the context wins, as it is per turn.

Where the service's documentation is silent we chose (docs/gateway-sdk.md):

* the initial-silence timeout ends a turn that ends after one phrase (``INTERACTIVE``, or a turn whose
  mode the client did not name) with ``InitialSilenceTimeout`` after 5 s of audio without speech, the
  service's single-shot default; a turn the client named continuous waits for speech however long;
* end silence (``trailingSilenceTimeout``) is the silence that ends the one phrase of a single-shot
  turn; segmentation silence the silence that ends each phrase of a continuous one; both default to
  the gateway's ``recognition.endpoint_silence_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.engines.language_id import LanguageChoice
from parley_common.protocols.usp_messages import SpeechContext

DEFAULT_INITIAL_SILENCE_MS = 5000  # the service's single-shot default (its NoMatch Offset is 5 s)
SEGMENTATION_RANGE_MS = (100, 5000)  # what the service accepts for Speech_SegmentationSilenceTimeoutMs
MAX_SILENCE_MS = 3_600_000


class TurnOptionError(ValueError):
    """A timeout the service would refuse too; the message names the allowed range."""


@dataclass(frozen=True)
class PhraseTuning:
    """What one turn asks of phrase detection and recognition (defaults: the gateway's own)."""

    endpoint_silence_ms: int | None = None  # silence that ends a phrase; None: recognition.endpoint_silence_ms
    phrases: tuple[str, ...] = ()  # a phrase list biasing recognition towards these words
    word_timings: bool = False  # NBest Words with offsets and durations
    language: LanguageChoice | None = None  # identified at the start of the connection: no identification


@dataclass(frozen=True)
class TurnOptions:
    initial_silence_ms: int | None = None
    end_silence_ms: int | None = None
    segmentation_silence_ms: int | None = None
    word_timings: bool = False
    phrases: tuple[str, ...] = ()
    identify_once: bool = False

    @classmethod
    def from_query(cls, query: dict[str, list[str]]) -> "TurnOptions":
        """The v1 paths' query; raises TurnOptionError for a value that is not a number of milliseconds."""
        lower = {key.lower(): values[0] for key, values in query.items() if values}
        return cls(_ms(lower, "initialsilencetimeoutms"), _ms(lower, "endsilencetimeoutms"),
                   _segmentation(_ms(lower, "segmentationsilencetimeoutms")),
                   lower.get("wordleveltimestamps", "").lower() == "true")

    def with_context(self, context: SpeechContext) -> "TurnOptions":
        return TurnOptions(
            _first(context.initial_silence_ms, self.initial_silence_ms), _first(context.end_silence_ms, self.end_silence_ms),
            _segmentation(_first(context.segmentation_silence_ms, self.segmentation_silence_ms)),
            context.word_timings or self.word_timings, context.phrases or self.phrases, context.identify_once)

    def initial_silence_samples(self, single_shot: bool, rate_hz: int) -> int | None:
        """Audio without speech after which a turn ends with InitialSilenceTimeout; None: never."""
        ms = self.initial_silence_ms if self.initial_silence_ms is not None else DEFAULT_INITIAL_SILENCE_MS
        if not single_shot or ms <= 0:
            return None
        return ms * rate_hz // 1000

    def tuning(self, single_shot: bool, language: LanguageChoice | None) -> PhraseTuning:
        silence = self.end_silence_ms if single_shot and self.end_silence_ms else self.segmentation_silence_ms
        if silence is not None:
            silence = max(SEGMENTATION_RANGE_MS[0], silence)
        return PhraseTuning(silence, self.phrases, self.word_timings, language)


def _first(*values):
    return next((v for v in values if v is not None), None)


def _ms(query: dict[str, str], name: str) -> int | None:
    value = query.get(name)
    if value is None:
        return None
    if not value.strip().isdigit() or int(value) > MAX_SILENCE_MS:
        raise TurnOptionError(f"{name} {value!r} is not a number of milliseconds (0 to {MAX_SILENCE_MS})")
    return int(value)


def _segmentation(ms: int | None) -> int | None:
    low, high = SEGMENTATION_RANGE_MS
    if ms is not None and not low <= ms <= high:
        raise TurnOptionError(f"segmentation silence timeout {ms} ms is out of range; use {low} to {high} ms")
    return ms
