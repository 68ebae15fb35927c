"""Audio the gateway's SDK tests share."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from tests.support.data import shared_data_dir
from tests.support.speech import english_samples


def write_wav_file(path: Path, pcm: np.ndarray) -> Path:
    """16 kHz mono 16-bit WAV with the plain 44-byte header the SDK clients read."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(pcm.astype("<i2").tobytes())
    return path


@pytest.fixture(scope="session")
def wav_file(tmp_path_factory):
    """``wav_file(name, pcm)``: a WAV file of ``pcm`` in a temporary folder."""
    folder = tmp_path_factory.mktemp("wav")
    return lambda name, pcm: write_wav_file(folder / name, pcm)


@pytest.fixture(scope="session")
def two_utterance_wav(wav_file):
    """Two real utterances with a second of silence around each, and their reference texts."""
    samples = english_samples(shared_data_dir(), limit=2)
    gap = np.zeros(16000, dtype=np.int16)
    pcm = np.concatenate([gap] + [x for _, pcm in samples for x in (pcm, gap)])
    return wav_file("two.wav", pcm), [reference for reference, _ in samples]
