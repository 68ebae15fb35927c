"""Whisper recognition through faster-whisper (CTranslate2, int8 on CPU), in worker processes.

Whisper is not a streaming decoder: it transcribes a whole phrase at once, and faster-whisper
always encodes a 30 s window (80-90 % of a decode). So a stream keeps the phrase's PCM in the parent
and sends it to its worker only to decode: the final through faster-whisper with the full window;
a partial straight through CTranslate2 with the encoder input cut to the audio (at least
``PARTIAL_MIN_WINDOW_S``, ~6x cheaper, same words on 1-4 s prefixes) and the text capped at
``PARTIAL_TOKENS_PER_S``; and a partial only when the worker is idle, so partials are dropped under
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

from gateway.engines.transcript import Transcript, Word, confidence_of
from gateway.engines.workers import WorkerBusy, WorkerPool, serve_requests

SAMPLE_RATE_HZ = 16000
PARTIAL_MIN_WINDOW_S = 10
PARTIAL_MIN_AUDIO_S = 0.5
PARTIAL_TOKENS_PER_S = 6
DETECT_MIN_WINDOW_S = 5
FULL_WINDOW_S = 30
FRAMES_PER_S = 100


@dataclass(frozen=True)
class DecodeOptions:
    """What a worker needs to decode one phrase; plain values so they cross the pipe."""

    model_path: str
    language: str
    beam_size: int = 1
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    hotwords: str | None = None  # a client's phrase list, given to the decoder as its prompt
    word_timestamps: bool = False


class WhisperRecognizer:
    """Shared worker processes, each loading the models it is asked for once."""

    def __init__(self, processes: int):
        self._pool = WorkerPool(_serve, (), processes, "parley-whisper")

    def open_stream(self, options: DecodeOptions) -> "WhisperStream":
        return WhisperStream(self._pool, options)

    @property
    def worker_pids(self) -> list[int]:
        return self._pool.pids

    @property
    def load(self):
        return self._pool.load

    def open_detector(self, model_path: str, languages: tuple[str, ...]) -> "LanguageDetector":
        return LanguageDetector(self._pool, model_path, languages)

    def warm_up(self, model_paths: list[str]) -> None:
        """Load the models in every worker before the first session (0.3-1 s each)."""
        for path in model_paths:
            self._pool.broadcast("load", path)

    def close(self) -> None:
        self._pool.close()


class WhisperStream:
    """One phrase at a time: ``feed`` audio, ``hypothesis()`` (None when skipped), ``finish()``."""

    identified = None  # one language, the session's: nothing to identify

    def __init__(self, pool: WorkerPool, options: DecodeOptions):
        self.details: Transcript | None = None  # the last final's confidence (and words, when asked)
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
            return self._worker.call("partial", None, (self._options, bytes(self._pcm), window_s), wait=False)
        except WorkerBusy:
            return None

    def finish(self) -> str:
        pcm, self._pcm = bytes(self._pcm), bytearray()
        if not pcm:
            return ""
        self.details = self._worker.call("transcribe", None, (self._options, pcm))
        return self.details.text

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pool.detach(self._worker)


class LanguageDetector:
    """Which of ``languages`` (base codes) a phrase is in, from a multilingual model's language tokens.

    One encoder pass with the window cut to the audio (at least ``DETECT_MIN_WINDOW_S``): 0.1-0.3 s
    for base on one core, against 1.3 s for faster-whisper's full 30 s window, with the same verdicts
    on 1-4 s phrases. Probabilities are renormalised over ``languages``: p(es) / (p(en) + p(es)).
    """

    def __init__(self, pool: WorkerPool, model_path: str, languages: tuple[str, ...]):
        self._pool = pool
        self._worker = pool.attach()
        self._request = (model_path, languages)
        self._closed = False

    def probabilities(self, pcm: bytes, wait: bool = True) -> dict[str, float] | None:
        """None when ``wait`` is False and the worker is busy."""
        window_s = min(FULL_WINDOW_S, max(DETECT_MIN_WINDOW_S, math.ceil(len(pcm) / (2 * SAMPLE_RATE_HZ) + 1)))
        try:
            return self._worker.call("detect", None, (*self._request, pcm, window_s), wait=wait)
        except WorkerBusy:
            return None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pool.detach(self._worker)


def _serve(conn) -> None:
    """The worker process: models by path, loaded on first use, one 1-thread int8 model each."""
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
        if op == "detect":
            model_path, languages, pcm, window_s = payload
            return detect_language(model(model_path), _float_audio(pcm), languages, window_s)
        options, pcm = payload[:2]
        audio = _float_audio(pcm)
        if op == "transcribe":
            return transcribe(model(options.model_path), audio, options)
        if op == "partial":
            return transcribe_prefix(model(options.model_path), audio, options, payload[2])
        raise ValueError(f"unknown request {op!r}")

    serve_requests(conn, handle)


def _float_audio(pcm: bytes):
    import numpy as np

    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def detect_language(model, audio, languages: tuple[str, ...], window_s: int) -> dict[str, float]:
    """P(language | audio) over ``languages`` only, from the decoder's first token after one encoder pass."""
    from faster_whisper.audio import pad_or_trim

    features = pad_or_trim(model.feature_extractor(audio), window_s * FRAMES_PER_S)
    scores = {token.strip("<|>"): p for token, p in model.model.detect_language(model.encode(features))[0]}
    wanted = {language: scores.get(language, 0.0) for language in languages}
    total = sum(wanted.values())
    return {language: (p / total if total else 1 / len(wanted)) for language, p in wanted.items()}


