"""The box's own loudspeaker in a simulated room: what it plays reaches every mic (pyroomacoustics).

The hardware edge of the demo, the benches and the tests: ``speaker_sink`` is a sink like a device
(blocking writes, ``latency_s`` of buffer; optionally also writing each translation to WAV files),
and ``wrap_capture`` adds the convolved (and, for a cheap speaker, soft-clipped) playback to every
captured frame at the sample it reaches the mic. ``delay_error_ms`` makes the device play later
than it says, the reference error the echo canceller must find.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np

from agent.dsp.echo_reference import CaptureClock
from agent.hardware import ArrayGeometry
from agent.outputs.speaker_sinks import WavFileSink
from agent.simulation import RATE_HZ, room_centre
from parley_common.frames import Frame

DEFAULT_SPEAKER_M = (0.076, 0.0, -0.02)  # beside the array, as on the reference box
RING_S = 30.0


def speaker_rirs(geometry: ArrayGeometry, rt60_s: float, speaker_m=None,
                 room_dim_m: tuple[float, float, float] = (5.0, 4.0, 2.8)) -> np.ndarray:
    """Impulse responses (taps, mics) from the box's speaker to each mic, in the scenes' room."""
    import pyroomacoustics as pra

    room_dim = np.array(room_dim_m)
    centre = room_centre(room_dim)
    if rt60_s <= 0:
        room = pra.ShoeBox(room_dim, fs=RATE_HZ, max_order=0)
    else:
        absorption, max_order = pra.inverse_sabine(rt60_s, room_dim)
        room = pra.ShoeBox(room_dim, fs=RATE_HZ, materials=pra.Material(absorption), max_order=min(max_order, 17))
    room.add_microphone_array((centre + geometry.mic_positions_m).T)
    position = np.asarray(speaker_m if speaker_m is not None else geometry.speaker_position_m, dtype=float)
    room.add_source(centre + position)
    room.compute_rir()
    taps = max(len(room.rir[m][0]) for m in range(geometry.n_mics))
    rirs = np.zeros((taps, geometry.n_mics))
    for m in range(geometry.n_mics):
        rirs[:len(room.rir[m][0]), m] = room.rir[m][0]
    return rirs


class EchoRoom:
    """``rirs`` (taps, mics); ``gain`` scales the playback the way the scene scaled its talkers;
    ``clip`` (0..1 of full scale) soft-clips the loudspeaker; ``channel_order`` permutes the mics the
    way a rotated ReSpeaker would deliver them."""

    def __init__(self, rirs: np.ndarray, gain: float = 1.0, latency_s: float = 0.1, delay_error_ms: float = 0.0,
                 clip: float | None = None, channel_order: list[int] | None = None, rate_hz: int = RATE_HZ):
        self.rirs = rirs
        self.gain = gain
        self.latency_s = latency_s
        self.delay_error_samples = int(round(delay_error_ms * rate_hz / 1000))
        self.clip = clip
        self.channel_order = channel_order
        self.rate_hz = rate_hz
        self.clock = CaptureClock(rate_hz)
        self._ring = np.zeros(int(RING_S * rate_hz))
        self._lock = threading.Lock()
        self.emitted_until = 0

    def loudspeaker(self, samples: np.ndarray) -> np.ndarray:
        """The drive signal, soft-clipped by a cheap speaker (``clip`` of full scale), then the room's gain."""
        x = samples.astype(np.float64)
        if self.clip is not None:
            full = 32768.0 * self.clip
            x = full * np.tanh(x / full)
        return x * self.gain

    def emit(self, start: int, samples: np.ndarray) -> None:
        """Sound leaves the loudspeaker at capture sample ``start``."""
        with self._lock:
            index = (start + np.arange(len(samples))) % len(self._ring)
            self._ring[index] = self.loudspeaker(samples)
            self.emitted_until = max(self.emitted_until, start + len(samples))

    def echo(self, start: int, n: int) -> np.ndarray | None:
        """The echo (n, mics) in capture samples [start, start+n), or None when the room is quiet."""
        taps = self.rirs.shape[0]
        if self.emitted_until <= start - taps:
            return None
        with self._lock:
            index = np.arange(start - taps + 1, start + n)
            played = np.where(index >= 0, self._ring[index % len(self._ring)], 0.0)
            self._ring[np.arange(start - taps + 1, start - taps + 1 + n) % len(self._ring)] = 0.0  # heard out
        if not np.any(played):
            return None
        from scipy.signal import fftconvolve  # the demo and benches only (pyroomacoustics brings SciPy)

        return np.stack([fftconvolve(played, self.rirs[:, m], mode="valid") for m in range(self.rirs.shape[1])], axis=1)

    def speaker_sink(self, speaker_config=None) -> "RoomSink":
        return RoomSink(self, speaker_config)

    def wrap_capture(self, capture) -> "EchoCapture":
        return EchoCapture(capture, self)


class RoomSink:
    """Plays into the room at the capture rate, paced like a device with ``latency_s`` of buffer."""

    def __init__(self, room: EchoRoom, speaker_config=None):
        self.room = room
        self.rate_hz = room.rate_hz
        self.latency_s = room.latency_s
        self._files = WavFileSink(dataclasses.replace(speaker_config, realtime=False), room.rate_hz) \
            if speaker_config is not None and speaker_config.backend == "wav" else None
        self._cursor: int | None = None
        self.underruns = 0

    def begin(self, label: str, rate_hz: int | None = None) -> None:
        self._cursor = None
        if self._files is not None:
            self._files.begin(label, self.rate_hz)  # (no file for the self-check's chirp)

    def write(self, chunk: np.ndarray) -> None:
        if self._files is not None:
            self._files.write(chunk)
        now_sample = self.room.clock.sample_at(time.monotonic())
        if now_sample is None:  # nothing captures yet: the sound is lost, but it takes its time
            time.sleep(len(chunk) / self.rate_hz)
            return
        if self._cursor is None or self._cursor - self.room.delay_error_samples < now_sample:  # first or underrun
            self.underruns += self._cursor is not None
            self._cursor = int(now_sample + self.latency_s * self.rate_hz) + self.room.delay_error_samples
        self.room.emit(self._cursor, chunk)
        self._cursor += len(chunk)
        due = self.room.clock.monotonic_at(self._cursor - self.room.delay_error_samples - self.latency_s * self.rate_hz)
        if due is not None and due > time.monotonic():
            time.sleep(due - time.monotonic())

    def finish(self, abort: bool = False) -> None:
        if self._files is not None:
            self._files.finish()

    def close(self) -> None:
        self.finish()


class EchoCapture:
    """A capture source whose frames also carry the loudspeaker's echo (same interface as the inner one)."""

    def __init__(self, inner, room: EchoRoom):
        self._inner = inner
        self.room = room

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def read(self, timeout_s: float) -> Frame | None:
        frame = self._inner.read(timeout_s)
        if frame is None:
            return None
        self.room.clock.observe(frame.end_sample, time.monotonic())
        samples = frame.samples.astype(np.float64)
        echo = self.room.echo(frame.start_sample, frame.n_samples)
        if echo is not None:
            samples = samples + echo
        if self.room.channel_order is not None:
            samples = samples[:, self.room.channel_order]
        mixed = np.clip(np.round(samples), -32768, 32767).astype(np.int16)
        return Frame(mixed, frame.start_sample, frame.sample_rate_hz)
