"""Talker direction: noise-whitened NormMUSIC on an azimuth grid, fed only with speech frames.

Per frequency bin f two spatial covariances are averaged: R_s(f) over frames the VAD calls speech
and R_n(f) over the others. A talker from θ makes R_s ≈ σ² a(θ)a(θ)^H + R_n with the far-field
steering vector a_m(θ) = exp(-j2πf t_m(θ)), so after whitening with the Cholesky factor of the
(diagonally loaded) noise covariance, R_n + ε·tr(R_n)/M·I = L L^H,

    R̃_s = L^-1 R_s L^-H,   ã(θ) = L^-1 a(θ),

the principal eigenvector u of R̃_s points along ã(θ_talker) even when a loud interferer sits in
R_n: whitening flattens the interferer, which plain SRP-PHAT cannot do (it loses a 10 dB
dishwasher 90° away). The per-bin MUSIC pseudo-spectrum with one source

    P_f(θ) = ||ã||² / (||ã||² - |u^H ã|²)

is normalised to a maximum of 1 per bin (NormMUSIC: every bin gets one vote of the same size),
and the bins are summed weighted by s/(1+s), s = λ₁/mean(λ_rest) - 1 the whitened speech-to-noise
ratio, so bins without speech barely vote. ε (``whitening_loading``, 0.3) keeps the whitening
partial: full whitening also erases a talker standing opposite an interferer on a small array,
where a(θ+180°) = conj(a(θ)) is nearly a(θ) at low frequencies, and makes the estimate follow every
change of a non-stationary noise; at ε = 1 the interferer wins again at 0–5 dB. The estimate is the
grid maximum refined by a parabola; the confidence is how far the peak stands above the mean (0 flat,
1 ideal).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from agent.dsp.geometry_math import steering_vectors
from agent.hardware import ArrayGeometry

POWER_ITERATIONS = 4


@dataclass(frozen=True)
class DoaConfig:
    grid_step_deg: float = field(default=1.0, metadata={"min": 0.25, "max": 10.0, "help": "azimuth grid resolution"})
    min_freq_hz: float = field(default=300.0, metadata={"min": 50.0, "help": "lowest frequency used"})
    max_freq_hz: float = field(default=4000.0, metadata={"max": 8000.0, "help": "highest frequency used"})
    memory_ms: float = field(
        default=1500.0, metadata={"min": 50.0, "help": "time constant of the speech covariance average"})
    update_ms: float = field(default=80.0, metadata={"min": 10.0, "help": "how often the estimate is recomputed"})
    noise_memory_ms: float = field(
        default=2000.0, metadata={"min": 50.0, "help": "time constant of the noise covariance average"})
    forget_after_silence_ms: float | None = field(
        default=None, metadata={"min": 20.0, "help": "speech after this much silence starts a fresh estimate (a new talker may be speaking); null: the last talker's carries over (a conversation with two or more parties uses 300)"})
    whitening_loading: float = field(
        default=0.3, metadata={"min": 1e-4, "max": 10.0,
                               "help": "diagonal loading of the noise covariance, relative to its mean power"})


class WhitenedMusicDoa:
    """``add_noise(spectrum)`` / ``add_speech(spectrum)`` with (n_bins, mics) STFT frames; read
    ``azimuth_deg`` (None until the first speech) and ``confidence``."""

    def __init__(self, config: DoaConfig, geometry: ArrayGeometry, sample_rate_hz: int, n_fft: int, hop_samples: int):
        self.config = config
        freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate_hz)
        self._bins = np.flatnonzero((freqs >= config.min_freq_hz) & (freqs <= config.max_freq_hz))
        self.grid_deg = np.arange(0.0, 360.0, config.grid_step_deg)
        steer = steering_vectors(geometry.mic_positions_m, self.grid_deg, freqs[self._bins])  # (grid, bins, mics)
        self._steer = np.ascontiguousarray(steer.transpose(1, 2, 0)).astype(np.complex64)  # (bins, mics, grid)
        self._mics = geometry.n_mics
        hop_ms = 1000.0 * hop_samples / sample_rate_hz
        self._alpha = float(np.exp(-hop_ms / config.memory_ms))
        self._noise_alpha = float(np.exp(-hop_ms / config.noise_memory_ms))
        self._update_hops = max(1, int(round(config.update_ms / hop_ms)))
        eye = np.eye(self._mics, dtype=np.complex64)
        self._speech_cov = np.zeros((len(self._bins), self._mics, self._mics), dtype=np.complex64)
        self._noise_cov = np.tile(eye, (len(self._bins), 1, 1))
        self._noise_frames = 0
        self._whitening: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (L^-1, ã, ||ã||²)
        self._principal = np.full((len(self._bins), self._mics), 1 / np.sqrt(self._mics), dtype=np.complex64)
        self._pending = 0
        self.azimuth_deg: float | None = None
        self.confidence = 0.0

    def add_noise(self, spectrum: np.ndarray) -> None:
        """Fold a non-speech STFT frame into the noise covariance."""
        x = spectrum[self._bins]
        outer = x[:, :, None] * np.conj(x[:, None, :])
        alpha = min(self._noise_alpha, self._noise_frames / (self._noise_frames + 1))  # a plain mean at first
        self._noise_cov *= alpha
        self._noise_cov += (1 - alpha) * outer
        self._noise_frames += 1
        self._whitening = None

    def forget_speech(self) -> None:
        """Start the speech average afresh: the next estimate comes from the new talker only, instead of
        needing ``memory_ms`` of their speech to outweigh the previous talker's."""
        self._speech_cov[:] = 0
        self._pending = 0

    def add_speech(self, spectrum: np.ndarray) -> None:
        """Fold one speech STFT frame into the speech covariance; re-estimate every ``update_ms``."""
        x = spectrum[self._bins]
        self._speech_cov *= self._alpha
        self._speech_cov += (1 - self._alpha) * (x[:, :, None] * np.conj(x[:, None, :]))
        self._pending += 1
        if self._pending >= self._update_hops:
            self._pending = 0
            self._estimate()

    def pseudo_spectrum(self) -> np.ndarray:
        """The bin-weighted NormMUSIC spectrum over the grid, in [0, 1]."""
        whiten, steer, steer_power = self._whitened_steering()
        covariance = whiten @ self._speech_cov @ np.conj(np.swapaxes(whiten, 1, 2))
        principal, largest = self._principal_eigenpair(covariance)
        product = (np.conj(principal)[:, None, :] @ steer)[:, 0, :]
        projection = product.real ** 2 + product.imag ** 2
        music = steer_power / np.maximum(steer_power - projection, 1e-6 * steer_power)
        music /= music.max(axis=1, keepdims=True)
        trace = np.real(np.trace(covariance, axis1=1, axis2=2))
        rest = np.maximum((trace - largest) / (self._mics - 1), 1e-12)
        excess = np.clip(largest / rest - 1.0, 0.0, None)
        weight = excess / (1.0 + excess)
        return (weight @ music) / max(float(weight.sum()), 1e-9)

    def _principal_eigenpair(self, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Largest eigenvalue and its eigenvector per bin by power iteration, warm-started from the
        previous update: the covariance moves slowly, so a few steps track it at a tenth of eigh's cost."""
        vector = self._principal
        for _ in range(POWER_ITERATIONS):
            vector = (covariance @ vector[:, :, None])[:, :, 0]
            vector /= np.linalg.norm(vector, axis=1, keepdims=True) + 1e-30
        self._principal = vector
        largest = np.real((np.conj(vector)[:, None, :] @ covariance @ vector[:, :, None])[:, 0, 0])
        return vector, largest

    def _whitened_steering(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """L^-1, ã = L^-1 a and ||ã||², cached until the noise covariance changes (not during speech)."""
        if self._whitening is None:
            power = np.real(np.trace(self._noise_cov, axis1=1, axis2=2)) / self._mics + 1e-12
            loaded = self._noise_cov + (self.config.whitening_loading * power)[:, None, None] * np.eye(self._mics)
            whiten = np.linalg.inv(np.linalg.cholesky(loaded)).astype(np.complex64)
            steer = whiten @ self._steer
            self._whitening = whiten, steer, np.sum(np.abs(steer) ** 2, axis=1)
        return self._whitening

    def _estimate(self) -> None:
        power = self.pseudo_spectrum()
        k = int(np.argmax(power))
        left, centre, right = power[k - 1], power[k], power[(k + 1) % len(power)]
        denom = left - 2 * centre + right
        offset = 0.5 * (left - right) / denom if denom < 0 else 0.0
        self.azimuth_deg = float((self.grid_deg[k] + offset * self.config.grid_step_deg) % 360.0)
        self.confidence = float(np.clip(centre - power.mean(), 0.0, 1.0))
