"""Far-field steering math shared by the DOA estimator and the beamformers."""

from __future__ import annotations

import numpy as np

SPEED_OF_SOUND_M_S = 343.0


def unit_vectors(azimuths_deg: np.ndarray) -> np.ndarray:
    """Horizontal unit vectors (n, 3) pointing *towards* the source at each azimuth."""
    a = np.deg2rad(np.asarray(azimuths_deg, dtype=float))
    return np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], axis=-1)


def arrival_delays_s(mic_positions_m: np.ndarray, azimuths_deg: np.ndarray) -> np.ndarray:
    """Plane-wave arrival time at each mic relative to the array origin, shape (n_az, n_mics).

    A mic displaced towards the source hears it earlier: t_m(θ) = -p_m · u(θ) / c.
    """
    return -(unit_vectors(azimuths_deg) @ mic_positions_m.T) / SPEED_OF_SOUND_M_S


def steering_vectors(mic_positions_m: np.ndarray, azimuths_deg: np.ndarray, freqs_hz: np.ndarray) -> np.ndarray:
    """d[a, f, m] = exp(-j 2π f t_m(θ_a)): the array's response to a unit plane wave."""
    delays = arrival_delays_s(mic_positions_m, azimuths_deg)
    return np.exp(-2j * np.pi * freqs_hz[None, :, None] * delays[:, None, :])
