"""Whisper recognition through faster-whisper (CTranslate2, int8 on CPU), in worker processes.

Whisper is not a streaming decoder: it transcribes a whole phrase at once and every decode encodes
a fixed window. So a stream keeps the phrase's PCM in the parent and sends it to its worker only to
decode: the final with the full 30 s window, partials with a window shortened to the audio (at least
``PARTIAL_MIN_WINDOW_S``), and a partial only when the worker is idle, so partials are dropped under
load and finals never wait behind more than one of them.

Decoding is stateless (temperature 0, not conditioned on previous text, no timestamps, the language
given), so one session cannot change what the next one hears. Noise gets no words: a segment is
dropped when Whisper thinks there is no speech, when it is unsure of every token, or when its text
repeats itself (the usual hallucinations on noise).
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass

from gateway.engines.workers import WorkerBusy, WorkerPool, serve_requests

SAMPLE_RATE_HZ = 16000
PARTIAL_MIN_WINDOW_S = 10
PARTIAL_MIN_AUDIO_S = 0.5
FULL_WINDOW_S = 30


@dataclass(frozen=True)
class DecodeOptions:
    """What a worker needs to decode one phrase; plain values so they cross the pipe."""

    model_path: str
    language: str
    beam_size: int = 1
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4


class WhisperRecognizer:
    """Shared worker processes, each loading the models it is asked for once."""

    def __init__(self, processes: int):
        self._pool = WorkerPool(_serve, (), processes, "parley-whisper")

    def open_stream(self, options: DecodeOptions) -> "WhisperStream":
        return WhisperStream(self._pool, options)

    @property
    def worker_pids(self) -> list[int]:
        return self._pool.pids

    def warm_up(self, model_paths: list[str]) -> None:
        """Load the models in every worker before the first session (0.3-1 s each)."""
        for path in model_paths:
            self._pool.broadcast("load", path)

    def close(self) -> None:
        self._pool.close()


class WhisperStream:
    """One phrase at a time: ``feed`` audio, ``hypothesis()`` (None when skipped), ``finish()``."""

    def __init__(self, pool: WorkerPool, options: DecodeOptions):
        self._pool = pool
        self._worker = pool.attach()
        self._options = options
        self._pcm = bytearray()
        self._closed = False

    @property
    def worker_pid(self) -> int:
        return self._worker.pid

    def feed(self, pcm: bytes) -> None:
        self._pcm += pcm

    def hypothesis(self) -> str | None:
        """A partial from a shortened window, or None when there is too little audio or the worker is
        busy (the partial is dropped, not queued)."""
        seconds = len(self._pcm) / (2 * SAMPLE_RATE_HZ)
        if seconds < PARTIAL_MIN_AUDIO_S:
            return None
        window_s = min(FULL_WINDOW_S, max(PARTIAL_MIN_WINDOW_S, math.ceil(seconds + 1)))
        try:
            return self._worker.call("transcribe", None, (self._options, bytes(self._pcm), window_s), wait=False)
        except WorkerBusy:
            return None

    def finish(self) -> str:
        pcm, self._pcm = bytes(self._pcm), bytearray()
        if not pcm:
            return ""
        return self._worker.call("transcribe", None, (self._options, pcm, None))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pool.detach(self._worker)


def _serve(conn) -> None:
    """The worker process: models by path, loaded on first use, one 1-thread int8 model each."""
    import numpy as np
    from faster_whisper import WhisperModel

    models: dict[str, WhisperModel] = {}

    def model(path: str) -> WhisperModel:
        if path not in models:
            models[path] = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=1, num_workers=1)
        return models[path]

    def handle(op: str, _stream_id, payload):
        if op == "load":
            model(payload)
            return None
        if op == "transcribe":
            options, pcm, window_s = payload
            audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
            return transcribe(model(options.model_path), audio, options, window_s)
        raise ValueError(f"unknown request {op!r}")

    serve_requests(conn, handle)


def transcribe(model, audio, options: DecodeOptions, window_s: int | None) -> str:
    """The phrase's text, or "" when Whisper heard no speech; ``window_s``: shortened encoder window."""
    segments, _info = model.transcribe(
        audio, language=options.language, task="transcribe", beam_size=options.beam_size, best_of=1,
        temperature=0.0, without_timestamps=True, condition_on_previous_text=False, vad_filter=False,
        no_speech_threshold=options.no_speech_threshold, log_prob_threshold=options.log_prob_threshold,
        compression_ratio_threshold=options.compression_ratio_threshold,
        chunk_length=window_s)
    kept = [s.text.strip() for s in segments if _is_speech(s, options, shortened=window_s is not None)]
    return " ".join(t for t in kept if t)


def _is_speech(segment, options: DecodeOptions, shortened: bool) -> bool:
    # A shortened window is more eager to invent "Thank you." on noise: be stricter with partials.
    no_speech = options.no_speech_threshold * (0.5 if shortened else 1.0)
    if segment.no_speech_prob > no_speech and segment.avg_logprob < options.log_prob_threshold:
        return False
    if segment.avg_logprob < 2 * options.log_prob_threshold:
        return False
    return not is_repetitive(segment.text, options.compression_ratio_threshold)


def is_repetitive(text: str, compression_ratio_threshold: float) -> bool:
    """Whisper's loops on noise: text that compresses too well, or one word or pair said 4+ times in a row."""
    data = text.strip().encode()
    if len(data) > 24 and len(data) / len(zlib.compress(data)) > compression_ratio_threshold:
        return True
    words = re.findall(r"[\w']+", text.lower())
    for n in (1, 2):
        for i in range(len(words) - 4 * n + 1):
            if all(words[i + k * n:i + (k + 1) * n] == words[i:i + n] for k in range(1, 4)):
                return True
    return False
