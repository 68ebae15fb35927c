"""The unit of audio that flows through the agent's front end and the gateway's endpointing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Frame:
    """A fixed-duration block of int16 audio.

    ``samples`` has shape (n_samples, n_channels) even for mono, so every stage can rely on
    ``samples.shape[1]``. ``start_sample`` counts samples since capture started at
    ``sample_rate_hz``; it is monotonic and gap-free unless samples were lost (overrun), so later
    stages can timestamp exactly without a wall clock.
    """

    samples: np.ndarray
    start_sample: int
    sample_rate_hz: int

    def __post_init__(self) -> None:
        if self.samples.ndim != 2 or self.samples.dtype != np.int16:
            raise ValueError(
                f"Frame samples must be a 2-D int16 array, got {self.samples.dtype} {self.samples.shape}"
            )

    @property
    def n_samples(self) -> int:
        return self.samples.shape[0]

    @property
    def channels(self) -> int:
        return self.samples.shape[1]

    @property
    def end_sample(self) -> int:
        return self.start_sample + self.n_samples

    @property
    def duration_ms(self) -> float:
        return 1000.0 * self.n_samples / self.sample_rate_hz

    def mono(self, channel: int = 0) -> np.ndarray:
        """One channel as a 1-D int16 array."""
        return self.samples[:, channel]
