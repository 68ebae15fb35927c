"""The WAV capture source: frame shapes, sample indices, channel map, resampling, pacing, loop."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import time

import numpy as np
import pytest

from agent.audio import CaptureError, open_capture
from agent.audio.config import CaptureConfig, WavSourceConfig
from agent.hardware import load_array_profile
from tests.support.wavfiles import channel_identity_signal, write_wav


def read_all(source, limit: int = 100000):
    frames = []
    while len(frames) < limit:
        frame = source.read(timeout_s=1.0)
        if frame is None:
            if source.state == "stopped":
                break
            continue
        frames.append(frame)
    return frames


@pytest.mark.parametrize("frame_ms", [10, 20, 30])
def test_frames_are_fixed_size_contiguous_and_channel_mapped(tmp_path, frame_ms):
    path = tmp_path / "six.wav"
    write_wav(path, channel_identity_signal(16000, 8), 16000)
    geometry = load_array_profile("respeaker-6mic-hat")
    config = CaptureConfig(source="wav", frame_ms=frame_ms, wav=WavSourceConfig(path=str(path), realtime=False))
    source = open_capture(config, geometry)
    source.start()
    frames = read_all(source)
    samples_per_frame = 16 * frame_ms
    assert len(frames) == 16000 // samples_per_frame
    assert all(f.samples.shape == (samples_per_frame, 6) and f.samples.dtype == np.int16 for f in frames)
    assert [f.start_sample for f in frames] == [i * samples_per_frame for i in range(len(frames))]
    assert frames[3].samples[0].tolist() == [1000, 2000, 3000, 4000, 5000, 6000]
    assert source.state == "stopped" and source.read(0.01) is None


def test_channel_map_reorders_as_the_profile_says(tmp_path):
    path = tmp_path / "usb.wav"
    write_wav(path, channel_identity_signal(3200, 6), 16000)
    source = open_capture(
        CaptureConfig(source="wav", wav=WavSourceConfig(path=str(path), realtime=False)),
        load_array_profile("respeaker-usb-4mic"))
    source.start()
    frame = source.read(1.0)
    assert frame.samples[0].tolist() == [2000, 3000, 4000, 5000]  # stream channels 1..4 are the mics


def test_48k_file_is_resampled_to_16k_with_the_tone_intact(tmp_path):
    rate_hz, seconds, tone_hz = 48000, 10, 1000.0
    t = np.arange(rate_hz * seconds) / rate_hz
    tone = (8000 * np.sin(2 * np.pi * tone_hz * t)).astype(np.int16)[:, None].repeat(4, axis=1)
    path = tmp_path / "tone48k.wav"
    write_wav(path, tone, rate_hz)
    source = open_capture(
        CaptureConfig(source="wav", wav=WavSourceConfig(path=str(path), realtime=False)),
        load_array_profile("respeaker-4mic-hat"))
    source.start()
    out = np.concatenate([f.samples for f in read_all(source)])[:, 0].astype(float)
    assert 16000 * seconds - 320 <= len(out) <= 16000 * seconds  # at most the last partial frame is missing
    steady = out[1600:-1600]
    spectrum = np.abs(np.fft.rfft(steady * np.hanning(len(steady))))
    peak_hz = np.argmax(spectrum) * 16000 / len(steady)
    assert abs(peak_hz - tone_hz) < 1.0
    rms = np.sqrt(np.mean(steady ** 2))
    assert rms == pytest.approx(8000 / np.sqrt(2), rel=0.02)


def test_realtime_pacing_follows_the_recording_clock(tmp_path):
    path = tmp_path / "one_second.wav"
    write_wav(path, channel_identity_signal(16000, 4), 16000)
    source = open_capture(
        CaptureConfig(source="wav", wav=WavSourceConfig(path=str(path), realtime=True)),
        load_array_profile("respeaker-4mic-hat"))
    started = time.monotonic()
    source.start()
    frames = read_all(source)
    elapsed_s = time.monotonic() - started
    assert len(frames) == 50
    assert 0.9 <= elapsed_s < 2.0


def test_loop_keeps_the_sample_index_increasing(tmp_path):
    path = tmp_path / "short.wav"
    write_wav(path, channel_identity_signal(1600, 4), 16000)
    source = open_capture(
        CaptureConfig(source="wav", wav=WavSourceConfig(path=str(path), realtime=False, loop=True)),
        load_array_profile("respeaker-4mic-hat"))
    source.start()
    frames = read_all(source, limit=25)
    assert len(frames) == 25 and source.state == "running"
    assert frames[-1].start_sample == 24 * 320


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(CaptureError, match="capture.wav.path: .*nope.wav: cannot open: No such file"):
        open_capture(CaptureConfig(source="wav", wav=WavSourceConfig(path=str(tmp_path / "nope.wav"))),
                     load_array_profile("mono"))
    path = tmp_path / "stereo.wav"
    write_wav(path, channel_identity_signal(160, 2), 16000)
    with pytest.raises(CaptureError, match="has 2 channel"):
        open_capture(CaptureConfig(source="wav", wav=WavSourceConfig(path=str(path))),
                     load_array_profile("respeaker-6mic-hat"))


def first_frame_of(path, profile: str = "respeaker-4mic-hat"):
    source = open_capture(CaptureConfig(source="wav", wav=WavSourceConfig(path=str(path), realtime=False)),
                          load_array_profile(profile))
    source.start()
    frames = read_all(source)
    source.close()
    return frames


@pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")
@pytest.mark.parametrize("encoding", [
    ["-e", "signed-integer", "-b", "16"],   # > 2 channels: sox writes WAVE_FORMAT_EXTENSIBLE
    ["-e", "signed-integer", "-b", "24"],
    ["-e", "signed-integer", "-b", "32"],
    ["-e", "floating-point", "-b", "32"],
    ["-e", "floating-point", "-b", "64"],
    ["-e", "unsigned-integer", "-b", "8"],
])
def test_sox_files_of_every_encoding_are_converted_to_int16(tmp_path, encoding):
    source_path = tmp_path / "in16.wav"
    write_wav(source_path, channel_identity_signal(1600, 4), 16000)
    path = tmp_path / "converted.wav"
    subprocess.run(["sox", "-D", str(source_path), *encoding, str(path)], check=True)  # -D: no dither
    if encoding[1] == "signed-integer":  # sox writes WAVE_FORMAT_EXTENSIBLE for 4-channel PCM
        assert path.read_bytes()[20:22] == b"\xfe\xff"
    frames = first_frame_of(path)
    assert len(frames) == 5
    tolerance = 128 if "8" in encoding else 1  # 8-bit keeps only the top byte, rounded
    assert np.abs(frames[2].samples[0].astype(int) - [1000, 2000, 3000, 4000]).max() <= tolerance


def test_float_is_clipped_at_full_scale(tmp_path):
    path = tmp_path / "float.wav"
    data = np.array([[0.5, -2.0], [1.5, -0.25]] * 160, dtype="<f4")
    fmt = struct.pack("<HHIIHH", 3, 2, 16000, 16000 * 8, 8, 32)
    body = data.tobytes()
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + 24 + 8 + len(body)) + b"WAVE" + b"fmt " + struct.pack("<I", 16)
                     + fmt + b"data" + struct.pack("<I", len(body)) + body)
    frames = first_frame_of(path, "mono")
    assert frames[0].samples[:2, 0].tolist() == [16384, 32767]


@pytest.mark.parametrize("keep_bytes, problem", [
    (0, "truncated header: the file has 0 byte"),
    (30, "truncated header: the 'fmt ' chunk has"),
    (36, "truncated header: the file ends at byte 36, before the 'data' chunk"),
])
def test_truncated_headers_say_what_is_missing(tmp_path, keep_bytes, problem):
    whole = tmp_path / "whole.wav"
    write_wav(whole, channel_identity_signal(160, 4), 16000)
    path = tmp_path / "cut.wav"
    path.write_bytes(whole.read_bytes()[:keep_bytes])
    with pytest.raises(CaptureError, match=re.escape(problem)):
        first_frame_of(path)


def test_a_directory_and_an_unknown_encoding_are_named(tmp_path):
    with pytest.raises(CaptureError, match="is a directory"):
        first_frame_of(tmp_path)
    path = tmp_path / "alaw.wav"
    write_wav(path, channel_identity_signal(160, 4), 16000)
    raw = bytearray(path.read_bytes())
    raw[20:22] = struct.pack("<H", 6)  # A-law
    path.write_bytes(bytes(raw))
    with pytest.raises(CaptureError, match="unsupported encoding \\(format tag 0x0006\\)"):
        first_frame_of(path)
