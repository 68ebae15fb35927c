"""Translator v1's ``format=audio/mp3``: the synthesized WAV re-encoded as MP3 by LAME.

Through lameenc (PyPI, LGPL; its wheels carry libmp3lame, so no Debian package and no subprocess per
phrase), 64 kbit/s CBR mono: speech at the synthesizer's 16 kHz needs no more.
"""

from __future__ import annotations

import lameenc

from parley_common.protocols.wav import parse_header

MP3_BIT_RATE_KBPS = 64


def wav_to_mp3(wav: bytes) -> bytes:
    fmt, offset = parse_header(wav)
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(MP3_BIT_RATE_KBPS)
    encoder.set_in_sample_rate(fmt.sample_rate_hz)
    encoder.set_channels(fmt.channels)
    encoder.set_quality(5)
    pcm = wav[offset:]
    return bytes(encoder.encode(pcm[:len(pcm) // 2 * 2]) + encoder.flush())
