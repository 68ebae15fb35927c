"""The whole front end on espeak-ng speech arriving as a plane wave in noise."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from agent.audio.synth import speak
from agent.events import SpeechChunk, SpeechEnded, SpeechStarted
from agent.frontend import FrontEnd, FrontendConfig
from agent.hardware import load_array_profile
from parley_common.vad.engines import VadConfig

sys.path.insert(0, str(Path(__file__).parent))
from signals import plane_wave, to_frames  # noqa: E402


def scene(geometry, azimuth_deg: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    words = speak("The quick brown fox jumps over the lazy dog.").astype(float)
    silence = np.zeros(16000)
    talker = np.concatenate([silence, words, silence, words, silence])
    mix = plane_wave(talker, geometry.mic_positions_m, azimuth_deg)
    mix += rng.standard_normal(mix.shape) * 100  # ~ 30 dB below the speech
    return mix, len(words)


@pytest.mark.parametrize("engine", ["webrtc", "silero"])
def test_two_sentences_become_two_utterances_with_the_right_direction(engine):
    geometry = load_array_profile("respeaker-4mic-hat")
    mix, words_len = scene(geometry, 135.0)
    frontend = FrontEnd(FrontendConfig(vad=VadConfig(engine=engine)), geometry)
    events = []
    for frame in to_frames(mix):
        events += frontend.process(frame)
    events += frontend.flush()
    started = [e for e in events if isinstance(e, SpeechStarted)]
    ended = [e for e in events if isinstance(e, SpeechEnded)]
    assert len(started) == 2 and len(ended) == 2
    assert all(e.reason == "silence" for e in ended)
    for e in ended:
        assert words_len / 16 * 0.8 < e.duration_ms < words_len / 16 + 1500
    error = abs((frontend.azimuth_deg - 135.0 + 180) % 360 - 180)
    assert error < 3.0
    chunks = [e for e in events if isinstance(e, SpeechChunk)]
    assert all(c.frame.samples.shape == (320, 1) for c in chunks)


def test_mono_profile_skips_spatial_processing():
    geometry = load_array_profile("mono")
    words = speak("Hello there, how are you today?").astype(float)
    signal = np.concatenate([np.zeros(8000), words, np.zeros(16000)])[:, None]
    frontend = FrontEnd(FrontendConfig(), geometry)
    events = [e for frame in to_frames(signal) for e in frontend.process(frame)]
    assert frontend.azimuth_deg is None
    started = [e for e in events if isinstance(e, SpeechStarted)]
    assert len(started) == 1 and started[0].azimuth_deg is None


def test_muted_frames_start_nothing_and_do_not_move_the_direction():
    geometry = load_array_profile("respeaker-4mic-hat")
    mix, _ = scene(geometry, 45.0)
    frontend = FrontEnd(FrontendConfig(), geometry)
    events = [e for frame in to_frames(mix) for e in frontend.process(frame, muted=True)]
    assert events == [] and frontend.azimuth_deg is None
