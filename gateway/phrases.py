"""Server-side phrase detection: PCM in, phrase events out (start, partial, final).

Clients of the Translator v1 protocol never say where an utterance ends, so the gateway endpoints
with the agent's own VAD and segmenter (``parley_common.vad``): 20 ms frames, pre-roll, blips
dropped, a phrase ends after ``endpoint_silence_ms`` of non-speech or at ``max_phrase_s``. All times
are in samples of the stream, so offsets are exact whatever speed the client sends at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from gateway.config import RecognitionConfig
from gateway.engines.language_id import LanguageChoice, RecognizerStream
from gateway.engines.transcript import Transcript
from parley_common.frames import Frame
from parley_common.vad.engines import make_vad
from parley_common.vad.events import SpeechChunk, SpeechEnded, SpeechStarted
from parley_common.vad.segmenter import Segmenter, SegmenterConfig

FRAME_SAMPLES = 320
# No partial once the talker has paused this long: it would add no words, and the final (which may
# be only the hangover away) would wait behind its decode.
PARTIAL_AFTER_SILENCE_MS = 200


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
    language: LanguageChoice | None = None  # identified among a client's candidates; None: the session's


@dataclass(frozen=True)
class PhraseFinal:
    phrase: int
    text: str
    start_sample: int
    end_sample: int
    language: LanguageChoice | None = None
    details: Transcript | None = None  # word timings and confidence, from engines that give them


PhraseEvent = PhraseStarted | PhrasePartial | PhraseFinal


class PhraseDetector:
    """Not thread-safe: one per session, called from one worker at a time."""

    def __init__(self, open_stream: Callable[[], RecognizerStream], config: RecognitionConfig, sample_rate_hz: int = 16000,
                 endpoint_silence_ms: int | None = None):
        self._open_stream = open_stream  # () -> a recognizer stream for one phrase
        self._rate = sample_rate_hz
        self._partial_interval = config.partial_interval_ms * sample_rate_hz // 1000
        self._vad = make_vad(config.vad, sample_rate_hz)
        self._segmenter = Segmenter(SegmenterConfig(
            hangover_ms=endpoint_silence_ms or config.endpoint_silence_ms, max_utterance_ms=round(1000 * config.max_phrase_s)))
        self._leftover = b""
        self._position = 0  # samples consumed so far
        self._stream: RecognizerStream | None = None  # open from a phrase's start to its end
        self._phrase = 0
        self._start = 0
        self._last_speech_end = 0
        self._last_partial_at = 0
        self._last_partial_text = ""

    @property
    def in_phrase(self) -> bool:
        return self._stream is not None

    def feed(self, pcm: bytes) -> list[PhraseEvent]:
        data = self._leftover + pcm
        usable = len(data) // (2 * FRAME_SAMPLES) * 2 * FRAME_SAMPLES
        self._leftover = data[usable:]
        samples = np.frombuffer(data[:usable], dtype="<i2")
        events: list[PhraseEvent] = []
        batch = bytearray()
        for offset in range(0, samples.size, FRAME_SAMPLES):
            frame = Frame(samples[offset:offset + FRAME_SAMPLES, None], self._position, self._rate)
            self._position += FRAME_SAMPLES
            speech = self._vad.is_speech(frame.mono())
            if speech and self._stream is not None:
                self._last_speech_end = self._position
            for event in self._segmenter.process(frame, speech):
                events += self._on_segment(event, batch)
        stream = self._stream
        if stream is not None and batch:
            stream.feed(bytes(batch))
            events += self._maybe_partial(stream)
        return events

    def flush(self) -> list[PhraseEvent]:
        """End of the client's stream: finish an open phrase."""
        batch = bytearray()
        return [e for event in self._segmenter.close("end of stream") for e in self._on_segment(event, batch)]

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def _on_segment(self, event, batch: bytearray) -> list[PhraseEvent]:
        if isinstance(event, SpeechStarted):
            return [self._begin(event.start_sample)]
        if isinstance(event, SpeechChunk):
            batch += event.frame.samples.tobytes()
            return []
        if isinstance(event, SpeechEnded):
            if batch:
                self._phrase_stream().feed(bytes(batch))
                batch.clear()
            return [self._finish()]
        return []

    def _begin(self, start_sample: int) -> PhraseStarted:
        self._phrase += 1
        self._stream = self._open_stream()
        self._start = start_sample
        self._last_speech_end = self._position
        self._last_partial_at = self._position
        self._last_partial_text = ""
        return PhraseStarted(self._phrase, self._start)

    def _phrase_stream(self) -> RecognizerStream:
        """The open phrase's stream: the segmenter ends only a phrase it started (``_begin`` opened it)."""
        assert self._stream is not None, "a phrase ended that never started"
        return self._stream

    def _maybe_partial(self, stream: RecognizerStream) -> list[PhraseEvent]:
        paused = self._position - self._last_speech_end > PARTIAL_AFTER_SILENCE_MS * self._rate // 1000
        if paused or self._position - self._last_partial_at < self._partial_interval:
            return []
        text = stream.hypothesis()
        if text is None:
            return []  # the worker was busy: try again with the next audio
        self._last_partial_at = self._position
        if not text or text == self._last_partial_text:
            return []
        self._last_partial_text = text
        return [PhrasePartial(self._phrase, text, self._start, self._position, stream.identified)]

    def _finish(self) -> PhraseFinal:
        stream = self._phrase_stream()
        text = stream.finish()
        language, details = stream.identified, stream.details
        stream.close()
        self._stream = None
        return PhraseFinal(self._phrase, text, self._start, max(self._last_speech_end, self._start), language, details)