def transcribe(model, audio, options: DecodeOptions) -> Transcript:
    """The phrase's text with the full window ("" when Whisper heard no speech), its confidence, and
    its words when ``options.word_timestamps``."""
    segments, _info = model.transcribe(
        audio, language=options.language, task="transcribe", beam_size=options.beam_size, best_of=1,
        temperature=0.0, without_timestamps=True, condition_on_previous_text=False, vad_filter=False,
        no_speech_threshold=options.no_speech_threshold, log_prob_threshold=options.log_prob_threshold,
        compression_ratio_threshold=options.compression_ratio_threshold,
        hotwords=options.hotwords, word_timestamps=options.word_timestamps)
    kept = [s for s in segments if s.text.strip()
            and _is_speech(s.text, s.no_speech_prob, s.avg_logprob, options, options.no_speech_threshold)]
    words = tuple(Word(w.word.strip(), w.start, w.end, w.probability) for s in kept for w in (s.words or ()))
    return Transcript(" ".join(s.text.strip() for s in kept), confidence_of(kept), words)


def transcribe_prefix(model, audio, options: DecodeOptions, window_s: int) -> str:
    """A partial: greedy, the encoder input cut to ``window_s``, the text capped by the audio's length.
    A short window invents "Thank you." on noise more readily, so its no-speech bar is halved."""
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer

    features = pad_or_trim(model.feature_extractor(audio), window_s * FRAMES_PER_S)
    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=options.language)
    prompt = model.get_prompt(tokenizer, [], without_timestamps=True)
    cap = len(prompt) + 4 + math.ceil(PARTIAL_TOKENS_PER_S * len(audio) / SAMPLE_RATE_HZ)
    result = model.model.generate(model.encode(features), [prompt], beam_size=1, max_length=cap, return_scores=True,
                                  return_no_speech_prob=True, suppress_blank=True, suppress_tokens=[-1])[0]
    text = tokenizer.decode(result.sequences_ids[0]).strip()
    speech = _is_speech(text, result.no_speech_prob, result.scores[0], options, options.no_speech_threshold / 2)
    return text if speech else ""


def _is_speech(text: str, no_speech_prob: float, avg_logprob: float, options: DecodeOptions,
               no_speech_threshold: float) -> bool:
    if no_speech_prob > no_speech_threshold and avg_logprob < options.log_prob_threshold:
        return False
    if avg_logprob < 2 * options.log_prob_threshold:
        return False
    return not is_repetitive(text, options.compression_ratio_threshold)


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
