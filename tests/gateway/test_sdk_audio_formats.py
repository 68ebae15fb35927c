"""Telephone audio through the official Python SDK (issue 22): 8 kHz PCM and 8 kHz µ-law push streams
are recognized about as well as the 16 kHz original, over several sentences; A-law shares the path
(tests/gateway/test_audio_formats.py checks its table)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import soxr

from gateway.audio_formats import _alaw_table, _mulaw_table
from tests.support.data import shared_data_dir
from tests.support.speech import english_samples, word_errors

speechsdk = pytest.importorskip("azure.cognitiveservices.speech")
# espeak-ng's voice (when the shared recordings are absent) loses more in the telephone band
WER_MARGIN = 0.1 if shared_data_dir() else 0.2


@pytest.fixture(scope="module")
def sentences():
    samples = english_samples(shared_data_dir(), limit=4)
    gap = np.zeros(16000, dtype=np.int16)
    return [reference for reference, _ in samples], np.concatenate([gap] + [x for _, pcm in samples for x in (pcm, gap)])


def g711_encode(pcm: np.ndarray, table: np.ndarray) -> bytes:
    """Each sample as the code whose level is nearest: what a G.711 encoder does."""
    order = np.argsort(table)
    levels = table[order].astype(np.int32)
    index = np.clip(np.searchsorted(levels, pcm.astype(np.int32)), 1, len(levels) - 1)
    nearer_below = (pcm - levels[index - 1]) < (levels[index] - pcm)
    return order[np.where(nearer_below, index - 1, index)].astype(np.uint8).tobytes()


def as_sent(pcm16k: np.ndarray, kind: str):
    """(the SDK's stream format, the bytes an app would push) for ``kind``."""
    if kind == "pcm16k":
        return speechsdk.audio.AudioStreamFormat(samples_per_second=16000), pcm16k.tobytes()
    narrow = soxr.resample(pcm16k, 16000, 8000).astype(np.int16)
    if kind == "pcm8k":
        return speechsdk.audio.AudioStreamFormat(samples_per_second=8000, bits_per_sample=16, channels=1), narrow.tobytes()
    table, tag = ((_mulaw_table(), speechsdk.audio.AudioStreamWaveFormat.MULAW) if kind == "mulaw" else
                  (_alaw_table(), speechsdk.audio.AudioStreamWaveFormat.ALAW))
    return (speechsdk.audio.AudioStreamFormat(samples_per_second=8000, bits_per_sample=8, channels=1,
                                              wave_stream_format=tag), g711_encode(narrow, table))


def recognized_text(gateway, kind: str, pcm16k: np.ndarray) -> str:
    stream_format, data = as_sent(pcm16k, kind)
    stream = speechsdk.audio.PushAudioInputStream(stream_format=stream_format)
    stream.write(data)
    stream.close()
    config = speechsdk.SpeechConfig(host=gateway.base_url)
    config.speech_recognition_language = "en-US"
    recognizer = speechsdk.SpeechRecognizer(speech_config=config, audio_config=speechsdk.audio.AudioConfig(stream=stream))
    finals, stopped = [], threading.Event()
    recognizer.recognized.connect(lambda e: finals.append(e.result.text))
    recognizer.session_stopped.connect(lambda e: stopped.set())
    recognizer.canceled.connect(lambda e: stopped.set())
    recognizer.start_continuous_recognition()
    assert stopped.wait(120)
    recognizer.stop_continuous_recognition()
    return " ".join(finals)


def test_telephone_formats_are_recognized_within_margin_of_16_khz(gateway, sentences):
    references, pcm = sentences
    reference = " ".join(references)
    rates = {}
    for kind in ("pcm16k", "pcm8k", "mulaw"):
        errors, words = word_errors(reference, recognized_text(gateway, kind, pcm))
        rates[kind] = errors / words
    print("WER by format:", rates)
    assert rates["pcm16k"] <= 0.5, rates
    for kind in ("pcm8k", "mulaw"):
        assert rates[kind] <= rates["pcm16k"] + WER_MARGIN, rates
