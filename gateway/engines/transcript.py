"""A final's text with what the detailed output adds: word timings and a confidence.

Plain values (they cross the worker pipe). Times are seconds from the start of the phrase's audio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Word:
    text: str
    start_s: float
    end_s: float
    probability: float


@dataclass(frozen=True)
class Transcript:
    text: str
    confidence: float | None = None  # geometric mean of the kept tokens' probabilities, 0..1
    words: tuple[Word, ...] = ()


def confidence_of(segments) -> float | None:
    """exp of the token-weighted mean of the segments' ``avg_logprob``: the geometric mean of the
    probabilities Whisper gave the tokens it chose (1.0: every token certain)."""
    weighted = [(s.avg_logprob, max(1, len(s.tokens))) for s in segments]
    tokens = sum(n for _, n in weighted)
    if not tokens:
        return None
    return round(min(1.0, math.exp(sum(lp * n for lp, n in weighted) / tokens)), 4)
