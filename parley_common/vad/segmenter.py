"""Utterance segmentation: per-frame VAD decisions in, SpeechStarted/SpeechChunk/SpeechEnded out.

- **Start** when at least ``start_speech_ratio`` of the last ``start_window_ms`` is speech. The
  utterance begins ``preroll_ms`` before that window so the first syllable is not cut.
- **Blips**: the start is announced only once the utterance has lasted ``min_utterance_ms``; until
  then its audio is held back, and a candidate that ends sooner is dropped (counted).
- **End** after ``hangover_ms`` of continuous non-speech; the hangover audio is part of the utterance.
- **Max length**: at ``max_utterance_ms`` the utterance is force-ended (reason ``max_length``), so a
  stationary noise that fools the VAD can never hold a segment open; if speech goes on, a new
  utterance starts from the next frames.
- **Muted**: an open utterance ends (reason ``muted``) and nothing starts while muted.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from parley_common.frames import Frame
from parley_common.vad.events import SegmentEvent, SpeechChunk, SpeechEnded, SpeechStarted


@dataclass(frozen=True)
class SegmenterConfig:
    start_window_ms: int = field(default=200, metadata={"min": 10, "max": 2000})
    start_speech_ratio: float = field(default=0.6, metadata={"min": 0.05, "max": 1.0})
    preroll_ms: int = field(default=300, metadata={"min": 0, "max": 3000})
    hangover_ms: int = field(default=500, metadata={"min": 30, "max": 5000})
    min_utterance_ms: int = field(default=300, metadata={"min": 0, "max": 5000})
    max_utterance_ms: int = field(default=15000, metadata={"min": 1000, "max": 120000})


class Segmenter:
    def __init__(self, config: SegmenterConfig):
        self.config = config
        self._window: deque[bool] = deque()
        self._history: deque[Frame] = deque()  # pre-roll + start window, while idle
        self._held: list[Frame] = []  # audio of a candidate not yet announced
        self._utterance_id = 0
        self._open = False
        self._announced = False
        self._start_sample = 0
        self._end_sample = 0
        self._silence_ms = 0.0
        self._speech_ms = 0.0
        self._length_ms = 0.0
        self._rate_hz = 16000
        self._direction: tuple[float | None, float] = (None, 0.0)  # the latest (azimuth_deg, confidence)
        self.dropped_blips = 0

    @property
    def in_utterance(self) -> bool:
        return self._open

    def process(self, frame: Frame, speech: bool, muted: bool = False,
                azimuth_deg: float | None = None, confidence: float = 0.0) -> list[SegmentEvent]:
        self._direction = (azimuth_deg, confidence)
        if muted:
            events = self.close("muted")
            self._window.clear()
            self._history.clear()
            return events
        if self._open:
            return self._continue(frame, speech, azimuth_deg, confidence)
        return self._maybe_start(frame, speech, azimuth_deg, confidence)

    def close(self, reason: str) -> list[SegmentEvent]:
        """End the open utterance now (shutdown, mute); an unannounced candidate is dropped."""
        if not self._open:
            return []
        return self._end(reason)

    def _maybe_start(self, frame: Frame, speech: bool, azimuth_deg, confidence) -> list[SegmentEvent]:
        c = self.config
        self._window.append(speech)
        self._history.append(frame)
        window_frames = max(1, round(c.start_window_ms / frame.duration_ms))
        history_frames = window_frames + round(c.preroll_ms / frame.duration_ms)
        while len(self._window) > window_frames:
            self._window.popleft()
        while len(self._history) > history_frames:
            self._history.popleft()
        speech_frames = sum(self._window)
        if len(self._window) < window_frames or speech_frames < c.start_speech_ratio * window_frames:
            return []
        self._open, self._announced = True, False
        self._held = list(self._history)
        self._history.clear()
        self._window.clear()
        self._start_sample = self._held[0].start_sample
        self._rate_hz = frame.sample_rate_hz
        self._length_ms = window_frames * frame.duration_ms
        self._speech_ms = speech_frames * frame.duration_ms
        self._silence_ms = 0.0
        return self._maybe_announce(azimuth_deg, confidence)

    def _continue(self, frame: Frame, speech: bool, azimuth_deg, confidence) -> list[SegmentEvent]:
        self._length_ms += frame.duration_ms
        self._speech_ms += frame.duration_ms if speech else 0.0
        self._silence_ms = 0.0 if speech else self._silence_ms + frame.duration_ms
        events: list[SegmentEvent] = []
        if self._announced:
            events.append(SpeechChunk(self._utterance_id, _mono(frame)))
        else:
            self._held.append(frame)
            events = self._maybe_announce(azimuth_deg, confidence)
        self._end_sample = frame.end_sample
        if self._silence_ms >= self.config.hangover_ms:
            events += self._end("silence")
        elif self._length_ms >= self.config.max_utterance_ms:
            events += self._end("max_length")
        return events

    def _maybe_announce(self, azimuth_deg, confidence) -> list[SegmentEvent]:
        if self._speech_ms < self.config.min_utterance_ms:
            self._end_sample = self._held[-1].end_sample
            return []
        self._utterance_id += 1
        self._announced = True
        events: list[SegmentEvent] = [SpeechStarted(self._utterance_id, self._start_sample, azimuth_deg, confidence)]
        events += [SpeechChunk(self._utterance_id, _mono(f)) for f in self._held]
        self._end_sample = self._held[-1].end_sample
        self._held = []
        return events

    def _end(self, reason: str) -> list[SegmentEvent]:
        self._open = False
        if not self._announced:
            self.dropped_blips += 1
            self._held = []
            return []
        duration_ms = 1000.0 * (self._end_sample - self._start_sample) / self._rate_hz
        return [SpeechEnded(self._utterance_id, self._end_sample, duration_ms, reason, *self._direction)]


def _mono(frame: Frame) -> Frame:
    return frame if frame.channels == 1 else Frame(frame.samples[:, :1].copy(), frame.start_sample, frame.sample_rate_hz)
