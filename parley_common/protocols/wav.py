"""The 44-byte streaming WAV header both protocols open an audio stream with."""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER_BYTES = 44
WIRE_SAMPLE_RATE_HZ = 16000  # what both protocols carry: 16 kHz mono 16-bit PCM
WIRE_BYTES_PER_SAMPLE = 2
WIRE_BYTES_PER_S = WIRE_SAMPLE_RATE_HZ * WIRE_BYTES_PER_SAMPLE
TICKS_PER_SECOND = 10_000_000  # the 100 ns ticks of offsets and durations in results
TICKS_PER_SAMPLE = TICKS_PER_SECOND // WIRE_SAMPLE_RATE_HZ


class WavHeaderError(ValueError):
    pass


PCM_FORMAT_TAG = 1
ALAW_FORMAT_TAG = 6  # G.711, 8-bit: telephone audio (the SDK's AudioStreamWaveFormat.ALAW)
MULAW_FORMAT_TAG = 7


@dataclass(frozen=True)
class PcmFormat:
    sample_rate_hz: int
    channels: int
    bits_per_sample: int
    format_tag: int = PCM_FORMAT_TAG


def streaming_header(sample_rate_hz: int = WIRE_SAMPLE_RATE_HZ, channels: int = 1, bits_per_sample: int = 16) -> bytes:
    """RIFF/WAVE header with both sizes 0: length unknown while streaming (allowed by both protocols)."""
    block_align = channels * bits_per_sample // 8
    return (b"RIFF" + struct.pack("<I", 0) + b"WAVE" + b"fmt " +
            struct.pack("<IHHIIHH", 16, 1, channels, sample_rate_hz, sample_rate_hz * block_align,
                        block_align, bits_per_sample) + b"data" + struct.pack("<I", 0))


def parse_header(data: bytes) -> tuple[PcmFormat, int]:
    """The sample format and the offset where samples start; raises WavHeaderError when it is not WAV."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise WavHeaderError("audio must start with a RIFF/WAVE header")
    offset, fmt = 12, None
    while offset + 8 <= len(data):
        chunk_id, size = data[offset:offset + 4], struct.unpack("<I", data[offset + 4:offset + 8])[0]
        if chunk_id == b"fmt ":
            if size < 16 or offset + 24 > len(data):
                raise WavHeaderError("truncated fmt chunk")
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[offset + 8:offset + 24])
            fmt = PcmFormat(rate, channels, bits, tag)
        elif chunk_id == b"data":
            if fmt is None:
                raise WavHeaderError("data chunk before fmt chunk")
            return fmt, offset + 8
        offset += 8 + size + (size & 1)
    raise WavHeaderError("WAV header has no data chunk")


def pcm_after_header(data: bytes) -> bytes:
    """The PCM after a stream's opening WAV header, which must announce the wire format.

    Raises WavHeaderError with the reason a service gives the client when it closes.
    """
    try:
        fmt, offset = parse_header(data)
    except WavHeaderError as exc:
        raise WavHeaderError(f"bad audio header: {exc}") from None
    if fmt.format_tag != PCM_FORMAT_TAG:
        raise WavHeaderError(f"bad audio header: only PCM audio is supported (format tag {fmt.format_tag})")
    if (fmt.sample_rate_hz, fmt.channels, fmt.bits_per_sample) != (WIRE_SAMPLE_RATE_HZ, 1, 8 * WIRE_BYTES_PER_SAMPLE):
        raise WavHeaderError("audio must be 16 kHz mono 16-bit PCM")
    return data[offset:]


class AudioBudget:
    """How much audio one connection may send before a service closes it cleanly."""

    def __init__(self, max_audio_s: float):
        self.max_bytes = max_audio_s * WIRE_BYTES_PER_S
        self.used_bytes = 0

    def take(self, pcm: bytes) -> bool:
        """Count ``pcm``; False once the connection has sent more than its budget."""
        self.used_bytes += len(pcm)
        return self.used_bytes <= self.max_bytes
