"""Full duplex or the half-duplex gate, frame by frame, and barge-in.

The pipeline asks ``reference_for(frame)`` before the front end (the speaker's reference for that
frame, shifted by the measured playback->capture delay) and ``gate_closed()`` (mute the segmenter
while the box speaks?), then reports the frame with ``observe``. Full duplex needs three facts: the
canceller is on, it has converged (its echo attenuation held ``converged_erle_db`` for
``converged_after_ms`` of playback, or the echo is not even audible above the room), and the
reference is healthy (no stall, no unexplained delay jump). Otherwise the gate covers the playback,
as it always did — and the state and log say why.

Barge-in: during playback in full duplex, ``barge_in_speech_ratio`` of the VAD decisions over
``barge_in_window_ms`` (the VAD hears the residual-suppressed beam) tells the speaker a person
speaks over it.
"""

from __future__ import annotations

import logging
from collections import deque

import numpy as np

from agent.dsp.echo import EchoConfig, dbfs
from agent.dsp.echo_reference import DelayTracker, ReferenceTimeline
from agent.outputs.config import SpeakerConfig
from parley_common.frames import Frame

log = logging.getLogger("parley.duplex")

FAR_END_DBFS = -55.0  # a reference frame quieter than this is not playback
INAUDIBLE_ECHO_DB = 6.0  # mic within this of the room's floor during playback: nothing to cancel
FLOOR_RISE_DB_PER_FRAME = 0.01
TRAINING_PASSES = 8
LAG_WINDOW_LEADS = 3  # the echo more than this many leads behind the reference: move it (see __init__)
HISTORY_S = 1.5  # playback kept to re-train the canceller on after the reference moved
# the re-trained filter keeps full duplex on if it cancels that playback by converged_erle_db and
# this much more (a weaker one, trained on 0.4 s, let the box's voice through: bench/echo.py)
RELEARN_MARGIN_DB = 6.0


