"""The speaker: synthesized translations played in order, the echo reference, barge-in and the gate.

Playback goes to the sink in ``chunk_ms`` pieces, so it can be stopped (barge-in, SIGTERM) or ducked
mid-sentence; every piece, exactly as sent, is also written to the echo canceller's reference
(resampled to the capture rate, stamped with when it leaves the device).

The half-duplex gate (the fallback when echo cancellation is off, not converged or has lost its
reference) closes before the first sample is written and opens ``gate_tail_ms`` after the audio
has actually left the device. A translation never starts over a person who is talking: it waits
for the next pause, and is dropped (logged) once stale. Speech is spoken only while fresh: its age
counts from when the person stopped talking, so a backlog after an outage is shown and written but
not played back to back.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable

import numpy as np

from agent.audio.devices import DeviceNotFound
from agent.audio.resample import StreamResampler
from agent.audio.synth import read_wav_bytes
from agent.events import SynthesizedSpeech
from agent.outputs.config import SpeakerConfig
from agent.outputs.health import OutputHealth, describe
from agent.outputs.speaker_sinks import make_sink
from agent.queues import QUEUES

log = logging.getLogger("parley.speaker")

HOLD_POLL_S = 0.02
SINK_RETRY_S = 5.0
DUCK_RAMP_S = 0.05


class Speaker:
    """``talker_speaking()`` says whether someone in the room is talking now (the VAD); ``reference``
    (a ReferenceTimeline) receives what is played; both optional."""

    def __init__(self, config: SpeakerConfig, on_playback_started=None, on_playback_finished=None, sink=None,
                 talker_speaking: Callable[[], bool] | None = None, reference=None, capture_rate_hz: int = 16000,
                 health: OutputHealth | None = None):
        self.config = config
        self._health = health or OutputHealth()
        self.sink = sink or self._open_sink()
        self._on_started = on_playback_started or (lambda: None)
        self._on_finished = on_playback_finished or (lambda: None)
        self._talker_speaking = talker_speaking or (lambda: False)
        self.reference = reference
        self._capture_rate_hz = capture_rate_hz
        # speech, a test signal (samples, rate_hz, label) or None to stop
        self._queue: queue.Queue[SynthesizedSpeech | tuple[np.ndarray, int, str] | None] = QUEUES["speaker"].make(config.queue_items)
        self._lock = threading.Lock()
        self._playing = False
        self._gate_opens_at = 0.0
        self._closing = threading.Event()
        self._barge_in: str | None = None  # "stop" or "duck" for the item playing now
        self._thread = threading.Thread(target=self._run, name="speaker", daemon=True)
        self.played = 0
        self.skipped_stale = 0
        self.skipped_no_device = 0
        self.barge_ins = 0
        self.played_signals = 0

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
        """False while playing and ``gate_tail_ms`` after: what the half-duplex gate would mute."""
        with self._lock:
            return not self._playing and time.monotonic() >= self._gate_opens_at

    @property
    def playing(self) -> bool:
        return self._playing

    @property
    def idle(self) -> bool:
        return self._queue.empty() and self.mic_gate_open()

    def barge_in(self) -> None:
        """A person started talking over the playback: react as ``barge_in`` says (pipeline thread)."""
        mode = self.config.barge_in
        if not self._playing or self._barge_in is not None:
            return
        self.barge_ins += 1
        log.info("barge-in: someone speaks over the playback (%s)", mode)
        if mode != "continue":
            self._barge_in = mode

    def play_signal(self, samples: np.ndarray, rate_hz: int, label: str) -> None:
        """A test signal (the self-check's chirp), played next, whatever its language or age."""
        self._queue.put_nowait((samples, rate_hz, label))

    def stop_playback(self) -> None:
        """Stop what is playing now and everything queued (shutdown); returns at once."""
        self._closing.set()

    def _run(self) -> None:
        while not self._closing.is_set():
            try:
                speech = self._queue.get(timeout=None if self.sink else SINK_RETRY_S)
            except queue.Empty:
                self.sink = self._open_sink()
                continue
            if speech is None or self._closing.is_set():
                return
            if self.sink is None:
                self.sink = self._open_sink()
                if self.sink is None:
                    self.skipped_no_device += 1  # shown and written all the same; only the voice is missing
                    continue
            if isinstance(speech, tuple):
                self._play_one(*speech)
                self.played_signals += 1
                continue
            if not self._fresh(speech):
                continue
            try:
                samples, rate_hz = read_wav_bytes(speech.wav_bytes)
            except Exception as exc:  # a broken WAV costs that item only
                log.warning("undecodable speech for utterance %d: %s", speech.utterance_id, exc)
                continue
            if not self._wait_for_pause(speech):
                continue
            self._play_one(samples, rate_hz, f"{speech.utterance_id:04d}-{speech.language}")
            self.played += 1

    def _age_ms(self, speech: SynthesizedSpeech) -> float:
        spoken_end_s = speech.spoken_end_monotonic_s
        assert spoken_end_s is not None  # asked only of speech _fresh let through: it skips speech from before a restart
        return 1000 * (time.monotonic() - spoken_end_s)

    def _fresh(self, speech: SynthesizedSpeech) -> bool:
        if speech.spoken_end_monotonic_s is None:
            self.skipped_stale += 1
            log.info("not speaking utterance %d: it was said before a restart", speech.utterance_id)
            return False
        if self._age_ms(speech) > self.config.max_age_ms:
            self.skipped_stale += 1
            log.info("not speaking utterance %d: said %.1f s ago (max_age_ms %d)", speech.utterance_id,
                     self._age_ms(speech) / 1000, self.config.max_age_ms)
            return False
        return True

    def _wait_for_pause(self, speech: SynthesizedSpeech) -> bool:
        """Never start over a talker: hold until they pause; False when it went stale meanwhile."""
        if not self._talker_speaking():
            return True
        log.info("holding utterance %d: someone is speaking", speech.utterance_id)
        while self._talker_speaking():
            if self._closing.wait(HOLD_POLL_S):
                return False
            if self._age_ms(speech) > self.config.max_age_ms:
                self.skipped_stale += 1
                log.info("not speaking utterance %d: the room was talking until it went stale (%.1f s)",
                         speech.utterance_id, self._age_ms(speech) / 1000)
                return False
        return True

    def _play_one(self, samples: np.ndarray, rate_hz: int, label: str) -> None:
        device_rate = self.sink.rate_hz or rate_hz
        pcm = StreamResampler(rate_hz, device_rate, 1).process(samples[:, None], last=True)[:, 0]
        to_capture = StreamResampler(device_rate, self._capture_rate_hz, 1)
        chunk = max(1, device_rate * self.config.chunk_ms // 1000)
        with self._lock:
            self._playing = True
            self._barge_in = None
        self._on_started()
        aborted = False
        try:
            self.sink.begin(label, device_rate)
            gain = 1.0
            for start in range(0, len(pcm), chunk):
                if self._closing.is_set() or self._barge_in == "stop":
                    aborted = True
                    break
                piece, gain = self._gain(pcm[start:start + chunk], gain, device_rate)
                leaves_s = time.monotonic() + self.sink.latency_s
                self.sink.write(piece)
                if self.reference is not None:
                    self.reference.write(to_capture.process(piece[:, None])[:, 0], leaves_s, self.sink.latency_s)
            self.sink.finish(abort=aborted)
            self._health.ok("speaker")
        except Exception as exc:  # logged once while it lasts; the next translation tries again
            self._health.failed("speaker", describe(exc))
            aborted = True
        finally:
            if self.reference is not None:
                self.reference.end_playback()
            with self._lock:
                self._playing = False
                self._gate_opens_at = time.monotonic() + self.config.gate_tail_ms / 1000
            self._on_finished()

    def _gain(self, piece: np.ndarray, gain: float, rate_hz: int) -> tuple[np.ndarray, float]:
        """Ducking ramps down to ``duck_db`` over ``DUCK_RAMP_S`` (no click); otherwise unity."""
        target = 10 ** (self.config.duck_db / 20) if self._barge_in == "duck" else 1.0
        if gain == target == 1.0:
            return piece, gain
        step = (1 - 10 ** (self.config.duck_db / 20)) * len(piece) / (DUCK_RAMP_S * rate_hz)
        end = max(target, gain - step) if target < gain else min(target, gain + step)
        ramp = np.linspace(gain, end, len(piece), dtype=np.float32)
        return np.clip(np.round(piece * ramp), -32768, 32767).astype(np.int16), end

    def close(self, timeout_s: float = 1.0) -> None:
        """Stops playback first (a shutdown must not wait for a sentence to end), then the thread."""
        self._closing.set()
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
