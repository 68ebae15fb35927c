"""The echo canceller's reference: exactly what the speaker played, on the capture clock.

The speaker thread writes every chunk it hands the device (after ducking), resampled to the capture
rate, together with the monotonic time that chunk will leave the device. ``CaptureClock`` maps that
time to a capture sample index; within one playback the chunks are laid down contiguously (the
device plays without gaps), so scheduling jitter of the speaker thread never tears the reference.
The pipeline reads the span of each capture frame shifted by the measured playback->capture delay
(``DelayTracker``, cross-correlation of reference and mic 0), fed ``lead`` early so the reference
is never later than its echo.
"""

from __future__ import annotations

import threading
import time

import numpy as np

UNDERRUN_MARGIN_S = 0.005


class CaptureClock:
    """Monotonic time <-> capture sample index, from when frames arrive.

    A frame can arrive late (queued behind a slow stage) but never before it was captured, so the
    earliest arrival seen is the best estimate; it relaxes slowly so clock drift is followed.
    """

    def __init__(self, rate_hz: int, relax_s_per_frame: float = 2e-5):
        self.rate_hz = rate_hz
        self._origin_s: float | None = None  # monotonic time of capture sample 0
        self._relax_s = relax_s_per_frame

    def observe(self, end_sample: int, arrival_monotonic_s: float) -> None:
        origin = arrival_monotonic_s - end_sample / self.rate_hz
        self._origin_s = origin if self._origin_s is None else min(origin, self._origin_s + self._relax_s)

    def sample_at(self, monotonic_s: float) -> float | None:
        return None if self._origin_s is None else (monotonic_s - self._origin_s) * self.rate_hz

    def monotonic_at(self, sample: float) -> float | None:
        return None if self._origin_s is None else self._origin_s + sample / self.rate_hz


class ReferenceTimeline:
    """A ring of reference samples indexed by capture sample; one writer (speaker), one reader (pipeline)."""

    def __init__(self, clock: CaptureClock, capacity_s: float = 8.0):
        self.clock = clock
        self._ring = np.zeros(int(capacity_s * clock.rate_hz), dtype=np.int16)
        self._lock = threading.Lock()
        self._written_until = 0  # capture index one past the last written sample
        self._cursor: int | None = None  # where the current playback continues; None between playbacks
        self.playing = False
        self.last_write_monotonic_s = 0.0
        self.reanchors = 0

    def write(self, samples: np.ndarray, play_monotonic_s: float, buffered_s: float = 0.0) -> None:
        """``samples`` int16 at the capture rate, leaving the device at ``play_monotonic_s`` if its
        buffer (``buffered_s`` deep) had run dry. While it has not, the piece follows the last one;
        a write later than the buffer could cover is an underrun: the device played silence meanwhile."""
        timed = self.clock.sample_at(play_monotonic_s)
        if timed is None:
            return  # no capture yet: nothing can be aligned (and nothing hears it)
        with self._lock:
            self.playing = True
            self.last_write_monotonic_s = time.monotonic()
            underrun = self._cursor is not None and timed - self._cursor > (buffered_s + UNDERRUN_MARGIN_S) * self.clock.rate_hz
            if self._cursor is None or underrun:
                self.reanchors += underrun
                self._cursor = max(int(round(timed)), self._written_until if self._cursor is not None else 0)
            self._put(self._cursor, samples)
            self._cursor += len(samples)

    def end_playback(self) -> None:
        with self._lock:
            self.playing = False
            self._cursor = None

    def _put(self, start: int, samples: np.ndarray) -> None:
        size = len(self._ring)
        if start > self._written_until:  # silence between playbacks
            gap = min(start - self._written_until, size)
            self._store(start - gap, np.zeros(gap, dtype=np.int16))
        self._store(start, samples[-size:])
        self._written_until = max(self._written_until, start + len(samples))

    def _store(self, start: int, samples: np.ndarray) -> None:
        size = len(self._ring)
        index = (start + np.arange(len(samples))) % size
        self._ring[index] = samples

    def read(self, start: int, n: int) -> tuple[np.ndarray, int]:
        """The reference for capture samples [start, start+n), and how many of them are missing
        although a playback is running (the reference is late: the caller falls back to the gate)."""
        with self._lock:
            size = len(self._ring)
            out = np.zeros(n, dtype=np.int16)
            lo, hi = max(start, self._written_until - size), min(start + n, self._written_until)
            if hi > lo:
                out[lo - start:hi - start] = self._ring[np.arange(lo, hi) % size]
            missing = max(0, start + n - max(hi, start)) if self.playing else 0
            return out, missing


class DelayTracker:
    """Measures where the echo sits relative to the reference as read, over windows of playback.

    ``observe`` gets the reference as fed and mic 0 as captured; every ``window`` samples of
    far-end activity it cross-correlates them (phase transform, so the speech spectrum does not
    smear the peak) and returns the echo's lag in samples when the peak is clear and the window
    before found the same, else None (a chance peak between unrelated signals moves nothing).
    """

    def __init__(self, window_samples: int, max_lag_samples: int, min_lag_samples: int, clarity: float = 12.0,
                 agree_samples: int = 16):
        self.window = window_samples
        self.max_lag = max_lag_samples
        self.min_lag = min_lag_samples
        self.clarity = clarity
        self._ref: list[np.ndarray] = []
        self._mic: list[np.ndarray] = []
        self._count = 0
        self._agree = agree_samples
        self._last: int | None = None  # a lag is believed when two windows in a row agree on it

    def observe(self, reference: np.ndarray, mic: np.ndarray) -> int | None:
        if not np.any(reference):
            return None
        self._ref.append(reference.astype(np.float32))
        self._mic.append(mic.astype(np.float32))
        self._count += len(reference)
        if self._count < self.window:
            return None
        ref, mic_all = np.concatenate(self._ref), np.concatenate(self._mic)
        self._ref, self._mic, self._count = [], [], 0
        lag = measure_lag(ref, mic_all, self.min_lag, self.max_lag, self.clarity)
        agreed = lag is not None and self._last is not None and abs(lag - self._last) <= self._agree
        self._last = lag
        return lag if agreed else None


def measure_lag(reference: np.ndarray, mic: np.ndarray, min_lag: int, max_lag: int, clarity: float = 6.0) -> int | None:
    """Lag (samples) by which ``mic`` follows ``reference``, within [min_lag, max_lag]; None if unclear."""
    n = 1 << int(np.ceil(np.log2(len(reference) + max(abs(min_lag), max_lag) + 1)))
    spectrum = np.fft.rfft(mic, n) * np.conj(np.fft.rfft(reference, n))
    spectrum /= np.abs(spectrum) + 1e-9 * np.max(np.abs(spectrum)) + 1e-20
    cc = np.fft.irfft(spectrum, n)
    lags = np.arange(min_lag, max_lag + 1)
    values = np.abs(cc[lags % n])
    best = int(np.argmax(values))
    floor = np.median(values) + 1e-12
    return int(lags[best]) if values[best] / floor >= clarity else None
