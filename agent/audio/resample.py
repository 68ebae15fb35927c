"""Streaming sample-rate conversion (soxr) shared by capture and the speaker."""

from __future__ import annotations

import numpy as np
import soxr


class StreamResampler:
    """Converts int16 blocks of shape (n, channels) from ``in_rate_hz`` to ``out_rate_hz``.

    A real band-limited resampler (soxr HQ), kept as one stream so block edges add no clicks and
    the output length tracks the exact rate ratio over hours (no drift).
    """

    def __init__(self, in_rate_hz: int, out_rate_hz: int, channels: int):
        self.in_rate_hz = in_rate_hz
        self.out_rate_hz = out_rate_hz
        self.channels = channels
        self._stream = None
        if in_rate_hz != out_rate_hz:
            self._stream = soxr.ResampleStream(in_rate_hz, out_rate_hz, channels, dtype="int16", quality="HQ")

    def process(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        if self._stream is None:
            return block
        out = self._stream.resample_chunk(np.ascontiguousarray(block, dtype=np.int16), last=last)
        return out.reshape(-1, self.channels)
