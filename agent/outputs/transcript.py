"""The transcript: one JSON line per final, appended, flushed and fsynced, rotated by size.

A power cut can at worst leave a torn last line; ``read_transcript`` skips it, so what was
written before is always readable.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path

from agent.events import FinalResult
from agent.outputs.config import TranscriptConfig


class TranscriptWriter:
    def __init__(self, config: TranscriptConfig):
        self.config = config
        self.path = Path(config.path) if config.path else None
        self._lock = threading.Lock()
        self._file = None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")

    def write(self, event: FinalResult) -> None:
        if self._file is None:
            return
        record = {
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "utterance": event.utterance_id,
            "azimuth_deg": None if event.azimuth_deg is None else round(event.azimuth_deg, 1),
            "start_sample": event.start_sample,
            "duration_ms": None if event.duration_ms is None else round(event.duration_ms),
            "party": event.party,
            "language": event.language,
            "source": event.source_text,
            "translations": event.translations,
        }
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            if self._file.tell() + len(line.encode()) > self.config.max_bytes:
                self._rotate()
            self._file.write(line)
            self._file.flush()
            if self.config.fsync:
                os.fsync(self._file.fileno())

    def _rotate(self) -> None:
        self._file.close()
        for index in range(self.config.keep_files, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            newer = self.path.with_name(f"{self.path.name}.{index - 1}") if index > 1 else self.path
            if index == self.config.keep_files and older.exists():
                older.unlink()
            if newer.exists():
                newer.rename(older)
        if self.config.keep_files == 0:
            self.path.unlink(missing_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


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
