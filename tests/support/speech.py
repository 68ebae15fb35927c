"""English test speech: the shared CMU ARCTIC recordings when present, else espeak-ng sentences."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from agent.audio.synth import speak
from parley_common.wer import normalise, word_errors  # noqa: F401 (the tests' and benches' import)

SYNTH_SENTENCES = ("Please open the door for our guests.", "Where is the train station?", "Good morning everyone.")


# pocketsphinx's US-English model was trained on human speech: on the CMU ARCTIC recordings its word
# error rate is ~0.4, on espeak-ng's voice, decoded live, 0.5-0.9.
WER_BOUND_RECORDED = 0.5
WER_BOUND_SYNTHETIC = 0.9


def wer_bound(shared_data: Path | None) -> float:
    recorded = shared_data is not None and (shared_data / "speech" / "transcripts.tsv").is_file()
    return WER_BOUND_RECORDED if recorded else WER_BOUND_SYNTHETIC


def english_samples(shared_data: Path | None, limit: int = 3) -> list[tuple[str, np.ndarray]]:
    """(reference text, int16 16 kHz mono) pairs."""
    samples = []
    table = shared_data / "speech" / "transcripts.tsv" if shared_data else None
    if table and table.is_file():
        for line in table.read_text().splitlines()[1:]:
            name, text = line.split("\t")[:2]
            with wave.open(str(table.parent / name)) as wav:
                samples.append((text, np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").copy()))
    if not samples:
        samples = [(s, speak(s)) for s in SYNTH_SENTENCES]
    return samples[:limit]
