"""Client audio in the formats the Speech SDK's ``AudioStreamFormat`` offers, made into what the
recognizers hear: 16 kHz mono 16-bit PCM.

Accepted (the WAV header that opens every turn says which): 16-bit PCM, mono, 8 to 48 kHz (the
service documents 8 and 16 kHz; the SDK lets a push stream declare others), and G.711 µ-law
(format tag 7) or A-law (tag 6), 8-bit mono, the telephone formats (``AudioStreamWaveFormat.MULAW``,
``ALAW``). G.711 is expanded by its standard table (ITU-T G.711), other rates resampled by soxr's
streaming resampler, so chunk boundaries cost nothing. Anything else is refused with the format
it is and the list of what is accepted.
"""

from __future__ import annotations

import numpy as np
import soxr

from parley_common.protocols.wav import (
    ALAW_FORMAT_TAG,
    MULAW_FORMAT_TAG,
    PCM_FORMAT_TAG,
    WIRE_SAMPLE_RATE_HZ,
    PcmFormat,
    WavHeaderError,
    parse_header,
)

PCM_RATES_HZ = (8000, 48000)  # inclusive range of PCM sample rates accepted
ACCEPTED = ("16-bit PCM mono at 8000-48000 Hz, or 8-bit µ-law (format tag 7) or A-law (tag 6) mono "
            "at 8000-48000 Hz")
_TAG_NAMES = {PCM_FORMAT_TAG: "PCM", ALAW_FORMAT_TAG: "A-law", MULAW_FORMAT_TAG: "µ-law", 3: "IEEE float",
              0x11: "IMA ADPCM", 0x55: "MP3", 0xFFFE: "WAVE_FORMAT_EXTENSIBLE"}


class AudioFormatError(ValueError):
    """An opening header we cannot hear; the message names the format and what is accepted."""


def _mulaw_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.uint8)
    exponent = (codes >> 4) & 0x07
    magnitude = ((((codes & 0x0F).astype(np.int32) << 3) + 0x84) << exponent) - 0x84
    return np.where(codes & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.uint8) ^ 0x55
    exponent = (codes >> 4) & 0x07
    mantissa = (codes & 0x0F).astype(np.int32)
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent, 1) - 1)
    return np.where(codes & 0x80, magnitude, -magnitude).astype(np.int16)


_EXPAND = {MULAW_FORMAT_TAG: _mulaw_table(), ALAW_FORMAT_TAG: _alaw_table()}


def describe(fmt: PcmFormat) -> str:
    name = _TAG_NAMES.get(fmt.format_tag, f"format tag {fmt.format_tag}")
    return f"{name} {fmt.bits_per_sample}-bit, {fmt.channels} channel(s), {fmt.sample_rate_hz} Hz"


class AudioDecoder:
    """One turn's audio: bytes as the client sends them in, 16 kHz 16-bit mono PCM out."""

    def __init__(self, fmt: PcmFormat):
        self.format = fmt
        self._expand = _EXPAND.get(fmt.format_tag)
        self._odd = b""  # half a 16-bit sample left over from the last chunk
        self._resampler = (None if fmt.sample_rate_hz == WIRE_SAMPLE_RATE_HZ else
                           soxr.ResampleStream(fmt.sample_rate_hz, WIRE_SAMPLE_RATE_HZ, 1, dtype="int16"))

    @classmethod
    def from_stream_start(cls, data: bytes) -> tuple["AudioDecoder", bytes]:
        """The decoder the opening header asks for and the audio after the header."""
        try:
            fmt, offset = parse_header(data)
        except WavHeaderError as exc:
            raise AudioFormatError(f"bad audio header: {exc}") from None
        wanted_bits = 16 if fmt.format_tag == PCM_FORMAT_TAG else 8
        known = fmt.format_tag == PCM_FORMAT_TAG or fmt.format_tag in _EXPAND
        low, high = PCM_RATES_HZ
        if not known or fmt.bits_per_sample != wanted_bits or fmt.channels != 1 or not low <= fmt.sample_rate_hz <= high:
            raise AudioFormatError(f"unsupported audio format {describe(fmt)}; accepted: {ACCEPTED}")
        return cls(fmt), data[offset:]

    def decode(self, data: bytes) -> bytes:
        if self._expand is not None:
            samples = self._expand[np.frombuffer(data, dtype=np.uint8)]
        else:
            data, self._odd = self._odd + data, b""
            if len(data) % 2:
                data, self._odd = data[:-1], data[-1:]
            samples = np.frombuffer(data, dtype="<i2")
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        return samples.astype("<i2").tobytes()

    def flush(self) -> bytes:
        """What the resampler still holds at the end of the turn."""
        if self._resampler is None:
            return b""
        return self._resampler.resample_chunk(np.zeros(0, dtype=np.int16), last=True).astype("<i2").tobytes()
