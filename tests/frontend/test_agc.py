"""Level normalisation before the VAD: a quiet array still yields utterances with webrtcvad."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from agent.audio import open_capture
from agent.audio.config import CaptureConfig, WavSourceConfig
from agent.dsp.agc import AgcConfig, LevelNormalizer
from agent.events import SpeechEnded
from agent.frontend import FrontEnd, FrontendConfig
from agent.hardware import load_array_profile
from parley_common.vad.engines import VadConfig
from tests.support.data import shared_data_dir
from tests.support.signals import plane_wave, to_frames
from tests.support.speech import english_samples
from tests.support.wavfiles import write_wav

SPEECH_DBFS = -55.0   # RMS while speaking; with the 1 s pauses the recording is about -57 dBFS overall
MIC_NOISE_DBFS = -75.0


@pytest.fixture(scope="module")
def quiet_scene():
    """Three real sentences from 60° on the 4-mic array, 1 s apart, at a quiet array's level."""
    geometry = load_array_profile("respeaker-4mic-hat")
    sentences = [s.astype(float) for _, s in english_samples(shared_data_dir(), limit=3)]
    talk = np.concatenate([np.concatenate([np.zeros(16000), s]) for s in sentences] + [np.zeros(16000)])
    active = talk[np.abs(talk) > 30]
    talk *= 10 ** (SPEECH_DBFS / 20) * 32768 / np.sqrt(np.mean(active ** 2))
    rng = np.random.default_rng(7)
    multi = plane_wave(talk, geometry.mic_positions_m, 60.0)
    multi = multi + rng.normal(0, 32768 * 10 ** (MIC_NOISE_DBFS / 20), multi.shape)
    return geometry, np.round(multi).astype(np.int16), [len(s) / 16 for s in sentences]


def utterance_ms(geometry, samples, agc: bool) -> list[float]:
    config = FrontendConfig(vad=VadConfig(engine="webrtc", webrtc_mode=3), agc=AgcConfig(enabled=agc))
    frontend = FrontEnd(config, geometry)
    events = [e for frame in to_frames(samples) for e in frontend.process(frame)]
    return [e.duration_ms for e in events if isinstance(e, SpeechEnded)]


def test_quiet_array_gives_every_sentence_with_webrtcvad_mode_3_only_with_agc(quiet_scene):
    geometry, samples, sentence_ms = quiet_scene

    def whole_sentences(durations):
        return len(durations) == 3 and all(got >= 0.9 * spoken for got, spoken in zip(durations, sentence_ms))

    without = utterance_ms(geometry, samples, agc=False)
    assert not whole_sentences(without) and len(without) <= 1  # the problem: the VAD hears (almost) nothing
    assert whole_sentences(utterance_ms(geometry, samples, agc=True)), sentence_ms


def test_noise_alone_is_not_lifted_into_speech(quiet_scene):
    geometry, samples, _ = quiet_scene
    noise = np.round(np.random.default_rng(3).normal(0, 32768 * 10 ** (MIC_NOISE_DBFS / 20), (16000 * 8, 4)))
    assert utterance_ms(geometry, noise.astype(np.int16), agc=True) == []


def test_loud_input_is_untouched_and_quiet_input_is_raised_without_lifting_the_floor_too_far():
    agc = LevelNormalizer(AgcConfig(), 16000)
    loud = (np.sin(np.arange(320) / 5) * 8000).astype(np.int16)[:, None]
    assert np.array_equal(agc.process(loud), loud) and agc.gain_db == 0.0
    quiet = LevelNormalizer(AgcConfig(), 16000)
    floor = np.full((320, 1), 3, dtype=np.int16)  # about -80 dBFS of hum
    tone = (np.sin(np.arange(320) / 5) * 100).astype(np.int16)[:, None]  # about -53 dBFS
    for _ in range(50):
        quiet.process(floor)
    for _ in range(5):
        out = quiet.process(tone)
    assert quiet.gain_db == pytest.approx(27.0, abs=1.0)  # to the -26 dBFS target
    assert np.abs(out).max() > 2000
    silent = LevelNormalizer(AgcConfig(max_gain_db=40.0, noise_ceiling_dbfs=-60.0), 16000)
    for _ in range(50):
        silent.process(floor)
    for _ in range(5):
        silent.process(tone)
    assert silent.gain_db == pytest.approx(-60.0 - (-80.0), abs=1.5)  # capped by the noise ceiling


def test_near_silent_input_is_warned_about_at_start(tmp_path, caplog):
    path = tmp_path / "quiet.wav"
    write_wav(path, np.full((32000, 4), 6, dtype=np.int16))  # about -75 dBFS
    source = open_capture(CaptureConfig(source="wav", wav=WavSourceConfig(path=str(path), realtime=False)),
                          load_array_profile("respeaker-4mic-hat"))
    source.start()
    with caplog.at_level(logging.WARNING, logger="parley.capture"):
        while source.read(1.0) is not None:
            pass
    assert any("the input is near silence (loudest mic -75 dBFS" in r.getMessage() for r in caplog.records)
