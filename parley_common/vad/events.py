"""What the segmenter emits: the agent's front end sends them up the uplink, the gateway's
endpointing turns them into phrases. Immutable values, safe to pass between threads."""

from __future__ import annotations

from dataclasses import dataclass

from parley_common.frames import Frame


@dataclass(frozen=True)
class SpeechStarted:
    """A new utterance began; ``start_sample`` includes the pre-roll.

    ``start_sample`` and ``utterance_id`` restart with the process; the agent stamps ``session`` (its
    run) and ``started_at_s`` (wall clock, Unix seconds) so an utterance stays distinct and ordered
    across restarts, even when it is replayed from the spool by a later run (agent/session.py)."""

    utterance_id: int
    start_sample: int
    azimuth_deg: float | None
    doa_confidence: float
    session: str | None = None
    started_at_s: float | None = None


@dataclass(frozen=True)
class SpeechChunk:
    """Beamformed mono audio of the open utterance (pre-roll first, then live frames)."""

    utterance_id: int
    frame: Frame


@dataclass(frozen=True)
class SpeechEnded:
    """The utterance closed: by hangover silence, by the maximum length (``forced``) or by muting.

    The direction here is the estimate after the whole utterance; the one in ``SpeechStarted`` was
    made from its first few hundred milliseconds and can be off by tens of degrees."""

    utterance_id: int
    end_sample: int
    duration_ms: float
    reason: str  # "silence" | "max_length" | "muted" | "shutdown"
    azimuth_deg: float | None = None
    doa_confidence: float = 0.0


SegmentEvent = SpeechStarted | SpeechChunk | SpeechEnded
