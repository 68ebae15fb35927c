"""Level normalisation (AGC) of the beamformed signal, before the VAD.

A quiet array (a real 8-mic recording at about -50 dBFS) gave webrtcvad no utterance at all: its
detector has an energy floor. This raises quiet input towards ``target_dbfs`` and never lowers
loud input. The level it follows is that of the loudest recent frames (instant attack, release at
``release_db_per_s``), so speech sets the gain and pauses do not pump it; and the gain is capped so
the noise floor (the quietest recent frames) is never lifted above ``noise_ceiling_dbfs`` — a quiet
room stays quiet instead of becoming hiss the VAD might take for speech. The gain ramps across
each frame, so changes make no clicks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SILENCE_DBFS = -120.0
FLOOR_RISE_DB_PER_S = 1.0


@dataclass(frozen=True)
class AgcConfig:
    enabled: bool = field(default=True, metadata={"help": "raise quiet input before the VAD; loud input is never lowered"})
    target_dbfs: float = field(
        default=-26.0, metadata={"min": -60.0, "max": -3.0, "help": "level the loudest recent frames are raised to"})
    max_gain_db: float = field(default=30.0, metadata={"min": 0.0, "max": 60.0})
    release_db_per_s: float = field(
        default=3.0, metadata={"min": 0.1, "max": 60.0, "help": "how fast the followed level falls in pauses"})
    noise_ceiling_dbfs: float = field(
        default=-50.0, metadata={"min": -90.0, "max": -10.0, "help": "the noise floor is never raised above this"})


class LevelNormalizer:
    """``process(int16 (n, 1)) -> int16 (n, 1)``, one frame at a time; ``gain_db`` is the last gain."""

    def __init__(self, config: AgcConfig, sample_rate_hz: int):
        self.config = config
        self._rate_hz = sample_rate_hz
        self._level_db = SILENCE_DBFS
        self._floor_db = 0.0
        self.gain_db = 0.0

    def process(self, samples: np.ndarray) -> np.ndarray:
        x = samples.astype(np.float32)
        frame_db = max(SILENCE_DBFS, 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / 32768.0**2 + 1e-30))
        c = self.config
        frame_s = x.shape[0] / self._rate_hz
        self._level_db = max(frame_db, self._level_db - c.release_db_per_s * frame_s)
        self._floor_db = min(frame_db, self._floor_db + FLOOR_RISE_DB_PER_S * frame_s)
        wanted_db = min(c.target_dbfs - self._level_db, c.max_gain_db, c.noise_ceiling_dbfs - self._floor_db)
        previous_db, self.gain_db = self.gain_db, max(0.0, wanted_db)
        if previous_db == 0.0 and self.gain_db == 0.0:
            return samples
        ramp = 10 ** (np.linspace(previous_db, self.gain_db, x.shape[0], dtype=np.float32) / 20)
        return np.clip(np.round(x * ramp[:, None]), -32768, 32767).astype(np.int16)
