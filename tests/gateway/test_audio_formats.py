"""The gateway's audio decoder: what the opening WAV header announces becomes 16 kHz 16-bit mono PCM."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from gateway.audio_formats import AudioDecoder, AudioFormatError, _alaw_table, _mulaw_table
from parley_common.protocols.wav import streaming_header


def header(tag: int, rate_hz: int, bits: int, channels: int = 1) -> bytes:
    block = channels * bits // 8
    return (b"RIFF" + struct.pack("<I", 0) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, tag, channels, rate_hz,
                                                                        rate_hz * block, block, bits)
            + b"data" + struct.pack("<I", 0))


def tone(rate_hz: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate_hz * seconds)) / rate_hz
    return (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


@pytest.mark.parametrize("table", [_mulaw_table(), _alaw_table()], ids=["mulaw", "alaw"])
def test_g711_tables_are_monotonic_companding_curves(table):
    """Each has 256 distinct levels spanning the 16-bit range, finer near zero (what G.711 is)."""
    levels = np.sort(table.astype(np.int32))
    assert len(set(levels.tolist())) >= 255 and levels[0] < -30000 and levels[-1] > 30000
    steps = np.diff(levels)
    assert steps[len(steps) // 2] < 40 < steps[0]


@pytest.mark.parametrize("rate_hz", [8000, 16000, 44100])
def test_pcm_at_other_rates_is_resampled_in_chunks_to_16_khz(rate_hz):
    decoder, rest = AudioDecoder.from_stream_start(header(1, rate_hz, 16) + tone(rate_hz)[:100].tobytes())
    data = rest + tone(rate_hz)[100:].tobytes()
    out = b"".join(decoder.decode(data[i:i + 333]) for i in range(0, len(data), 333)) + decoder.flush()
    pcm = np.frombuffer(out, dtype="<i2")
    assert abs(len(pcm) - 16000) <= 16
    spectrum = np.abs(np.fft.rfft(pcm[2000:14000]))
    assert abs(np.argmax(spectrum) * 16000 / 12000 - 440) < 3  # the same tone, at the new rate


@pytest.mark.parametrize("tag, bits, channels, rate_hz, named", [
    (1, 16, 2, 16000, "PCM 16-bit, 2 channel(s)"), (1, 24, 1, 16000, "PCM 24-bit"), (3, 32, 1, 16000, "IEEE float"),
    (7, 8, 1, 4000, "µ-law 8-bit, 1 channel(s), 4000 Hz"), (0x55, 0, 1, 16000, "MP3")])
def test_other_formats_are_refused_naming_the_format_and_what_is_accepted(tag, bits, channels, rate_hz, named):
    with pytest.raises(AudioFormatError) as refused:
        AudioDecoder.from_stream_start(header(tag, rate_hz, bits, channels))
    assert named in str(refused.value) and "accepted: 16-bit PCM mono" in str(refused.value)


def test_the_wire_format_passes_unchanged():
    decoder, rest = AudioDecoder.from_stream_start(streaming_header())
    pcm = tone(16000)[:999].tobytes()
    assert rest == b"" and decoder.decode(pcm[:3]) + decoder.decode(pcm[3:]) == pcm[:1998] and decoder.flush() == b""
