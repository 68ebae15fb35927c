"""The speaker: synthesized translations played in order, and the half-duplex mic gate.

The gate closes before the first sample is written and opens ``gate_tail_ms`` after the audio has
actually left the device (PortAudio's ``stop_stream`` returns only once its buffers have played),
so the box never hears — and translates — its own voice. Speech is spoken only while fresh: its
age counts from when the person stopped talking, so a backlog after an outage is shown and
written but not played back to back (which would also hold the mic gate shut on a live room).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import wave
from pathlib import Path

import numpy as np

from agent.audio.devices import DeviceNotFound, find_output_device, open_pyaudio
from agent.audio.resample import StreamResampler
from agent.audio.synth import read_wav_bytes
from agent.events import SynthesizedSpeech
from agent.outputs.config import SpeakerConfig
from agent.outputs.health import OutputHealth, describe
from agent.queues import QUEUES

log = logging.getLogger("parley.speaker")

SINK_RETRY_S = 5.0


class PyAudioSink:
    """A real output device. Blocks in ``play`` until the device has played everything."""

    def __init__(self, config: SpeakerConfig):
        self._pa = open_pyaudio()
        try:
            self.device = find_output_device(config.device, self._pa)
        except BaseException:
            self._pa.terminate()  # looked for again later: no PortAudio instance left behind per try
            raise
        self.rate_hz = self._pick_rate()

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

    def play(self, samples: np.ndarray, rate_hz: int, label: str) -> None:
        import pyaudio

        pcm = StreamResampler(rate_hz, self.rate_hz, 1).process(samples[:, None], last=True)
        stream = self._pa.open(format=pyaudio.paInt16, channels=1, rate=self.rate_hz, output=True,
                               output_device_index=self.device.index)
        try:
            stream.write(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
            stream.stop_stream()  # returns once the buffered audio has been played
        finally:
            stream.close()

    def close(self) -> None:
        self._pa.terminate()


class WavFileSink:
    """Writes each translation to ``output_dir``; in real time by default so gating stays realistic."""

    def __init__(self, config: SpeakerConfig):
        self.output_dir = Path(config.output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.realtime = config.realtime

    def play(self, samples: np.ndarray, rate_hz: int, label: str) -> None:
        path = self.output_dir / f"{label}.wav"
        for copy in range(2, 10_000):  # never overwrite: ids restart with the process, pieces share one
            if not path.exists():
                break
            path = self.output_dir / f"{label}-{copy}.wav"
        try:
            with wave.open(str(path), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(rate_hz)
                out.writeframes(np.ascontiguousarray(samples, dtype="<i2").tobytes())
        except OSError:
            path.unlink(missing_ok=True)  # no half-written WAV left behind on a full disk
            raise
        if self.realtime:
            time.sleep(len(samples) / rate_hz)

    def close(self) -> None:
        pass


class NullSink:
    def play(self, samples: np.ndarray, rate_hz: int, label: str) -> None:
        pass

    def close(self) -> None:
        pass


def make_sink(config: SpeakerConfig):
    if config.backend == "pyaudio":
        return PyAudioSink(config)
    if config.backend == "wav":
        return WavFileSink(config)
    return NullSink()


class Speaker:
    def __init__(self, config: SpeakerConfig, on_playback_started=None, on_playback_finished=None, sink=None,
                 health: OutputHealth | None = None):
        self.config = config
        self._health = health or OutputHealth()
        self.sink = sink or self._open_sink()
        self._on_started = on_playback_started or (lambda: None)
        self._on_finished = on_playback_finished or (lambda: None)
        self._queue: queue.Queue[SynthesizedSpeech | None] = QUEUES["speaker"].make(config.queue_items)
        self._lock = threading.Lock()
        self._playing = False
        self._gate_opens_at = 0.0
        self._thread = threading.Thread(target=self._run, name="speaker", daemon=True)
        self.played = 0
        self.skipped_stale = 0
        self.skipped_no_device = 0

    def _open_sink(self):
        """The configured sink, or None while its device is missing: like a missing mic, a state to
        wait in (output_lost), looked for again every ``SINK_RETRY_S``, never a refusal to start."""
        try:
            sink = make_sink(self.config)
        except (DeviceNotFound, OSError) as exc:
            self._health.failed("speaker", f"{exc}; waiting for an output device")
            return None
        self._health.ok("speaker")
        return sink

    def start(self) -> None:
        self._thread.start()

    def play(self, speech: SynthesizedSpeech) -> None:
        """Queue for playback; never blocks. A full queue drops its oldest item (it would be stale)."""
        if self.config.languages and speech.language not in self.config.languages:
            return
        for dropped in QUEUES["speaker"].offer(self._queue, speech):
            log.warning("speaker queue full: dropped utterance %s", getattr(dropped, "utterance_id", "?"))

    def mic_gate_open(self) -> bool:
        with self._lock:
            return not self._playing and time.monotonic() >= self._gate_opens_at

    @property
    def idle(self) -> bool:
        return self._queue.empty() and self.mic_gate_open()

    def _run(self) -> None:
        while True:
            try:
                speech = self._queue.get(timeout=None if self.sink else SINK_RETRY_S)
            except queue.Empty:
                self.sink = self._open_sink()
                continue
            if speech is None:
                return
            if self.sink is None:
                self.sink = self._open_sink()
                if self.sink is None:
                    self.skipped_no_device += 1  # shown and written all the same; only the voice is missing
                    continue
            if speech.spoken_end_monotonic_s is None:
                self.skipped_stale += 1
                log.info("not speaking utterance %d: it was said before a restart", speech.utterance_id)
                continue
            age_ms = 1000 * (time.monotonic() - speech.spoken_end_monotonic_s)
            if age_ms > self.config.max_age_ms:
                self.skipped_stale += 1
                log.info("not speaking utterance %d: said %.1f s ago (max_age_ms %d)", speech.utterance_id,
                         age_ms / 1000, self.config.max_age_ms)
                continue
            try:
                samples, rate_hz = read_wav_bytes(speech.wav_bytes)
            except Exception as exc:  # a broken WAV costs that item only
                log.warning("undecodable speech for utterance %d: %s", speech.utterance_id, exc)
                continue
            with self._lock:
                self._playing = True
            self._on_started()
            try:
                self.sink.play(samples, rate_hz, f"{speech.utterance_id:04d}-{speech.language}")
                self.played += 1
                self._health.ok("speaker")
            except Exception as exc:  # logged once while it lasts; the next translation tries again
                self._health.failed("speaker", describe(exc))
            finally:
                with self._lock:
                    self._playing = False
                    self._gate_opens_at = time.monotonic() + self.config.gate_tail_ms / 1000
                self._on_finished()

    def close(self, timeout_s: float = 1.0) -> None:
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(None)
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self.sink is not None:
            self.sink.close()
