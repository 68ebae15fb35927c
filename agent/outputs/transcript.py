"""The transcript: one JSON line per final, appended, flushed and fsynced, rotated by size.

Each line names its utterance by ``session`` and ``utterance`` (ids restart with the process, the
session does not repeat) and says when it was spoken on the wall clock (``started_at``/``ended_at``),
so two runs appended to one file stay distinct and in order.

A power cut can at worst leave a torn last line; ``read_transcript`` skips it, so what was
written before is always readable.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from io import FileIO
from pathlib import Path

from agent.events import FinalResult
from agent.outputs.config import TranscriptConfig


class TranscriptWriter:
    """``write`` raises on a full or failing disk, leaving the file as it was (no torn line), so the
    caller can keep the final and write it again later (``RetryingWriter``)."""

    def __init__(self, config: TranscriptConfig):
        self.config = config
        self.path = Path(config.path) if config.path else None
        self._lock = threading.Lock()
        self._file: FileIO | None = None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open(self.path)

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def _open(self, path: Path) -> FileIO:
        self._file = path.open("ab", buffering=0)  # unbuffered: a failed write leaves nothing queued
        return self._file

    def write(self, event: FinalResult) -> None:
        path = self.path
        if path is None:
            return
        ended_at_s = None
        if event.started_at_s is not None and event.duration_ms is not None:
            ended_at_s = event.started_at_s + event.duration_ms / 1000
        record = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "session": event.session,
            "utterance": event.utterance_id,
            "started_at": wall_clock_iso(event.started_at_s),
            "ended_at": wall_clock_iso(ended_at_s),
            "azimuth_deg": None if event.azimuth_deg is None else round(event.azimuth_deg, 1),
            "start_sample": event.start_sample,
            "duration_ms": None if event.duration_ms is None else round(event.duration_ms),
            "party": event.party,
            "language": event.language,
            "source": event.source_text,
            "translations": event.translations,
        }
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode()
        with self._lock:
            file = self._file if self._file is not None else self._open(path)
            if file.tell() + len(line) > self.config.max_bytes:
                file = self._rotate(file, path)
            self._append(file, line)

    def _append(self, file: FileIO, line: bytes) -> None:
        before = file.seek(0, os.SEEK_END)
        try:
            written = 0
            while written < len(line):
                written += file.write(line[written:])
            if self.config.fsync:
                os.fsync(file.fileno())
        except OSError:
            try:
                os.ftruncate(file.fileno(), before)  # no torn line: the retry writes it whole
            except OSError:
                pass
            raise

    def _rotate(self, file: FileIO, path: Path) -> FileIO:
        file.close()
        self._file = None
        for index in range(self.config.keep_files, 0, -1):
            older = path.with_name(f"{path.name}.{index}")
            newer = path.with_name(f"{path.name}.{index - 1}") if index > 1 else path
            if index == self.config.keep_files and older.exists():
                older.unlink()
            if newer.exists():
                newer.rename(older)
        if self.config.keep_files == 0:
            path.unlink(missing_ok=True)
        return self._open(path)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def wall_clock_iso(epoch_s: float | None) -> str | None:
    """UTC, to the millisecond: ``2026-12-03T12:25:57.123+00:00``."""
    if epoch_s is None:
        return None
    return datetime.fromtimestamp(epoch_s, timezone.utc).isoformat(timespec="milliseconds")


def read_transcript(path: str | Path) -> list[dict]:
    """Every complete record; a torn last line (power cut mid-write) is skipped."""
    records = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


class NotATranscript(ValueError):
    """The file is not a Parley transcript (a config, a recording): said with what was found."""


def load_transcript(path: str | Path) -> list[dict]:
    """For commands: the records, or NotATranscript if the file holds something else.

    A transcript is JSON lines, each an object with ``source`` and ``translations``; the first
    complete line decides (a torn or odd later line is skipped, as ``read_transcript`` does)."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if b"\0" in head:
        raise NotATranscript(f"{path}: a binary file (a recording?), not a JSON-lines transcript")
    lines = head.split(b"\n", 1)
    first = lines[0].decode("utf-8", errors="replace").strip() if len(lines) > 1 else ""  # else torn or empty
    if first:
        try:
            record = json.loads(first)
        except json.JSONDecodeError:
            record = None
        if not (isinstance(record, dict) and "source" in record and "translations" in record):
            shown = first if len(first) <= 60 else first[:57] + "..."
            raise NotATranscript(f"{path}:1: {shown!r} is not a transcript record "
                                 "(a JSON object with 'source' and 'translations', as outputs.transcript writes)")
    return [r for r in read_transcript(path) if isinstance(r, dict) and "translations" in r]
