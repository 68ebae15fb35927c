"""Streaming English recognition with pocketsphinx (its wheel ships the US-English model): the light
option, for boxes that cannot afford Whisper.

Decoders live in worker processes (:mod:`gateway.engines.workers`); a stream is bound to the least
busy worker. Each worker keeps its idle decoders, since creating one costs ~0.4 s, but a decoder
adapts its cepstral mean to what it heard: a reused decoder gets the mean it was created with back,
so a session after a noisy one starts from the same state as the first.
"""

from __future__ import annotations

from gateway.engines.workers import RecognizerError, WorkerPool, serve_requests


class PocketsphinxRecognizer:
    def __init__(self, processes: int, sample_rate_hz: int = 16000):
        self.sample_rate_hz = sample_rate_hz
        self._pool = WorkerPool(_serve, (sample_rate_hz,), processes, "parley-asr")

    def open_stream(self, language: str = "en") -> "RecognitionStream":
        worker = self._pool.attach()
        try:
            stream_id = worker.new_id()
            worker.call("open", stream_id, retry=True)
            return RecognitionStream(worker, stream_id, self._pool.detach)
        except RecognizerError:
            self._pool.detach(worker)
            raise

    @property
    def worker_pids(self) -> list[int]:
        return self._pool.pids

    @property
    def load(self):
        return self._pool.load

    def warm_up(self, decoders_per_worker: int = 1) -> None:
        """Create decoders ahead of the first session, all workers in parallel."""
        self._pool.broadcast("warm", decoders_per_worker)

    def close(self) -> None:
        self._pool.close()


class RecognitionStream:
    """One phrase at a time: ``feed`` audio, read ``hypothesis()``, ``finish()`` for the final text."""

    identified = None  # one language, the session's: nothing to identify
    details = None  # no word timings or confidence from this engine

    def __init__(self, worker, stream_id: int, detach):
        self._worker = worker
        self._id = stream_id
        self._detach = detach
        self._closed = False

    @property
    def worker_pid(self) -> int:
        return self._worker.pid

    def feed(self, pcm: bytes) -> None:
        self._worker.call("feed", self._id, pcm)

    def hypothesis(self) -> str | None:
        return _clean(self._worker.call("hypothesis", self._id))

    def finish(self) -> str:
        return _clean(self._worker.call("finish", self._id))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._detach(self._worker)
        try:
            self._worker.call("close", self._id)
        except RecognizerError:
            pass  # the worker is gone and took the decoder with it


class _DecoderStream:
    def __init__(self, decoder):
        self.decoder = decoder
        self.in_utterance = False

    def feed(self, pcm: bytes) -> None:
        if not self.in_utterance:
            self.decoder.start_utt()
            self.in_utterance = True
        self.decoder.process_raw(pcm, False, False)

    def hypothesis(self) -> str:
        hyp = self.decoder.hyp() if self.in_utterance else None
        return hyp.hypstr if hyp else ""

    def finish(self) -> str:
        if not self.in_utterance:
            return ""
        self.decoder.end_utt()
        self.in_utterance = False
        hyp = self.decoder.hyp()
        return hyp.hypstr if hyp else ""


def _serve(conn, sample_rate_hz: int) -> None:
    """The worker process: decoders by stream id."""
    from pocketsphinx import Decoder

    initial_cmn: list[str] = []

    def new_decoder():
        decoder = Decoder(samprate=sample_rate_hz, loglevel="FATAL")
        if not initial_cmn:
            initial_cmn.append(decoder.get_cmn(False))
        return decoder

    idle: list = []
    streams: dict[int | None, _DecoderStream] = {}  # keyed by the stream_id each request carries (None only for "warm")

    def handle(op: str, stream_id: int | None, payload):
        if op == "warm":
            while len(idle) < payload:
                idle.append(new_decoder())
        elif op == "open":
            decoder = idle.pop() if idle else new_decoder()
            decoder.reinit_feat()  # its noise-removal estimate too: a decoder after a noise session heard
            decoder.set_cmn(initial_cmn[0])  # espeak's "please open" as "he's opened" with the CMN reset alone
            streams[stream_id] = _DecoderStream(decoder)
        elif op == "feed":
            streams[stream_id].feed(payload)
        elif op in ("hypothesis", "finish"):
            return getattr(streams[stream_id], op)()
        elif op == "close":
            stream = streams.pop(stream_id)
            stream.finish()
            idle.append(stream.decoder)
        return None

    serve_requests(conn, handle)


def _clean(text: str) -> str:
    """Drop filler tokens such as <sil> or [NOISE] that the model may emit."""
    return " ".join(w for w in text.split() if not (w.startswith(("<", "[")) or w.endswith(("]", ">"))))
