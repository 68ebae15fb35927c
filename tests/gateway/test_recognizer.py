"""The recognizer's worker processes: streams spread over them, and a dead worker costs one phrase."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from gateway.engines.pocketsphinx_asr import PocketsphinxRecognizer, RecognizerError
from tests.support.data import shared_data_dir
from tests.support.speech import english_samples, wer_bound, word_errors

pytestmark = pytest.mark.slow  # real recognizer worker processes


def recognise(stream, pcm) -> str:
    for i in range(0, len(pcm), 3200):
        stream.feed(pcm[i:i + 3200].tobytes())
    return stream.finish()


@pytest.fixture
def recognizer():
    rec = PocketsphinxRecognizer(processes=2)
    yield rec
    rec.close()


def test_concurrent_streams_decode_in_different_processes(recognizer):
    first, second = recognizer.open_stream(), recognizer.open_stream()
    assert first.worker_pid != second.worker_pid
    assert os.getpid() not in (first.worker_pid, second.worker_pid)
    text, pcm = english_samples(shared_data_dir(), limit=1)[0]
    for stream in (first, second):
        errors, words = word_errors(text, recognise(stream, pcm))
        assert errors / words <= wer_bound(shared_data_dir())
        stream.close()


def test_a_killed_worker_fails_its_stream_and_is_replaced(recognizer):
    doomed = recognizer.open_stream()
    os.kill(doomed.worker_pid, signal.SIGKILL)
    with pytest.raises(RecognizerError):
        doomed.feed(b"\0" * 3200)
    doomed.close()
    text, pcm = english_samples(shared_data_dir(), limit=1)[0]
    streams = [recognizer.open_stream(), recognizer.open_stream()]
    for stream in streams:
        errors, words = word_errors(text, recognise(stream, pcm))
        assert errors / words <= wer_bound(shared_data_dir())
        stream.close()


def test_a_reused_decoder_after_a_noise_session_hears_the_same_words():
    """Pooled decoders adapt their cepstral mean to what they heard; a new session must not inherit it."""
    recognizer = PocketsphinxRecognizer(processes=1)
    try:
        recognizer.warm_up(1)
        _, pcm = english_samples(shared_data_dir(), limit=2)[1]
        texts = []
        for _ in range(2):
            stream = recognizer.open_stream()
            texts.append(recognise(stream, pcm))
            stream.close()
            noisy = recognizer.open_stream()
            recognise(noisy, np.random.default_rng(3).normal(0, 6000, 10 * 16000).astype(np.int16))
            noisy.close()
        assert texts[0] == texts[1]
    finally:
        recognizer.close()
