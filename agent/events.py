"""Typed events that cross stage boundaries: segmenter -> uplink and uplink -> outputs.

Every event is an immutable value, so it can be put on a queue and read by another thread
without locking.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# front end -> uplink: the segmenter's events live beside it in parley_common (the gateway uses them too)
from parley_common.vad.events import SegmentEvent, SpeechChunk, SpeechEnded, SpeechStarted  # noqa: F401


# --- uplink -> outputs ---------------------------------------------------------------------

@dataclass(frozen=True)
class PartialResult:
    """Interim recognition (and translation) while the talker is still speaking."""

    utterance_id: int
    source_text: str
    translations: dict[str, str] = field(default_factory=dict)
    party: str | None = None  # who spoke (a conversation's party name); None: no parties configured
    language: str | None = None  # the language it was recognized in (the connection's, e.g. es-ES)
    session: str | None = None  # the agent run the utterance was spoken in (SpeechStarted.session)


@dataclass(frozen=True)
class FinalResult:
    """The recognition and every requested translation of one utterance."""

    utterance_id: int
    source_text: str
    translations: dict[str, str] = field(default_factory=dict)
    azimuth_deg: float | None = None
    start_sample: int | None = None
    duration_ms: float | None = None
    party: str | None = None
    language: str | None = None
    session: str | None = None  # with utterance_id: the utterance's identity across restarts
    started_at_s: float | None = None  # wall clock (Unix seconds) when it was spoken


@dataclass(frozen=True)
class SynthesizedSpeech:
    """TTS of one translation, as a complete WAV file (RIFF header + PCM).

    ``spoken_end_monotonic_s``: when the talker stopped, which is what its age counts from (None:
    spoken before a restart)."""

    utterance_id: int
    language: str
    wav_bytes: bytes
    received_monotonic_s: float
    spoken_end_monotonic_s: float | None


@dataclass(frozen=True)
class LinkStatus:
    """The uplink connection changed state (for LEDs, logs and the watchdog status line)."""

    connected: bool
    detail: str


@dataclass(frozen=True)
class UplinkError:
    """Something went wrong that a person should know about (auth refused, protocol error)."""

    message: str
    fatal: bool = False


ResultEvent = PartialResult | FinalResult | SynthesizedSpeech | LinkStatus | UplinkError
