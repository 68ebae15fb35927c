"""Streaming English recognition with pocketsphinx (its wheel ships the US-English model).

pocketsphinx holds the GIL while it decodes, so decoder threads would put every session on one
core. Decoders therefore live in worker processes; a stream is bound to the least busy worker and
talks to it over a pipe (one request, one reply). Each worker keeps its idle decoders: creating one
costs ~0.4 s, reusing one costs nothing.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading


class RecognizerError(RuntimeError):
    """A worker process failed; the phrase it was decoding is lost, the next one gets a new worker."""


class PocketsphinxRecognizer:
    language = "en-US"

    def __init__(self, processes: int, sample_rate_hz: int = 16000):
        self.sample_rate_hz = sample_rate_hz
        self._workers = [_Worker(sample_rate_hz) for _ in range(processes)]
        self._lock = threading.Lock()

    def open_stream(self) -> "RecognitionStream":
        with self._lock:
            worker = min(self._workers, key=lambda w: w.streams)
            worker.streams += 1
        try:
            return RecognitionStream(worker, worker.call("open"), self._detach)
        except RecognizerError:
            self._detach(worker)
            raise

    def _detach(self, worker: "_Worker") -> None:
        with self._lock:
            worker.streams -= 1

    @property
    def worker_pids(self) -> list[int]:
        return [worker.pid for worker in self._workers]

    def warm_up(self, decoders_per_worker: int = 1) -> None:
        """Create decoders ahead of the first session, all workers in parallel."""
        threads = [threading.Thread(target=w.call, args=("warm", None, decoders_per_worker)) for w in self._workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def close(self) -> None:
        for worker in self._workers:
            worker.stop()


class RecognitionStream:
    """One phrase at a time: ``feed`` audio, read ``hypothesis()``, ``finish()`` for the final text."""

    def __init__(self, worker: "_Worker", stream_id: int, detach):
        self._worker = worker
        self._id = stream_id
        self._detach = detach
        self._closed = False

    @property
    def worker_pid(self) -> int:
        return self._worker.pid

    def feed(self, pcm: bytes) -> None:
        self._worker.call("feed", self._id, pcm)

    def hypothesis(self) -> str:
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


class _Worker:
    """The parent's handle on one decoder process; restarted on the next call after it dies."""

    def __init__(self, sample_rate_hz: int):
        self._rate = sample_rate_hz
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.streams = 0  # guarded by the recognizer's lock
        self._process = None
        self._conn = None
        self._start()

    def _start(self) -> None:
        context = multiprocessing.get_context("forkserver")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, self._rate), daemon=True,
                                        name="parley-asr")
        self._process.start()
        child.close()

    @property
    def pid(self) -> int:
        return self._process.pid

    def call(self, op: str, stream_id: int | None = None, payload=None):
        """One request and its reply. A worker found dead is restarted; ``open`` and ``warm`` hold no
        state in it yet, so they are retried once on the new worker instead of failing a session."""
        with self._lock:
            if op == "open":
                stream_id = next(self._ids)
            attempts = 2 if op in ("open", "warm") else 1
            for attempt in range(1, attempts + 1):
                if not self._process.is_alive():
                    self._start()
                try:
                    self._conn.send((op, stream_id, payload))
                    ok, value = self._conn.recv()
                    break
                except (EOFError, OSError) as exc:
                    self._process.kill()
                    self._process.join()
                    if attempt == attempts:
                        raise RecognizerError(f"recognizer process died: {exc}") from exc
        if not ok:
            raise RecognizerError(value)
        return stream_id if op == "open" else value

    def stop(self) -> None:
        with self._lock:
            try:
                self._conn.send(None)
            except OSError:
                pass
            self._process.join(timeout=2)
            if self._process.is_alive():
                self._process.kill()
            self._conn.close()


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
    """The worker process: decoders by stream id, one request at a time, until told to stop."""
    from pocketsphinx import Decoder

    def new_decoder():
        return Decoder(samprate=sample_rate_hz, loglevel="FATAL")

    idle: list = []
    streams: dict[int, _DecoderStream] = {}
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if request is None:
            return
        op, stream_id, payload = request
        try:
            value = None
            if op == "warm":
                while len(idle) < payload:
                    idle.append(new_decoder())
            elif op == "open":
                streams[stream_id] = _DecoderStream(idle.pop() if idle else new_decoder())
            elif op == "feed":
                streams[stream_id].feed(payload)
            elif op in ("hypothesis", "finish"):
                value = getattr(streams[stream_id], op)()
            elif op == "close":
                stream = streams.pop(stream_id)
                stream.finish()
                idle.append(stream.decoder)
            conn.send((True, value))
        except Exception as exc:  # a bad request costs that stream, never the worker
            conn.send((False, f"{op}: {exc!r}"))


def _clean(text: str) -> str:
    """Drop filler tokens such as <sil> or [NOISE] that the model may emit."""
    return " ".join(w for w in text.split() if not (w.startswith(("<", "[")) or w.endswith(("]", ">"))))
