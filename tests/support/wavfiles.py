"""Small multichannel WAV files whose samples say which channel they came from."""

from __future__ import annotations

import wave

import numpy as np


def write_wav(path, samples: np.ndarray, rate_hz: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(samples.shape[1])
        wav.setsampwidth(2)
        wav.setframerate(rate_hz)
        wav.writeframes(samples.astype("<i2").tobytes())


def channel_identity_signal(n: int, channels: int) -> np.ndarray:
    """Channel c carries the constant 1000 * (c + 1), so a frame shows which stream channel it came from."""
    return np.tile((np.arange(channels) + 1) * 1000, (n, 1)).astype(np.int16)
