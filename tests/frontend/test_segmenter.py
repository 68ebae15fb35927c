"""Segmenter timing: pre-roll, hangover, blips, max length, mute — on scripted VAD decisions."""

from __future__ import annotations

import numpy as np
import pytest

from parley_common.frames import Frame
from agent.events import SpeechChunk, SpeechEnded, SpeechStarted
from parley_common.vad.segmenter import Segmenter, SegmenterConfig

FRAME_MS = 20
N = 320


def run(decisions: list[bool], config: SegmenterConfig, muted_from: int | None = None):
    segmenter = Segmenter(config)
    events = []
    for k, speech in enumerate(decisions):
        frame = Frame(np.full((N, 1), k, dtype=np.int16), k * N, 16000)
        muted = muted_from is not None and k >= muted_from
        events += segmenter.process(frame, speech, muted=muted, azimuth_deg=42.0, confidence=0.9)
    return events, segmenter


def frames_of(ms: int) -> int:
    return ms // FRAME_MS


def pattern(*spans: tuple[bool, int]) -> list[bool]:
    out = []
    for speech, ms in spans:
        out += [speech] * frames_of(ms)
    return out


CONFIG = SegmenterConfig(start_window_ms=200, start_speech_ratio=0.6, preroll_ms=300, hangover_ms=500,
                         min_utterance_ms=300, max_utterance_ms=10000)


def test_one_utterance_with_preroll_and_hangover():
    events, _ = run(pattern((False, 1000), (True, 1200), (False, 1000)), CONFIG)
    started = [e for e in events if isinstance(e, SpeechStarted)]
    ended = [e for e in events if isinstance(e, SpeechEnded)]
    chunks = [e for e in events if isinstance(e, SpeechChunk)]
    assert len(started) == 1 and len(ended) == 1
    speech_onset = frames_of(1000) * N
    # The start window fills after 0.6 x 200 ms of speech is seen in it; the pre-roll reaches 300 ms further back.
    assert speech_onset - started[0].start_sample >= frames_of(300) * N
    assert started[0].azimuth_deg == 42.0
    speech_end = frames_of(2200) * N
    assert ended[0].end_sample == speech_end + frames_of(500) * N  # exactly the hangover after the last speech
    assert ended[0].reason == "silence"
    # Chunks are contiguous, in order, and cover exactly start..end.
    assert chunks[0].frame.start_sample == started[0].start_sample
    assert all(b.frame.start_sample == a.frame.end_sample for a, b in zip(chunks, chunks[1:]))
    assert chunks[-1].frame.end_sample == ended[0].end_sample
    assert ended[0].duration_ms == pytest.approx((ended[0].end_sample - started[0].start_sample) / 16)


def test_a_pause_shorter_than_the_hangover_does_not_split():
    events, _ = run(pattern((True, 800), (False, 400), (True, 800), (False, 800)), CONFIG)
    assert sum(isinstance(e, SpeechStarted) for e in events) == 1


def test_blips_shorter_than_the_minimum_are_dropped_and_counted():
    events, segmenter = run(pattern((False, 500), (True, 200), (False, 1000)), CONFIG)
    assert events == []
    assert segmenter.dropped_blips == 1


def test_max_length_force_splits_a_never_ending_noise():
    config = SegmenterConfig(max_utterance_ms=2000, hangover_ms=500)
    events, _ = run(pattern((True, 7000)), config)
    ended = [e for e in events if isinstance(e, SpeechEnded)]
    assert len(ended) >= 3
    assert all(e.reason == "max_length" for e in ended)
    assert all(e.duration_ms <= 2000 + config.preroll_ms + FRAME_MS for e in ended)
    ids = [e.utterance_id for e in events if isinstance(e, SpeechStarted)]
    assert ids == sorted(set(ids)) and ids[0] == 1


def test_muting_ends_the_open_utterance_and_blocks_new_ones():
    events, _ = run(pattern((True, 1500), (True, 3000)), CONFIG, muted_from=frames_of(1500))
    ended = [e for e in events if isinstance(e, SpeechEnded)]
    assert [e.reason for e in ended] == ["muted"]
    assert sum(isinstance(e, SpeechStarted) for e in events) == 1


def test_the_end_event_carries_the_direction_estimated_over_the_whole_utterance():
    segmenter = Segmenter(CONFIG)
    events = []
    for k, speech in enumerate(pattern((False, 400), (True, 1500), (False, 800))):
        azimuth_deg = 30.0 + k  # the estimate keeps refining while the talker speaks
        frame = Frame(np.zeros((N, 1), dtype=np.int16), k * N, 16000)
        events += segmenter.process(frame, speech, azimuth_deg=azimuth_deg, confidence=0.5)
        if any(isinstance(e, SpeechEnded) for e in events):
            break
    started = next(e for e in events if isinstance(e, SpeechStarted))
    ended = next(e for e in events if isinstance(e, SpeechEnded))
    assert ended.azimuth_deg == 30.0 + k and ended.doa_confidence == 0.5
    assert started.azimuth_deg < ended.azimuth_deg
