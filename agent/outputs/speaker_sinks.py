"""Where the speaker's samples go: a real output device, WAV files, nowhere, or a simulated room.

Every sink plays one translation as ``begin`` -> ``write`` (blocking like a device, one short chunk
at a time so playback can be stopped or ducked mid-sentence) -> ``finish``. ``latency_s`` is how
long after a ``write`` begins its first sample leaves the device: the echo reference is stamped
with it.
"""

from __future__ import annotations

import time
import wave
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from agent.audio.devices import find_output_device, open_pyaudio
from agent.outputs.config import SpeakerConfig

if TYPE_CHECKING:
    import pyaudio


class PyAudioSink:
    """A real output device. ``finish(abort=True)`` discards what is buffered (a stop is immediate)."""

    def __init__(self, config: SpeakerConfig):
        self._pa = open_pyaudio()
        try:
            self.device = find_output_device(config.device, self._pa)
        except BaseException:
            self._pa.terminate()  # looked for again later: no PortAudio instance left behind per try
            raise
        self.rate_hz = self._pick_rate()
        self.latency_s = 0.0
        self._stream: pyaudio.Stream | None = None

    def _pick_rate(self) -> int:
        import pyaudio

        for rate in (self.device.default_rate_hz, 48000, 44100, 16000):
            try:
                if self._pa.is_format_supported(rate, output_device=self.device.index, output_channels=1,
                                                output_format=pyaudio.paInt16):
                    return rate
            except ValueError:
                continue
        return self.device.default_rate_hz

    def begin(self, label: str, rate_hz: int | None = None) -> None:
        """``rate_hz`` is ignored: the speaker resamples to the device's ``rate_hz``."""
        import pyaudio

        stream = self._pa.open(format=pyaudio.paInt16, channels=1, rate=self.rate_hz, output=True,
                               output_device_index=self.device.index)
        self._stream = stream
        self.latency_s = float(stream.get_output_latency())

    def write(self, chunk: np.ndarray) -> None:
        stream = self._stream
        assert stream is not None  # the speaker's one thread writes only between begin() and finish()
        stream.write(np.ascontiguousarray(chunk, dtype="<i2").tobytes())

    def finish(self, abort: bool = False) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            stream.abort_stream() if abort else stream.stop_stream()  # stop returns once the buffer has played
        finally:
            stream.close()

    def close(self) -> None:
        self._pa.terminate()


SELF_CHECK_LABEL = "self-check"


WAV_BUFFER_S = 0.1  # the device buffer a real-time WAV sink plays like


class WavFileSink:
    """Writes each translation to ``output_dir``; in real time by default so timing stays realistic.
    The self-check's chirp takes its time but leaves no file: the folder holds what the box said.

    In real time it behaves like a device with ``WAV_BUFFER_S`` of buffer: a chunk "leaves" that
    long after ``write`` took it, and ``finish`` waits for the buffer to drain. With no buffer the
    echo reference (written after ``write``) always came a chunk after its samples "played", and a
    pipeline keeping up with the capture fell back to the gate ("echo reference stalled")."""

    def __init__(self, config: SpeakerConfig, rate_hz: int | None = None):
        self.output_dir = Path(config.output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.realtime = config.realtime
        self.latency_s = WAV_BUFFER_S if config.realtime else 0.0
        self.rate_hz = rate_hz  # None: each file at its synthesized rate
        self._wav: wave.Wave_write | None = None
        self._rate = rate_hz or 16000
        self._started_s = 0.0
        self._written = 0

    def begin(self, label: str, rate_hz: int = 16000) -> None:
        self._rate = self.rate_hz or rate_hz
        self._started_s, self._written = time.monotonic(), 0
        if label == SELF_CHECK_LABEL:
            return
        path = self.output_dir / f"{label}.wav"
        for copy in range(2, 10_000):  # never overwrite: ids restart with the process, pieces share one
            if not path.exists():
                break
            path = self.output_dir / f"{label}-{copy}.wav"
        self._path = path
        wav = self._wav = wave.open(str(path), "wb")
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(self._rate)

    def write(self, chunk: np.ndarray) -> None:
        if self._wav is not None:
            try:
                self._wav.writeframes(np.ascontiguousarray(chunk, dtype="<i2").tobytes())
            except OSError:
                self._discard(self._wav)  # no half-written WAV left behind on a full disk
                raise
        self._written += len(chunk)
        if self.realtime:
            self._wait_until(self._started_s + self._written / self._rate)

    def _wait_until(self, monotonic_s: float) -> None:
        delay = monotonic_s - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def finish(self, abort: bool = False) -> None:
        if self.realtime and self._written and not abort:  # the buffer plays out, as a device drains
            self._wait_until(self._started_s + self._written / self._rate + self.latency_s)
        if self._wav is not None:
            try:
                self._wav.close()
            except OSError:
                self._discard(self._wav)
                raise
            self._wav = None

    def _discard(self, wav: wave.Wave_write) -> None:
        self._wav = None
        try:
            wav.close()
        except OSError:
            pass
        self._path.unlink(missing_ok=True)

    def close(self) -> None:
        self.finish()


class NullSink:
    latency_s = 0.0
    rate_hz = None

    def begin(self, label: str, rate_hz: int = 16000) -> None:
        pass

    def write(self, chunk: np.ndarray) -> None:
        pass

    def finish(self, abort: bool = False) -> None:
        pass

    def close(self) -> None:
        pass


def make_sink(config: SpeakerConfig):
    if config.backend == "pyaudio":
        return PyAudioSink(config)
    if config.backend == "wav":
        return WavFileSink(config)
    return NullSink()
