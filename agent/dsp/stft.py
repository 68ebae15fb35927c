"""Streaming short-time Fourier transform with perfect reconstruction (weighted overlap-add).

A sqrt-Hann window of 2·hop samples is used for both analysis and synthesis: with 50 % overlap the
squared window sums to one, so ``synthesize(analyze(x))`` returns ``x`` delayed by one hop. The
FFT is zero-padded to ``n_fft`` for finer frequency sampling of the steering phases.
"""

from __future__ import annotations

import numpy as np


class StreamingStft:
    def __init__(self, hop_samples: int, channels: int, n_fft: int = 512):
        self.hop = hop_samples
        self.win_len = 2 * hop_samples
        self.n_fft = max(n_fft, self.win_len)
        self.channels = channels
        self.window = np.sqrt(np.hanning(self.win_len + 1)[:-1]).astype(np.float32)
        self._in_tail = np.zeros((hop_samples, channels), dtype=np.float32)
        self._out_tail: np.ndarray = np.zeros(hop_samples, dtype=np.float32)  # float64 after the first hop

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    def analyze(self, hop_block: np.ndarray) -> np.ndarray:
        """One hop of new samples (hop, channels) float -> spectrum (n_bins, channels)."""
        frame = np.concatenate([self._in_tail, hop_block], axis=0)
        self._in_tail = hop_block
        return np.fft.rfft(frame * self.window[:, None], n=self.n_fft, axis=0)

    def synthesize(self, spectrum: np.ndarray) -> np.ndarray:
        """A mono spectrum (n_bins,) -> the hop of output samples completed by it."""
        frame = np.fft.irfft(spectrum, n=self.n_fft)[: self.win_len] * self.window
        out = self._out_tail + frame[: self.hop]
        self._out_tail = frame[self.hop:]
        return out
