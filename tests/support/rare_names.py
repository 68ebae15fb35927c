"""Sentences with rare names, for phrase-list measurements: espeak-ng's (the same on any CPU) and the
shared ARCTIC recordings that carry names, with the names a phrase list would give."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agent.audio.synth import speak
from tests.support.speech import english_samples

SYNTHETIC = (
    ("Please ask Siobhan to call Nakagawa tomorrow.", ("Siobhan", "Nakagawa")),
    ("The meeting with Xiomara Quintanilla starts at noon.", ("Xiomara", "Quintanilla")),
    ("Doctor Okonkwo will present the Szczepanski report.", ("Okonkwo", "Szczepanski")),
    ("We flew from Reykjavik to Thessaloniki last week.", ("Reykjavik", "Thessaloniki")),
)
RECORDED_NAMES = {"not at this particular case tom apologized whittemore": ("Whittemore",),
                  "author of the danger trail philip steels etc": ("Philip Steels",)}


def name_sentences(shared_data: Path | None) -> list[tuple[str, tuple[str, ...], np.ndarray]]:
    """(reference text, names, int16 16 kHz speech) for every sentence available."""
    cases = [(text, names, speak(text)) for text, names in SYNTHETIC]
    recorded = dict(english_samples(shared_data, limit=7)) if shared_data else {}
    cases += [(text, RECORDED_NAMES[text], pcm) for text, pcm in recorded.items() if text in RECORDED_NAMES]
    return cases


def names_heard(names: tuple[str, ...], text: str) -> int:
    return sum(name.lower() in text.lower() for name in names)
