"""Recognizer worker processes: one request, one reply, over a pipe.

Both engines hold the GIL (pocketsphinx) or want one core each (CTranslate2 with one thread), so
decoding lives in worker processes, about one per core. The parent keeps a handle per process; a
process found dead is restarted on the next call, and the request that found it dead fails.
"""

from __future__ import annotations

import itertools
import multiprocessing
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess


class RecognizerError(RuntimeError):
    """A worker process failed; the phrase it was decoding is lost, the next one gets a new worker."""


class WorkerBusy(Exception):
    """``call(..., wait=False)`` found the worker decoding for someone else."""


@dataclass(frozen=True)
class WorkerLoad:
    """What /metrics reports of a pool: its size, seconds spent decoding, requests queued for a worker."""

    workers: int = 0
    busy_s: float = 0.0
    waiting: int = 0

    def __add__(self, other: "WorkerLoad") -> "WorkerLoad":
        return WorkerLoad(self.workers + other.workers, self.busy_s + other.busy_s, self.waiting + other.waiting)


class Worker:
    """The parent's handle on one decoder process running ``serve(conn, *args)``."""

    def __init__(self, serve, args: tuple, name: str):
        self._serve = serve
        self._args = args
        self._name = name
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.streams = 0  # guarded by the owning pool's lock
        self._stats_lock = threading.Lock()
        self.busy_s = 0.0  # time spent in requests (guarded by _stats_lock)
        self.waiting = 0  # callers queued behind the request in progress (guarded by _stats_lock)
        self._process: BaseProcess  # both set by _start, here and on each restart
        self._conn: Connection
        self._start()

    def _start(self) -> None:
        context = multiprocessing.get_context("forkserver")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=self._serve, args=(child, *self._args), daemon=True, name=self._name)
        self._process.start()
        child.close()

    @property
    def pid(self) -> int:
        pid = self._process.pid
        assert pid is not None  # _start started it; a restart replaces it with another started one
        return pid

    def new_id(self) -> int:
        return next(self._ids)

    def call(self, op: str, stream_id: int | None = None, payload=None, retry: bool = False, wait: bool = True):
        """One request and its reply. ``retry``: the request holds no state in the worker yet, so a
        worker found dead is restarted and the request sent again once instead of failing a session.
        ``wait=False`` raises :class:`WorkerBusy` rather than queue behind another request."""
        with self._stats_lock:
            self.waiting += 1
        acquired = self._lock.acquire(blocking=wait)
        with self._stats_lock:
            self.waiting -= 1
        if not acquired:
            raise WorkerBusy(op)
        started_s = time.monotonic()
        try:
            attempts = 2 if retry else 1
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
        finally:
            with self._stats_lock:
                self.busy_s += time.monotonic() - started_s
            self._lock.release()
        if not ok:
            raise RecognizerError(value)
        return value

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


class WorkerPool:
    """Streams are bound to the worker with the fewest open streams."""

    def __init__(self, serve, args: tuple, processes: int, name: str):
        self.workers = [Worker(serve, args, name) for _ in range(processes)]
        self._lock = threading.Lock()

    def attach(self) -> Worker:
        with self._lock:
            worker = min(self.workers, key=lambda w: w.streams)
            worker.streams += 1
        return worker

    def detach(self, worker: Worker) -> None:
        with self._lock:
            worker.streams -= 1

    def broadcast(self, op: str, payload=None) -> None:
        """The same request to every worker, in parallel (warm-up)."""
        errors: list[BaseException] = []

        def one(worker: Worker) -> None:
            try:
                worker.call(op, None, payload, retry=True)
            except BaseException as exc:  # re-raised in the caller
                errors.append(exc)

        threads = [threading.Thread(target=one, args=(w,)) for w in self.workers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    @property
    def pids(self) -> list[int]:
        return [worker.pid for worker in self.workers]

    @property
    def load(self) -> WorkerLoad:
        return sum((WorkerLoad(1, w.busy_s, w.waiting) for w in self.workers), WorkerLoad())

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()


def serve_requests(conn, handle) -> None:
    """A worker's loop: ``handle(op, stream_id, payload)`` per request until told to stop; a failing
    request costs that request, never the worker."""
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if request is None:
            return
        op, stream_id, payload = request
        try:
            reply = (True, handle(op, stream_id, payload))
        except Exception as exc:
            reply = (False, f"{op}: {exc!r}")
        try:
            conn.send(reply)
        except OSError:  # the gateway is gone (killed): nobody is left to answer
            return
