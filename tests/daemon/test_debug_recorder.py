"""``debug.record_dir`` in a running agent: a bounded ring of raw + beamformed audio and the segment log."""

from __future__ import annotations

import json
import time
import wave

import numpy as np

from agent.config.schema import load_agent_config
from agent.daemon import Agent
from agent.hardware import load_array_profile
from tests.support.data import shared_data_dir
from tests.support.signals import plane_wave
from tests.support.speech import english_samples
from tests.support.wavfiles import write_wav


def test_the_ring_keeps_the_last_chunks_of_raw_and_beamformed_audio_with_the_segment_log(tmp_path):
    geometry = load_array_profile("respeaker-4mic-hat")
    sentence = english_samples(shared_data_dir(), limit=1)[0][1].astype(float)
    talk = np.concatenate([np.zeros(16000 * 8), sentence, np.zeros(16000 * 2)])
    x = plane_wave(talk, geometry.mic_positions_m, 60.0) + np.random.default_rng(0).normal(0, 30, (len(talk), 4))
    recording = tmp_path / "in.wav"
    write_wav(recording, x)
    ring = tmp_path / "ring"
    ring.mkdir()
    for suffix in ("-raw.wav", "-beam.wav", "-segments.jsonl"):  # left by an earlier run
        (ring / f"20200101T000000_000{suffix}").write_bytes(b"old")
    config = load_agent_config(tmp_path / "agent.yaml", text=f"""
capture: {{source: wav, wav: {{path: {recording}, realtime: false}}}}
frontend: {{vad: {{engine: webrtc}}}}
uplink: {{url: "ws://127.0.0.1:9"}}
outputs: {{leds: {{backend: none}}, speaker: {{backend: none}}, console: {{enabled: false}}}}
debug: {{record_dir: {ring}, record_minutes: 0.1, chunk_s: 2}}
""")
    agent = Agent(config)
    agent.start()
    deadline = time.monotonic() + 120
    while not agent.input_ended and time.monotonic() < deadline:
        time.sleep(0.1)
    agent.close()
    assert agent.input_ended

    stamps = sorted(p.name[: -len("-raw.wav")] for p in ring.glob("*-raw.wav"))
    assert len(stamps) == 3  # 6 s of 2 s chunks: the oldest ones (and the earlier run's) were deleted
    assert not list(ring.glob("2020*"))
    assert sorted(p.name for p in ring.iterdir()) == sorted(
        f"{s}{suffix}" for s in stamps for suffix in ("-raw.wav", "-beam.wav", "-reference.wav", "-segments.jsonl"))
    total_s = len(talk) / 16000
    for stamp in stamps:
        with wave.open(str(ring / f"{stamp}-raw.wav")) as raw, wave.open(str(ring / f"{stamp}-beam.wav")) as beam:
            assert raw.getnchannels() == 4 and beam.getnchannels() == 1
            assert raw.getnframes() <= 2 * 16000 and abs(raw.getnframes() - beam.getnframes()) <= 320
        with wave.open(str(ring / f"{stamp}-reference.wav")) as reference:  # what the speaker played (nothing)
            assert reference.getnframes() == raw.getnframes() and not any(reference.readframes(reference.getnframes()))
    records = [json.loads(line) for stamp in stamps for line in (ring / f"{stamp}-segments.jsonl").read_text().splitlines()]
    chunk_starts = [r["start_sample"] for r in records if r["event"] == "chunk"]
    assert chunk_starts[-1] / 16000 >= total_s - 2.5  # the ring holds the end of the recording
    started = [r for r in records if r["event"] == "started"]
    ended = [r for r in records if r["event"] == "ended"]
    assert len(started) == 1 and len(ended) == 1
    assert abs(ended[0]["azimuth_deg"] - 60) <= 10
    assert ended[0]["end_sample"] / 16000 >= 8 + 0.9 * len(sentence) / 16000
