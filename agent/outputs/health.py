"""Each output fails on its own: its errors are logged once (then rate-limited), listed in
``/healthz`` ``problems`` and reported to the device state, and never reach another output.

The results thread hands every final to the console, the transcript, the subtitles, the speaker
and the HTTP server; a full disk under one of them must cost that one output only, and the
thread itself must never die (one ENOSPC used to end it, and every later final with it).

    health = OutputHealth(on_change=state.outputs_failing)
    health.run("transcript", transcript.write, final)   # False if it failed; never raises
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger("parley.outputs")

LOG_EVERY_S = 60.0  # while an output keeps failing, one line per this at most
RETRY_EVERY_S = 2.0  # a writer with a backlog tries again this often between finals


@dataclass
class _Failure:
    detail: str
    since_s: float
    errors: int
    logged_at_s: float


def describe(exc: BaseException) -> str:
    """``[Errno 28] No space left on device: '/x'`` without the class name or a traceback."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename!r}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return f"{type(exc).__name__}: {exc}"


class OutputHealth:
    """Which outputs are failing, and why. Thread-safe: the results, speaker and main threads report."""

    def __init__(self, on_change: Callable[[tuple[str, ...]], None] | None = None, clock=time.monotonic,
                 log_every_s: float = LOG_EVERY_S):
        self._on_change = on_change or (lambda failing: None)
        self._clock = clock
        self._log_every_s = log_every_s
        self._lock = threading.Lock()
        self._failing: dict[str, _Failure] = {}

    def run(self, name: str, action: Callable, *args) -> bool:
        """``action(*args)``; an exception marks ``name`` failing (and is not raised), success clears it."""
        try:
            action(*args)
        except Exception as exc:  # any output's bug or fault costs that output only
            self.failed(name, describe(exc))
            return False
        self.ok(name)
        return True

    def failed(self, name: str, detail: str) -> None:
        now = self._clock()
        with self._lock:
            new = name not in self._failing
            failure = self._failing.setdefault(name, _Failure(detail, now, 0, now))
            failure.errors += 1
            failure.detail = detail
            due = not new and now - failure.logged_at_s >= self._log_every_s
            if due:
                failure.logged_at_s = now
            failing = tuple(self._failing)
        if new:
            log.error("%s failed: %s; the other outputs go on, and it is retried", name, detail)
            self._on_change(failing)
        elif due:
            log.error("%s still failing (%d errors in %.0f s): %s", name, failure.errors, now - failure.since_s, detail)

    def ok(self, name: str) -> None:
        if name not in self._failing:  # the common case, without the lock
            return
        with self._lock:
            failure = self._failing.pop(name, None)
            failing = tuple(self._failing)
        if failure is not None:
            log.warning("%s works again (after %d error(s) in %.0f s)", name, failure.errors,
                        self._clock() - failure.since_s)
            self._on_change(failing)

    def report(self, name: str, problem: str | None) -> None:
        """For outputs that keep their own verdict (the spool): None is working."""
        if problem is None:
            self.ok(name)
        elif name not in self._failing or self._failing[name].detail != problem:
            self.failed(name, problem)

    @property
    def failing(self) -> tuple[str, ...]:
        return tuple(self._failing)

    def problems(self) -> list[str]:
        """One line per failing output, for ``/healthz``."""
        now = self._clock()
        with self._lock:
            return [f"{name} failing for {now - f.since_s:.0f} s ({f.errors} error(s)): {f.detail}"
                    for name, f in self._failing.items()]


class RetryingWriter:
    """A durable output's backlog: finals are written in order; one that fails is kept (up to
    ``max_pending``) and tried again with the next final and every ``RETRY_EVERY_S``, so writing
    resumes, in order, once the disk has room again. ``on_written(event)`` says it is safely stored."""

    def __init__(self, name: str, write: Callable, health: OutputHealth, on_written: Callable,
                 max_pending: int = 1000, clock=time.monotonic):
        self.name = name
        self._write = write
        self._health = health
        self._on_written = on_written
        self._pending: deque = deque()
        self._max_pending = max_pending
        self._clock = clock
        self._tried_at_s = 0.0
        self.lost = 0

    def put(self, event) -> None:
        if len(self._pending) >= self._max_pending:
            self._pending.popleft()  # still in the spool: sent again, and written, after a restart
            self.lost += 1
        self._pending.append(event)
        self.flush()

    def tick(self) -> None:
        if self._pending and self._clock() - self._tried_at_s >= RETRY_EVERY_S:
            self.flush()

    def flush(self) -> None:
        self._tried_at_s = self._clock()
        while self._pending:
            if not self._health.run(self.name, self._write, self._pending[0]):
                return
            self._on_written(self._pending.popleft())

    @property
    def pending(self) -> int:
        return len(self._pending)
