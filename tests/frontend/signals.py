"""Synthetic array signals with known answers: plane waves from a chosen azimuth."""

from __future__ import annotations

import numpy as np

from parley_common.frames import Frame
from agent.dsp.geometry_math import arrival_delays_s


def plane_wave(signal: np.ndarray, mic_positions_m: np.ndarray, azimuth_deg: float, rate_hz: int = 16000) -> np.ndarray:
    """Each mic's copy of ``signal`` arriving from ``azimuth_deg`` (exact fractional delays via FFT)."""
    n = len(signal)
    n_fft = 1 << int(np.ceil(np.log2(n + 64)))
    spectrum = np.fft.rfft(signal, n_fft)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / rate_hz)
    delays = arrival_delays_s(mic_positions_m, np.array([azimuth_deg]))[0]
    shifted = spectrum[:, None] * np.exp(-2j * np.pi * freqs[:, None] * delays[None, :])
    return np.fft.irfft(shifted, n_fft, axis=0)[:n]


def to_frames(samples: np.ndarray, frame_samples: int = 320, rate_hz: int = 16000) -> list[Frame]:
    clipped = np.clip(np.round(samples), -32768, 32767).astype(np.int16)
    if clipped.ndim == 1:
        clipped = clipped[:, None]
    return [Frame(np.ascontiguousarray(clipped[i:i + frame_samples]), i, rate_hz)
            for i in range(0, len(clipped) - frame_samples + 1, frame_samples)]
