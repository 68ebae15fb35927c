"""Capture sources: the start of the pipeline. One interface, a WAV-file and a PortAudio backend.

Every source yields ``Frame``s of ``frame_ms`` at the processing rate, already channel-mapped to
the array's mics, with a ``start_sample`` that advances by exactly one frame per frame — and by the
wall-clock time lost when a device had to be reopened, so timestamps stay honest.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import numpy as np

from agent.audio.config import CaptureConfig
from agent.audio.devices import DeviceInfo, DeviceNotFound, find_input_device, open_pyaudio
from agent.queues import QUEUES
from parley_common.frames import Frame
from agent.audio.resample import StreamResampler
from agent.audio.wavreader import WavFormatError, WavReader
from agent.hardware import MAX_HARDWARE_CHANNELS, ArrayGeometry, channel_mismatch

if TYPE_CHECKING:
    import pyaudio

log = logging.getLogger("parley.capture")

SILENT_CHANNEL_CHECK_S = 1.0
NEAR_SILENCE_DBFS = -70.0  # even a quiet room through a working mic is louder than this
STALL_TIMEOUT_S = 2.0


class CaptureError(RuntimeError):
    """The configured source cannot be opened (bad file, no such device)."""


class ChannelMismatch(CaptureError):
    """The stream has more channels than the array profile: the wrong profile, which no retry fixes."""


class _Framer:
    """Maps channels, resamples and cuts fixed-size frames; counts processing-rate samples."""

    def __init__(self, config: CaptureConfig, geometry: ArrayGeometry, native_rate_hz: int):
        self.channel_map = list(geometry.channel_map)
        self.rate_hz = config.sample_rate_hz
        self.frame_samples = config.sample_rate_hz * config.frame_ms // 1000
        self.native_rate_hz = native_rate_hz
        self._resampler = StreamResampler(native_rate_hz, config.sample_rate_hz, len(self.channel_map))
        self._pending = np.zeros((0, len(self.channel_map)), dtype=np.int16)
        self.next_sample = 0
        self._health = _ChannelHealth(geometry, config.sample_rate_hz)

    def push(self, block: np.ndarray, last: bool = False) -> list[Frame]:
        """``block``: int16 (n, stream_channels) at the native rate; ``last`` drains the resampler."""
        mapped = self._resampler.process(block[:, self.channel_map], last=last)
        self._pending = np.concatenate([self._pending, mapped]) if self._pending.size else mapped
        frames = []
        while self._pending.shape[0] >= self.frame_samples:
            samples = np.ascontiguousarray(self._pending[: self.frame_samples])
            self._pending = self._pending[self.frame_samples:]
            frames.append(Frame(samples, self.next_sample, self.rate_hz))
            self.next_sample += self.frame_samples
            self._health.observe(samples)
        return frames

    def skip(self, seconds: float) -> None:
        """Advance the sample clock over audio that was never captured (device lost)."""
        self.next_sample += int(round(seconds * self.rate_hz))
        self._pending = self._pending[:0]
        self._resampler = StreamResampler(self.native_rate_hz, self.rate_hz, len(self.channel_map))


class _ChannelHealth:
    """Logs each mic's level after the first second and warns about digitally silent mic channels.

    AC108-based HATs sometimes come up with their channel order rotated: a loopback or dead
    channel then sits where the profile expects a mic. Saying so in the journal beats a silently
    wrong direction estimate.
    """

    def __init__(self, geometry: ArrayGeometry, rate_hz: int):
        self._geometry = geometry
        self._needed = int(SILENT_CHANNEL_CHECK_S * rate_hz)
        self._sum_sq = np.zeros(geometry.n_mics)
        self._peak = np.zeros(geometry.n_mics, dtype=np.int64)
        self._seen = 0
        self.silent_channels: list[int] | None = None

    def observe(self, samples: np.ndarray) -> None:
        if self.silent_channels is not None:
            return
        self._sum_sq += np.sum(samples.astype(np.float64) ** 2, axis=0)
        self._peak = np.maximum(self._peak, np.max(np.abs(samples.astype(np.int64)), axis=0))
        self._seen += samples.shape[0]
        if self._seen >= self._needed:
            rms_dbfs = 10 * np.log10(self._sum_sq / self._seen / 32768.0**2 + 1e-20)
            levels = ", ".join(f"ch{c}={db:.0f}dBFS" for c, db in zip(self._geometry.channel_map, rms_dbfs))
            log.info("mic levels over the first %.0f s: %s", SILENT_CHANNEL_CHECK_S, levels)
            if np.max(rms_dbfs) < NEAR_SILENCE_DBFS:
                log.warning(
                    "the input is near silence (loudest mic %.0f dBFS over the first %.0f s): is the capture gain "
                    "turned down (alsamixer) or the array muted? The front end's AGC lifts at most "
                    "frontend.agc.max_gain_db", np.max(rms_dbfs), SILENT_CHANNEL_CHECK_S)
            self.silent_channels = [c for c, peak in zip(self._geometry.channel_map, self._peak) if peak == 0]
            if self.silent_channels:
                log.warning(
                    "stream channel(s) %s are digitally silent but profile %r maps them to mics: "
                    "is the channel order shifted or a mic unplugged?", self.silent_channels, self._geometry.name)


class CaptureSource(ABC):
    """``start()``, then ``read()`` frames from one thread, then ``close()``."""

    def __init__(self) -> None:
        self.state = "stopped"
        self.last_error = ""
        self.overruns = 0
        self.reopens = 0

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def read(self, timeout_s: float) -> Frame | None:
        """The next frame; None on timeout, while reopening, or once the source has ended."""

    @abstractmethod
    def close(self) -> None: ...


class WavSource(CaptureSource):
    """A multichannel WAV file (any encoding ``WavReader`` takes), in real time or as fast as the
    reader asks; optionally looped."""

    def __init__(self, config: CaptureConfig, geometry: ArrayGeometry):
        super().__init__()
        self.config = config
        path = config.wav.path
        assert path is not None  # CaptureConfig refuses source 'wav' without wav.path
        self.path = path
        try:
            self._wav = WavReader(self.path)
        except WavFormatError as exc:
            raise CaptureError(f"capture.wav.path: {exc}") from None
        self.channels = self._wav.channels
        if max(geometry.channel_map) >= self.channels:
            self._wav.close()
            raise CaptureError(
                f"{self.path} has {self.channels} channel(s) but array {geometry.name!r} maps channel "
                f"{max(geometry.channel_map)}")
        mismatch = channel_mismatch(geometry, self.channels, self.path)
        if mismatch:
            self._wav.close()
            raise ChannelMismatch(mismatch)
        self._framer = _Framer(config, geometry, self._wav.rate_hz)
        self._native_block = self._wav.rate_hz * config.frame_ms // 1000
        self._ready: list[Frame] = []
        self._t0 = 0.0

    def start(self) -> None:
        self.state = "running"
        self._t0 = time.monotonic()

    def read(self, timeout_s: float) -> Frame | None:
        while not self._ready and self.state == "running":
            block = self._wav.read(self._native_block)
            if block.size:
                self._ready.extend(self._framer.push(block))
            elif self.config.wav.loop:
                self._wav.rewind()
            else:
                self._ready.extend(self._framer.push(block, last=True))
                self.state = "ended"
        if not self._ready:
            self.state = "stopped"
            return None
        frame = self._ready.pop(0)
        if self.config.wav.realtime:
            due = self._t0 + frame.end_sample / frame.sample_rate_hz
            delay = due - time.monotonic()
            if delay > timeout_s:
                self._ready.insert(0, frame)
                time.sleep(timeout_s)
                return None
            if delay > 0:
                time.sleep(delay)
        return frame

    def close(self) -> None:
        self.state = "stopped"
        self._wav.close()


class PyAudioSource(CaptureSource):
    """A PortAudio input device. The callback only copies bytes into a bounded queue; everything
    else (channel map, resampling, framing, reopening a lost device) happens in ``read()``.

    A device that is missing at start (a HAT not yet probed, a USB mic unplugged) is not an
    error: the source starts in ``reopening`` with ``last_error`` saying why, and keeps looking
    with backoff, exactly as for a device lost while running."""

    def __init__(self, config: CaptureConfig, geometry: ArrayGeometry):
        super().__init__()
        self.config = config
        self.geometry = geometry
        self.channels = config.channels or geometry.native_channels
        self._pa: pyaudio.PyAudio | None = None
        self.device: DeviceInfo | None = None
        self.native_rate_hz = config.native_rate_hz or geometry.native_rate_hz
        self._framer = _Framer(config, geometry, self.native_rate_hz)
        self._block_frames = self.native_rate_hz * config.frame_ms // 1000
        self._blocks: queue.Queue[bytes] = QUEUES["capture"].make(config.queue_frames)
        self._ready: list[Frame] = []
        self._stream = None
        self._lock = threading.Lock()
        self._last_block_s = 0.0
        self._lost_at_s = 0.0
        self._next_reopen_s = 0.0
        self._backoff_ms = config.reopen_initial_ms

    def start(self) -> None:
        try:
            self._open_stream()
        except ChannelMismatch:
            raise  # the wrong profile: waiting will not fix it
        except (OSError, DeviceNotFound, CaptureError) as exc:
            self._lose_device(f"not available at start: {exc}")

    def _open_stream(self) -> None:
        import pyaudio

        if self._pa is not None:
            self._pa.terminate()
        self._pa = open_pyaudio()  # a fresh PortAudio sees devices that appeared since
        self.device = find_input_device(self.config.device, self._pa)
        if self.device.max_input_channels < self.channels:
            raise CaptureError(
                f"input device {self.device.name!r} has {self.device.max_input_channels} channel(s); "
                f"array {self.geometry.name!r} needs a {self.channels}-channel stream")
        card = self.device.max_input_channels <= MAX_HARDWARE_CHANNELS  # not a mixer offering any count
        mismatch = card and self.config.channels is None and channel_mismatch(
            self.geometry, self.device.max_input_channels, f"input device {self.device.name!r}",
            fewer=f", or capture.channels: {self.channels} to open only the profile's")
        if mismatch:
            raise ChannelMismatch(mismatch)
        self._stream = self._pa.open(
            format=pyaudio.paInt16, channels=self.channels, rate=self.native_rate_hz, input=True,
            input_device_index=self.device.index, frames_per_buffer=self._block_frames,
            stream_callback=self._on_audio,
        )
        self._last_block_s = time.monotonic()
        self.state = "running"
        log.info("capturing from %r: %d ch @ %d Hz", self.device.name, self.channels, self.native_rate_hz)

    def _on_audio(self, data, frame_count, time_info, status_flags):
        import pyaudio

        if status_flags & pyaudio.paInputOverflow:
            self.overruns += 1
        self.overruns += len(QUEUES["capture"].offer(self._blocks, data))
        return None, pyaudio.paContinue

    def read(self, timeout_s: float) -> Frame | None:
        if self._ready:
            return self._ready.pop(0)
        if self.state == "stopped":
            return None
        if self.state == "reopening":
            self._try_reopen(timeout_s)
            return None
        try:
            data = self._blocks.get(timeout=timeout_s)
        except queue.Empty:
            self._check_alive()
            return None
        self._last_block_s = time.monotonic()
        block = np.frombuffer(data, dtype="<i2").reshape(-1, self.channels)
        self._ready.extend(self._framer.push(block))
        return self._ready.pop(0) if self._ready else None

    def _check_alive(self) -> None:
        stream = self._stream
        active = stream is not None and stream.is_active()
        if active and time.monotonic() - self._last_block_s < STALL_TIMEOUT_S:
            return
        reason = "stream stopped" if not active else f"no audio for {STALL_TIMEOUT_S:.0f} s"
        self._lose_device(reason)

    def _lose_device(self, reason: str) -> None:
        name = self.device.name if self.device else (self.config.device or "default device")
        self.last_error = f"input device {name!r} lost: {reason}"
        log.warning("%s; reopening with backoff", self.last_error)
        self._close_stream()
        self.state = "reopening"
        self._lost_at_s = time.monotonic()
        self._next_reopen_s = self._lost_at_s + self._backoff_ms / 1000

    def _try_reopen(self, timeout_s: float) -> None:
        wait_s = self._next_reopen_s - time.monotonic()
        if wait_s > 0:
            time.sleep(min(wait_s, timeout_s))
            return
        self.reopens += 1
        try:
            self._open_stream()
        except Exception as exc:  # PortAudio raises OSError, ALSA sometimes others
            self.last_error = f"reopening {self.config.device or 'default device'} failed: {exc}"
            self._backoff_ms = min(self._backoff_ms * 2, self.config.reopen_max_ms)
            self._next_reopen_s = time.monotonic() + self._backoff_ms / 1000
            self.state = "reopening"
            log.warning("%s; next try in %.1f s", self.last_error, self._backoff_ms / 1000)
            return
        self._framer.skip(time.monotonic() - self._lost_at_s)
        self._backoff_ms = self.config.reopen_initial_ms
        log.info("input device reopened after %d attempt(s)", self.reopens)

    def _close_stream(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop_stream()
            except OSError:
                pass
            stream.close()
        while not self._blocks.empty():
            self._blocks.get_nowait()

    def close(self) -> None:
        with self._lock:
            self.state = "stopped"
            self._close_stream()
            if self._pa is not None:
                self._pa.terminate()


def open_capture(config: CaptureConfig, geometry: ArrayGeometry) -> CaptureSource:
    """The configured source; raises CaptureError / DeviceNotFound with a message for a person."""
    if config.source == "wav":
        return WavSource(config, geometry)
    return PyAudioSource(config, geometry)
