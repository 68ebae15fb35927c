"""STFT-domain beamformers: ``none`` (mic 0), ``das`` and ``mvdr``, all steered by azimuth.

Output Y(f) = w(f)^H X(f) with the steering vector d(f) = exp(-j2πf t_m(θ)):

- DAS: w = d / M. Spatially white noise is attenuated by 10·log10(M) dB.
- MVDR: w = (R_n + λI)^-1 d / (d^H (R_n + λI)^-1 d), distortionless towards θ and minimum noise
  power otherwise. R_n is averaged over non-speech frames only. The diagonal loading λ is raised
  per bin until the white-noise gain |w^H d|² / ||w||² is at least ``min_white_noise_gain`` (default
  1 = a single mic), so sensor noise and steering errors can never make it worse than one mic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from agent.dsp.geometry_math import steering_vectors
from agent.hardware import ArrayGeometry


@dataclass(frozen=True)
class BeamformerConfig:
    type: Literal["none", "das", "mvdr"] = "mvdr"
    fixed_azimuth_deg: float | None = field(
        default=None, metadata={"min": 0.0, "max": 360.0, "help": "steer here instead of following the DOA"})
    noise_memory_ms: float = field(
        default=1500.0, metadata={"min": 50.0, "help": "time constant of the MVDR noise covariance"})
    min_white_noise_gain: float = field(
        default=1.0, metadata={"min": 0.1, "help": "MVDR robustness floor, linear (1 = one mic)"})
    resteer_deg: float = field(default=2.0, metadata={"min": 0.0, "help": "re-steer when the DOA moves this much"})
    update_ms: float = field(default=200.0, metadata={"min": 10.0, "help": "MVDR weight recomputation interval"})


class Beamformer:
    """``process(spectrum, azimuth_deg, is_noise) -> mono spectrum``; one instance per stream."""

    def __init__(self, config: BeamformerConfig, geometry: ArrayGeometry, sample_rate_hz: int, n_fft: int,
                 hop_samples: int):
        self.config = config
        self.kind = config.type if geometry.is_spatial else "none"
        self._positions = geometry.mic_positions_m
        self._freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate_hz)
        self._mics = geometry.n_mics
        hop_ms = 1000.0 * hop_samples / sample_rate_hz
        self._alpha = float(np.exp(-hop_ms / config.noise_memory_ms))
        self._update_hops = max(1, int(round(config.update_ms / hop_ms)))
        self._noise_cov = np.tile(np.eye(self._mics, dtype=np.complex128), (len(self._freqs), 1, 1)) * 1e-6
        self._noise_frames = 0
        self._hops_since_update = 0
        self._steered_deg: float | None = None
        self._steer: np.ndarray | None = None
        self.weights: np.ndarray | None = None  # (bins, mics); Y = sum(conj(w) * X)

    def process(self, spectrum: np.ndarray, azimuth_deg: float | None, is_noise: bool) -> np.ndarray:
        if self.kind == "none":
            return spectrum[:, 0]
        if self.config.fixed_azimuth_deg is not None:
            azimuth_deg = self.config.fixed_azimuth_deg
        if self.kind == "mvdr" and is_noise:
            outer = spectrum[:, :, None] * np.conj(spectrum[:, None, :])
            self._noise_cov = self._alpha * self._noise_cov + (1 - self._alpha) * outer
            self._noise_frames += 1
        self._hops_since_update += 1
        if azimuth_deg is None:
            return spectrum[:, 0]
        if self._needs_resteer(azimuth_deg) or (
                self.kind == "mvdr" and self._hops_since_update >= self._update_hops):
            self._update_weights(azimuth_deg)
        weights = self.weights
        assert weights is not None  # the first azimuth always steers (_needs_resteer), which sets them
        return np.einsum("fm,fm->f", np.conj(weights), spectrum)

    def _needs_resteer(self, azimuth_deg: float) -> bool:
        if self._steered_deg is None:
            return True
        diff = abs((azimuth_deg - self._steered_deg + 180.0) % 360.0 - 180.0)
        return diff > self.config.resteer_deg

    def _update_weights(self, azimuth_deg: float) -> None:
        self._hops_since_update = 0
        if self._needs_resteer(azimuth_deg):
            self._steered_deg = azimuth_deg
            self._steer = steering_vectors(self._positions, np.array([azimuth_deg]), self._freqs)[0]
        d = self._steer
        assert d is not None  # steered above on the first update
        if self.kind == "das" or self._noise_frames < self._update_hops:
            self.weights = d / self._mics
            return
        self.weights = mvdr_weights(self._noise_cov, d, self.config.min_white_noise_gain)


def mvdr_weights(noise_cov: np.ndarray, steer: np.ndarray, min_wng: float, max_iterations: int = 6) -> np.ndarray:
    """Per-bin MVDR weights with diagonal loading raised until the white-noise gain ≥ ``min_wng``."""
    mics = steer.shape[1]
    power = np.real(np.trace(noise_cov, axis1=1, axis2=2)) / mics + 1e-12
    loading = np.full(len(steer), 1e-3)
    eye = np.eye(mics)
    weights = steer / mics
    todo = np.ones(len(steer), dtype=bool)
    for _ in range(max_iterations):
        idx = np.flatnonzero(todo)
        if idx.size == 0:
            break
        cov = noise_cov[idx] + (loading[idx] * power[idx])[:, None, None] * eye
        numer = np.linalg.solve(cov, steer[idx][:, :, None])[:, :, 0]
        w = numer / np.einsum("fm,fm->f", np.conj(steer[idx]), numer)[:, None]
        wng = 1.0 / np.real(np.einsum("fm,fm->f", np.conj(w), w))  # |w^H d|² = 1 by construction
        ok = wng >= min_wng
        weights[idx[ok]] = w[ok]
        todo[idx[ok]] = False
        loading[idx[~ok]] *= 10.0
    # Bins that never met the floor fall back to DAS, whose white-noise gain is M.
    weights[todo] = steer[todo] / mics
    return weights
