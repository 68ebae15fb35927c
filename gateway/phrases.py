"""Server-side phrase detection: PCM in, phrase events out (start, partial, final).

Clients of the Translator v1 protocol never say where an utterance ends, so the gateway endpoints by
silence: webrtcvad marks 20 ms frames, a phrase starts after 60 ms of speech (with 300 ms of
pre-roll given to the recognizer) and ends after ``endpoint_silence_ms`` of non-speech. All times are
in samples of the stream, so offsets are exact whatever speed the client sends at.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import webrtcvad

from gateway.config import RecognitionConfig

FRAME_SAMPLES = 320
START_FRAMES = 3
PREROLL_FRAMES = 15


@dataclass(frozen=True)
class PhraseStarted:
    phrase: int
    start_sample: int


@dataclass(frozen=True)
class PhrasePartial:
    phrase: int
    text: str
    start_sample: int
    end_sample: int


@dataclass(frozen=True)
class PhraseFinal:
    phrase: int
    text: str
    start_sample: int
    end_sample: int


PhraseEvent = PhraseStarted | PhrasePartial | PhraseFinal


class PhraseDetector:
    """Not thread-safe: one per session, called from one worker at a time."""

    def __init__(self, open_stream, config: RecognitionConfig, sample_rate_hz: int = 16000):
        self._open_stream = open_stream  # () -> a recognizer stream for one phrase
        self._config = config
        self._rate = sample_rate_hz
        self._vad = webrtcvad.Vad(config.vad_mode)
        self._leftover = b""
        self._position = 0  # samples consumed so far
        self._preroll: deque[tuple[int, bytes]] = deque(maxlen=PREROLL_FRAMES)
        self._speech_run = 0
        self._stream = None
        self._phrase = 0
        self._start = 0
        self._last_speech_end = 0
        self._silence_ms = 0.0
        self._last_partial_at = 0
        self._last_partial_text = ""

    @property
    def in_phrase(self) -> bool:
        return self._stream is not None

    def feed(self, pcm: bytes) -> list[PhraseEvent]:
        data = self._leftover + pcm
        usable = len(data) // (2 * FRAME_SAMPLES) * 2 * FRAME_SAMPLES
        self._leftover = data[usable:]
        events: list[PhraseEvent] = []
        batch = bytearray()
        for offset in range(0, usable, 2 * FRAME_SAMPLES):
            frame = data[offset:offset + 2 * FRAME_SAMPLES]
            start = self._position
            self._position += FRAME_SAMPLES
            speech = self._vad.is_speech(frame, self._rate)
            if self._stream is None:
                self._preroll.append((start, frame))
                self._speech_run = self._speech_run + 1 if speech else 0
                if self._speech_run >= START_FRAMES:
                    events.append(self._begin())
                continue
            batch += frame
            if speech:
                self._silence_ms = 0.0
                self._last_speech_end = self._position
            else:
                self._silence_ms += 1000.0 * FRAME_SAMPLES / self._rate
            too_long = self._position - self._start >= self._config.max_phrase_s * self._rate
            if self._silence_ms >= self._config.endpoint_silence_ms or too_long:
                self._stream.feed(bytes(batch))
                batch.clear()
                events.append(self._finish())
        if self._stream is not None and batch:
            self._stream.feed(bytes(batch))
            events += self._maybe_partial()
        return events

    def flush(self) -> list[PhraseEvent]:
        """End of the client's stream: finish an open phrase."""
        return [self._finish()] if self._stream is not None else []

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def _begin(self) -> PhraseStarted:
        self._phrase += 1
        self._stream = self._open_stream()
        self._start = self._preroll[0][0]
        self._stream.feed(b"".join(frame for _, frame in self._preroll))
        self._preroll.clear()
        self._speech_run = 0
        self._silence_ms = 0.0
        self._last_speech_end = self._position
        self._last_partial_at = self._position
        self._last_partial_text = ""
        return PhraseStarted(self._phrase, self._start)

    def _maybe_partial(self) -> list[PhraseEvent]:
        interval = self._config.partial_interval_ms * self._rate // 1000
        if self._position - self._last_partial_at < interval:
            return []
        self._last_partial_at = self._position
        text = self._stream.hypothesis()
        if not text or text == self._last_partial_text:
            return []
        self._last_partial_text = text
        return [PhrasePartial(self._phrase, text, self._start, self._position)]

    def _finish(self) -> PhraseFinal:
        text = self._stream.finish()
        self._stream.close()
        self._stream = None
        end = max(self._last_speech_end, self._start)
        return PhraseFinal(self._phrase, text, self._start, end)