class Duplex:
    """Owned by the pipeline thread; ``speaker`` needs ``playing``, ``mic_gate_open()`` and ``barge_in()``."""

    def __init__(self, engine: str, config: EchoConfig, speaker_config: SpeakerConfig, timeline: ReferenceTimeline | None,
                 speaker, rate_hz: int, frame_samples: int, on_change=None):
        self.enabled = engine != "off" and timeline is not None
        self.canceller = None  # the front end's EchoCanceller, reset when the echo path moves
        self.config = config
        self.timeline = timeline
        self.speaker = speaker
        self.rate_hz = rate_hz
        self._on_change = on_change or (lambda mode, reason: None)
        self.offset_samples = int(round((config.initial_delay_ms - config.lead_ms) * rate_hz / 1000))
        lead = int(round(config.lead_ms * rate_hz / 1000))
        self._lead = lead
        self._tracker = DelayTracker(config.track_window_ms * rate_hz // 1000, config.tail_ms * rate_hz // 1000,
                                     -config.tail_ms * rate_hz // 2000)
        self._tracker_reach = config.tail_ms * rate_hz // 1000  # how far one move can shift the reference
        self._chirp: tuple[list[Frame], int, np.ndarray] | None = None  # frames, reference start sample, reference
        self.converged = False
        self.stalled = False
        self._missing_ms = 0.0
        self._floor_dbfs: float | None = None  # the room's level between playbacks; None: not heard yet
        self._frame_ms = 1000 * frame_samples / rate_hz
        self._converged_after_frames = max(1, int(round(config.converged_after_ms / self._frame_ms)))
        self._recent: deque[tuple[float, float, float]] = deque(maxlen=self._converged_after_frames)  # far-end frames: mic, out power, mic dBFS
        self._trained_until = 0  # capture sample: frames before it trained the filter, their attenuation proves nothing
        window = max(1, int(round(speaker_config.barge_in_window_ms / self._frame_ms)))
        self._vad_window: deque[bool] = deque(maxlen=window)
        self._barge_in_needed = int(np.ceil(speaker_config.barge_in_speech_ratio * window))
        self._last_reference: np.ndarray | None = None
        # the echo may sit from half the lead to 3 leads behind the reference before it is moved and
        # the filter re-trained on the playback just heard: with 400 ms tracker windows that takes
        # < 1 s of playback, while a filter left to absorb a 60 ms late echo by itself took 2-3.3 s
        # to reach 20 dB (bench/echo.py; with 1 s windows the re-learn came too late and 3 leads
        # lost more interruptions than half the filter)
        self._lag_window = (lead // 2, LAG_WINDOW_LEADS * lead)
        self._history: deque[Frame] = deque(maxlen=int(HISTORY_S * rate_hz / frame_samples))
        self.mode, self.reason = ("full", "") if self.enabled else ("half", "echo cancellation off")
        self.erle_db: float | None = None
        self.delay_ms: float = config.initial_delay_ms

    # -- before the front end ----------------------------------------------------------------

    def reference_for(self, frame: Frame) -> np.ndarray | None:
        timeline = self.timeline
        if not self.enabled or timeline is None:  # enabled only with a timeline
            return None
        reference, missing = timeline.read(frame.start_sample - self.offset_samples, frame.n_samples)
        self._missing_ms = self._missing_ms + 1000 * missing / self.rate_hz if missing else 0.0
        if self._missing_ms >= self.config.stall_ms and not self.stalled:
            self.stalled = True
            log.warning("echo reference stalled (%.0f ms of playback without it): half-duplex gate", self._missing_ms)
        self._last_reference = reference
        return reference

    @property
    def full_duplex(self) -> bool:
        return self.enabled and self.converged and not self.stalled

    def gate_closed(self) -> bool:
        """Mute the segmenter now? Only while the box speaks (or its tail) and full duplex is not on."""
        return not self.speaker.mic_gate_open() and not self.full_duplex

    def set_delay(self, delay_ms: float) -> None:
        """The self-check measured where the echo sits relative to the reference timeline."""
        self.delay_ms = delay_ms
        self.offset_samples = int(round(delay_ms * self.rate_hz / 1000)) - self._lead
        log.info("echo path delay %.1f ms (the reference is fed %.0f ms before it)", delay_ms, self.config.lead_ms)

    def train(self, frames: list[Frame], passes: int = TRAINING_PASSES) -> float | None:
        """Let the canceller learn the echo path from the self-check's chirp before any translation
        plays: the recording is fed ``passes`` times (SpeexDSP's filter converges over seconds of
        far-end; 8 passes over the chirp take the first words of speech from ~8 to ~17 dB).
        Returns the last pass's echo attenuation on mic 0 over its far-end frames (None: none).
        The chirp is kept, with its reference, for a re-learn after the echo path moves."""
        if not self.enabled or self.canceller is None or not frames:
            return None
        if self._chirp is None:
            margin = self._tracker_reach
            start = frames[0].start_sample - self.offset_samples - margin
            length = frames[-1].start_sample + frames[-1].n_samples - frames[0].start_sample + 2 * margin
            self._chirp = (list(frames), start, self.timeline.read(start, length)[0].copy())
        references = [self.timeline.read(f.start_sample - self.offset_samples, f.n_samples)[0] for f in frames]
        return self._train(frames, references, passes)

    def _train(self, frames: list[Frame], references: list[np.ndarray], passes: int = TRAINING_PASSES) -> float | None:
        canceller = self.canceller
        if canceller is None or not frames:
            return None
        self._trained_until = max(self._trained_until, frames[-1].start_sample + frames[-1].n_samples)
        mic_power = out_power = 0.0
        for last in [False] * (passes - 1) + [True]:
            for frame, reference in zip(frames, references):
                out = canceller.process(frame.samples, reference)
                if last and dbfs(reference) >= FAR_END_DBFS:
                    mic_power += energy(frame.samples[:, 0])
                    out_power += energy(out[:, 0])
        return attenuation_db(mic_power, out_power) if mic_power else None

    # -- after the front end -----------------------------------------------------------------

    def observe(self, raw: Frame, cancelled: np.ndarray | None, vad_speech: bool) -> None:
        timeline = self.timeline
        if self.enabled and timeline is not None and cancelled is not None and self._last_reference is not None:
            self._history.append(raw)
            self._follow_echo(raw, raw.samples[:, 0], cancelled[:, 0], self._last_reference)
            if not self.speaker.playing and not timeline.playing and self.stalled and self._missing_ms == 0:
                self.stalled = False
                log.info("echo reference flows again")
        self._update_mode()
        if self.speaker.playing and self.full_duplex:
            self._vad_window.append(vad_speech)
            if sum(self._vad_window) >= self._barge_in_needed:
                self._vad_window.clear()
                self.speaker.barge_in()
        else:
            self._vad_window.clear()

    def _follow_echo(self, raw: Frame, mic: np.ndarray, out: np.ndarray, reference: np.ndarray) -> None:
        mic_db = dbfs(mic)
        if dbfs(reference) < FAR_END_DBFS:
            self._floor_dbfs = mic_db if self._floor_dbfs is None else min(mic_db, self._floor_dbfs + FLOOR_RISE_DB_PER_FRAME)
            return
        self.erle_db = mic_db - dbfs(out)
        if not self.converged and raw.start_sample >= self._trained_until:
            self._judge_convergence(mic, out, mic_db)
        lag = self._tracker.observe(reference, mic)
        if lag is not None and not self._lag_window[0] <= lag <= self._lag_window[1]:
            self.offset_samples += lag - self._lead
            self.delay_ms = 1000 * (self.offset_samples + self._lead) / self.rate_hz
            log.warning("echo path delay moved by %.1f ms: reference re-aligned, canceller re-learning",
                        1000 * (lag - self._lead) / self.rate_hz)
            self._relearn()

    def _judge_convergence(self, mic: np.ndarray, out: np.ndarray, mic_db: float) -> None:
        """Converged: over the last ``converged_after_ms`` of far end the echo is attenuated by
        ``converged_erle_db`` (power summed over the window, so one lucky frame does not count), or
        the mic never rose ``INAUDIBLE_ECHO_DB`` above the room's floor. Counting scattered frames,
        and the self-check chirp the filter had just been trained on, let `make demo` go full
        duplex at 0-5 dB and answer itself (an utterance from the loudspeaker's direction in 4 of 9 runs, 0 of 3 after)."""
        self._recent.append((energy(mic), energy(out), mic_db))
        if len(self._recent) < self._converged_after_frames:
            return
        erle_db = attenuation_db(sum(m for m, _, _ in self._recent), sum(o for _, o, _ in self._recent))
        floor = self._floor_dbfs
        inaudible = floor is not None and max(db for _, _, db in self._recent) < floor + INAUDIBLE_ECHO_DB
        if erle_db >= self.config.converged_erle_db or inaudible:
            self.converged = True
            self._recent.clear()
            log.info("echo canceller converged (%.0f dB): full duplex during playback", erle_db)

    def _relearn(self) -> None:
        """The filter modelled the old alignment: start again, trained on the playback just heard.
        If the re-trained filter cancels that playback by ``RELEARN_MARGIN_DB`` more than
        ``converged_erle_db``, full duplex stays on: closing the gate mid-playback lost the words of
        whoever was talking and missed their barge-in (bench/echo.py, +30 ms delay error). The
        playback must follow the new alignment: a move found in the first playback or after a
        device change between playbacks (mid-playback the timeline re-anchors underruns itself)."""
        self._recent.clear()
        erle_db = None
        if self.canceller is not None:
            self.canceller.reset()
            self._train_on_chirp()
            erle_db = self.train(list(self._history))
        self.converged = erle_db is not None and erle_db >= self.config.converged_erle_db + RELEARN_MARGIN_DB
        log.info("canceller re-learned on the last %.1f s of playback: %s", len(self._history) * self._frame_ms / 1000,
                 "no far end in it" if erle_db is None else f"{erle_db:.0f} dB" + ("" if self.converged else ", gate until it converges"))

    def _train_on_chirp(self) -> None:
        """The start-up chirp again, under the new alignment: a filter trained only on the last
        1.5 s of playback (often a fraction of a second of speech) adapted to whoever talked in the
        next playback, and the playback after that began with false barge-ins and the box's own
        voice as an utterance (bench/echo.py, 'after double talk')."""
        if self._chirp is None:
            return
        frames, start, chirp_reference = self._chirp
        references = []
        for frame in frames:
            at = frame.start_sample - self.offset_samples - start
            if at < 0 or at + frame.n_samples > len(chirp_reference):
                return  # moved further than the kept reference reaches: the playback alone must do
            references.append(chirp_reference[at:at + frame.n_samples])
        self._train(frames, references)

    def _update_mode(self) -> None:
        if not self.enabled:
            return
        reason = "reference stalled" if self.stalled else "" if self.converged else "echo canceller not converged"
        mode = "half" if reason else "full"
        if (mode, reason) != (self.mode, self.reason):
            self.mode, self.reason = mode, reason
            self._on_change(mode, reason)

    def status(self) -> dict:
        return {"duplex": self.mode, "duplex_reason": self.reason, "echo_delay_ms": round(self.delay_ms, 1),
                "echo_erle_db": None if self.erle_db is None else round(self.erle_db, 1)}


def energy(samples: np.ndarray) -> float:
    return float(np.sum(samples.astype(np.float64) ** 2))


def attenuation_db(mic_energy: float, out_energy: float) -> float:
    """How much the canceller took off, over the same samples (+1 keeps digital silence finite)."""
    return float(10 * np.log10((mic_energy + 1.0) / (out_energy + 1.0)))
