"""Talker direction: SRP-PHAT on an azimuth grid, fed only with frames the VAD calls speech.

For mic pair (i, j) the PHAT-weighted cross-spectrum is R_ij(f) = X_i X_j* / |X_i X_j*|. A plane
wave from θ makes it ≈ exp(-j2πf(t_i(θ) - t_j(θ))), so the steered response power

    P(θ) = Σ_pairs Σ_f Re{ R̄_ij(f) · exp(+j2πf(t_i(θ) - t_j(θ))) }

peaks at the talker. R̄ is an exponentially weighted average over speech frames only — noise-only
frames would pull the peak towards a noise source. Within a speech frame PHAT gives every bin the
same vote, and most bins of a speech frame hold only noise, so a bin votes only when its power at
mic 0 stands ``mask_snr_db`` above the noise floor learned from non-speech frames. The estimate is the grid maximum refined by a
parabola through its neighbours; the confidence is how far the peak stands above the mean
(0 = flat, 1 = a single perfectly coherent source).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from agent.dsp.geometry_math import arrival_delays_s
from agent.hardware import ArrayGeometry


@dataclass(frozen=True)
class DoaConfig:
    grid_step_deg: float = field(default=1.0, metadata={"min": 0.25, "max": 10.0, "help": "azimuth grid resolution"})
    min_freq_hz: float = field(default=300.0, metadata={"min": 50.0, "help": "lowest frequency used"})
    max_freq_hz: float = field(default=4000.0, metadata={"max": 8000.0, "help": "highest frequency used"})
    memory_ms: float = field(
        default=600.0, metadata={"min": 50.0, "help": "time constant of the speech cross-spectrum average"})
    update_ms: float = field(default=40.0, metadata={"min": 10.0, "help": "how often the estimate is recomputed"})
    mask_snr_db: float = field(
        default=6.0, metadata={"min": -20.0, "max": 40.0, "help": "a bin votes when this far above the noise floor"})
    noise_memory_ms: float = field(default=2000.0, metadata={"min": 50.0, "help": "noise floor time constant"})


class SrpPhatDoa:
    def __init__(self, config: DoaConfig, geometry: ArrayGeometry, sample_rate_hz: int, n_fft: int, hop_samples: int):
        self.config = config
        freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate_hz)
        self._bins = np.flatnonzero((freqs >= config.min_freq_hz) & (freqs <= config.max_freq_hz))
        self.grid_deg = np.arange(0.0, 360.0, config.grid_step_deg)
        mics = geometry.n_mics
        self._pairs_i, self._pairs_j = np.triu_indices(mics, k=1)
        delays = arrival_delays_s(geometry.mic_positions_m, self.grid_deg)  # (grid, mics)
        pair_delay = delays[:, self._pairs_i] - delays[:, self._pairs_j]  # (grid, pairs)
        phase = 2 * np.pi * freqs[self._bins][None, None, :] * pair_delay[:, :, None]
        self._steer = np.exp(1j * phase).reshape(len(self.grid_deg), -1).astype(np.complex64)
        hop_ms = 1000.0 * hop_samples / sample_rate_hz
        self._alpha = float(np.exp(-hop_ms / config.memory_ms))
        self._noise_alpha = float(np.exp(-hop_ms / config.noise_memory_ms))
        self._noise_floor = np.full(len(self._bins), np.nan)
        self._mask_ratio = 10 ** (config.mask_snr_db / 10)
        self._update_hops = max(1, int(round(config.update_ms / hop_ms)))
        self._cross = np.zeros((len(self._pairs_i), len(self._bins)), dtype=np.complex64)
        self._weight = 0.0
        self._pending = 0
        self.azimuth_deg: float | None = None
        self.confidence = 0.0

    def add_noise(self, spectrum: np.ndarray) -> None:
        """Learn the per-bin noise floor at mic 0 from a non-speech STFT frame."""
        power = np.abs(spectrum[self._bins, 0]) ** 2
        if np.isnan(self._noise_floor[0]):
            self._noise_floor = power
        else:
            self._noise_floor = self._noise_alpha * self._noise_floor + (1 - self._noise_alpha) * power

    def add_speech(self, spectrum: np.ndarray) -> None:
        """Fold one speech STFT frame (n_bins, mics) into the average; re-estimate every update_ms."""
        x = spectrum[self._bins]
        cross = x[:, self._pairs_i] * np.conj(x[:, self._pairs_j])
        cross /= np.abs(cross) + 1e-12
        if not np.isnan(self._noise_floor[0]):
            cross *= (np.abs(x[:, 0]) ** 2 > self._mask_ratio * self._noise_floor)[:, None]
        self._cross *= self._alpha
        self._cross += (1 - self._alpha) * cross.T
        self._weight = self._alpha * self._weight + (1 - self._alpha)
        self._pending += 1
        if self._pending >= self._update_hops:
            self._pending = 0
            self._estimate()

    def steered_power(self) -> np.ndarray:
        """P(θ) over the grid, normalised by the number of pairs and bins."""
        return (self._steer @ self._cross.reshape(-1)).real / (self._cross.size * max(self._weight, 1e-9))

    def _estimate(self) -> None:
        power = self.steered_power()
        k = int(np.argmax(power))
        left, centre, right = power[k - 1], power[k], power[(k + 1) % len(power)]
        denom = left - 2 * centre + right
        offset = 0.5 * (left - right) / denom if denom < 0 else 0.0
        self.azimuth_deg = float((self.grid_deg[k] + offset * self.config.grid_step_deg) % 360.0)
        self.confidence = float(np.clip(centre - power.mean(), 0.0, 1.0))
