"""WAV files for tests, written by the product's own writer (mono or multichannel int16)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agent.demo import write_multichannel_wav


def write_wav(path, samples: np.ndarray, rate_hz: int = 16000):
    """``samples``: (n,) mono or (n, channels); floats are rounded to int16. Returns ``path``."""
    samples = np.asarray(samples)
    if samples.dtype.kind == "f":
        samples = np.round(samples)
    write_multichannel_wav(Path(path), samples.reshape(len(samples), -1), rate_hz)
    return path


def channel_identity_signal(n: int, channels: int) -> np.ndarray:
    """Channel c carries the constant 1000 * (c + 1), so a frame shows which stream channel it came from."""
    return np.tile((np.arange(channels) + 1) * 1000, (n, 1)).astype(np.int16)
