"""``parley analyze``: a recording through capture -> front end, one line per segment."""

from __future__ import annotations

import re
import wave

import numpy as np
import pytest

from agent.cli import EXIT_INVALID, EXIT_OK, main
from agent.hardware import load_array_profile
from tests.support.data import shared_data_dir
from tests.support.signals import plane_wave
from tests.support.speech import english_samples
from tests.support.wavfiles import write_wav


@pytest.fixture(scope="module")
def two_talkers(tmp_path_factory):
    """A 4-mic recording: a sentence from 60°, then one from 200°, over a little mic noise."""
    geometry = load_array_profile("respeaker-4mic-hat")
    first, second = [s.astype(float) for _, s in english_samples(shared_data_dir(), limit=2)]
    a = plane_wave(np.concatenate([np.zeros(16000), first, np.zeros(16000)]), geometry.mic_positions_m, 60.0)
    b = plane_wave(np.concatenate([second, np.zeros(16000)]), geometry.mic_positions_m, 200.0)
    x = np.concatenate([a, b])
    x = x + np.random.default_rng(0).normal(0, 30, x.shape)
    path = tmp_path_factory.mktemp("analyze") / "two.wav"
    write_wav(path, x)
    return path, len(first) / 16000, len(second) / 16000


def test_prints_each_segment_with_directions_and_writes_its_audio(two_talkers, tmp_path, capsys):
    path, first_s, second_s = two_talkers
    config = tmp_path / "agent.yaml"
    config.write_text("frontend:\n  vad:\n    engine: webrtc\n")
    assert main(["analyze", str(path), "--config", str(config), "--write-segments", str(tmp_path / "segs")]) == EXIT_OK
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if re.match(r"\s*\d+\s+\d+\.\d\d", line)]
    assert len(rows) == 2, out
    assert "VAD webrtc" in out and "2 segment(s)" in out
    (_, start1, end1, *_), (_, start2, end2, *_) = rows
    assert 0.5 <= float(start1) <= 1.0 and float(end1) >= 1.0 + 0.9 * first_s
    assert float(start2) >= float(end1) and float(end2) >= 2.0 + first_s + 0.9 * second_s
    assert abs(float(rows[0][5].rstrip("°")) - 60) <= 10   # direction at the end of each segment
    assert abs(float(rows[1][5].rstrip("°")) - 200) <= 10
    assert all(row[-1] == "silence" for row in rows)
    for row, wav_name in zip(rows, ("segment-001.wav", "segment-002.wav")):
        with wave.open(str(tmp_path / "segs" / wav_name)) as seg:
            assert seg.getnchannels() == 1
            assert seg.getnframes() / 16000 == pytest.approx(float(row[3]), abs=0.05)


def test_a_bad_recording_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty.wav").write_bytes(b"")
    assert main(["analyze", str(tmp_path / "empty.wav")]) == EXIT_INVALID
    assert "truncated header" in capsys.readouterr().err


def test_analyze_with_the_reference_hears_the_room_without_the_box_own_voice(tmp_path, capsys):
    """A recording of the box speaking (the debug recorder's raw + reference files): without the
    reference the front end takes the box's voice for a talker; with it, the echo is cancelled."""
    from scipy.signal import fftconvolve

    from agent.audio.synth import speak
    from agent.selfcheck import chirp
    from agent.simulation_echo import speaker_rirs

    geometry = load_array_profile("respeaker-4mic-hat")
    rirs = speaker_rirs(geometry, rt60_s=0.3) * 0.05
    played = np.concatenate([np.zeros(8000), chirp(16000, 500, -30.0), np.zeros(8000),
                             speak("Buenos días, la estación de tren está muy cerca de aquí.", voice="es"), np.zeros(16000)])
    echo = np.stack([fftconvolve(played.astype(float), rirs[:, m])[:len(played)] for m in range(4)], axis=1)
    echo += np.random.default_rng(0).standard_normal(echo.shape) * 20
    write_wav(tmp_path / "raw.wav", echo)
    write_wav(tmp_path / "reference.wav", played)
    assert main(["analyze", str(tmp_path / "raw.wav")]) == EXIT_OK
    without = capsys.readouterr().out
    assert main(["analyze", str(tmp_path / "raw.wav"), "--reference", str(tmp_path / "reference.wav")]) == EXIT_OK
    cancelled = capsys.readouterr().out
    assert not without.endswith("0 segment(s)\n")  # the box's own voice, taken for a talker
    assert cancelled.endswith("0 segment(s)\n"), cancelled
