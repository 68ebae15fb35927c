"""Streaming English recognition with pocketsphinx (its wheel ships the US-English model)."""

from __future__ import annotations

import queue
import threading


class PocketsphinxRecognizer:
    """Hands out decoders from a pool: creating one costs ~0.4 s, reusing one costs nothing."""

    language = "en-US"

    def __init__(self, sample_rate_hz: int = 16000):
        self.sample_rate_hz = sample_rate_hz
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()

    def open_stream(self) -> "RecognitionStream":
        try:
            decoder = self._idle.get_nowait()
        except queue.Empty:
            from pocketsphinx import Decoder

            decoder = Decoder(samprate=self.sample_rate_hz, loglevel="FATAL")
        return RecognitionStream(decoder, self._idle)

    def warm_up(self, count: int = 1) -> None:
        streams = [self.open_stream() for _ in range(count)]
        for stream in streams:
            stream.close()


class RecognitionStream:
    """One phrase at a time: ``feed`` audio, read ``hypothesis()``, ``finish()`` for the final text."""

    def __init__(self, decoder, pool: queue.SimpleQueue):
        self._decoder = decoder
        self._pool = pool
        self._in_utterance = False

    def feed(self, pcm: bytes) -> None:
        if not self._in_utterance:
            self._decoder.start_utt()
            self._in_utterance = True
        self._decoder.process_raw(pcm, False, False)

    def hypothesis(self) -> str:
        hyp = self._decoder.hyp() if self._in_utterance else None
        return _clean(hyp.hypstr) if hyp else ""

    def finish(self) -> str:
        if not self._in_utterance:
            return ""
        self._decoder.end_utt()
        self._in_utterance = False
        hyp = self._decoder.hyp()
        return _clean(hyp.hypstr) if hyp else ""

    def close(self) -> None:
        if self._in_utterance:
            self._decoder.end_utt()
            self._in_utterance = False
        self._pool.put(self._decoder)


def _clean(text: str) -> str:
    """Drop filler tokens such as <sil> or [NOISE] that the model may emit."""
    return " ".join(w for w in text.split() if not (w.startswith(("<", "[")) or w.endswith(("]", ">"))))
