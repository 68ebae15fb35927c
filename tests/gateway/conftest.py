"""Audio the gateway's SDK tests share."""

from __future__ import annotations


import numpy as np
import pytest

from tests.support.data import shared_data_dir
from tests.support.speech import english_samples
from tests.support.wavfiles import write_wav


@pytest.fixture(scope="session")
def wav_file(tmp_path_factory):
    """``wav_file(name, pcm)``: a WAV file of ``pcm`` in a temporary folder."""
    folder = tmp_path_factory.mktemp("wav")
    return lambda name, pcm: write_wav(folder / name, pcm)  # 16 kHz mono, the plain 44-byte header the SDKs read


@pytest.fixture(scope="session")
def two_utterance_wav(wav_file):
    """Two real utterances with a second of silence around each, and their reference texts."""
    samples = english_samples(shared_data_dir(), limit=2)
    gap = np.zeros(16000, dtype=np.int16)
    pcm = np.concatenate([gap] + [x for _, pcm in samples for x in (pcm, gap)])
    return wav_file("two.wav", pcm), [reference for reference, _ in samples]
