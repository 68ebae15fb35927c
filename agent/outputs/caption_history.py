"""The captions page's last finals, kept on disk so a restarted agent shows the room what was said.

Not the record (that is the transcript, fsynced): a convenience for the screen, so it is appended
and flushed without fsync, read back at start (a torn last line is skipped) and compacted to the
last ``keep`` captions then and whenever it has grown to four times that. A failing disk is logged
once and the page goes on from memory.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from pathlib import Path
from typing import TextIO

log = logging.getLogger("parley.http")

FILE_NAME = "captions-history.jsonl"


def history_path(configured: str | None) -> Path | None:
    """``outputs.http.history_file``, else captions-history.jsonl in systemd's StateDirectory, else none."""
    if configured:
        return Path(configured)
    state = os.environ.get("STATE_DIRECTORY")
    return Path(state.split(":")[0]) / FILE_NAME if state else None


class CaptionHistory:
    def __init__(self, path: Path | None, keep: int):
        self.path = path
        self.keep = keep
        self._file: TextIO | None = None
        self._failed = False
        self._recent: deque[dict] = deque(maxlen=keep)
        self._lines = 0

    def load(self) -> list[dict]:
        """The last ``keep`` captions an earlier run left (oldest first), the file compacted to them."""
        if self.path is None:
            return []
        captions = []
        try:
            with self.path.open(encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    try:
                        caption = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # torn by a power cut
                    if isinstance(caption, dict) and "utterance" in caption:
                        captions.append(caption)
        except FileNotFoundError:
            pass
        except OSError as exc:
            self._fail("read", exc)
        self._recent.extend(captions)
        self._guard("write", self._rewrite)
        return list(self._recent)

    def append(self, caption: dict) -> None:
        self._recent.append(caption)
        if self._file is not None:
            self._guard("write", lambda: self._write(caption))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _rewrite(self) -> None:
        self.close()
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".new")
        with partial.open("w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(c, ensure_ascii=False) + "\n" for c in self._recent)
        partial.replace(self.path)
        self._file, self._lines = self.path.open("a", encoding="utf-8"), len(self._recent)

    def _write(self, caption: dict) -> None:
        if self._file is None:
            return
        self._file.write(json.dumps(caption, ensure_ascii=False) + "\n")
        self._file.flush()
        self._lines += 1
        if self._lines > 4 * self.keep:
            self._rewrite()

    def _guard(self, what: str, action) -> None:
        try:
            action()
        except OSError as exc:
            self._fail(what, exc)

    def _fail(self, what: str, exc: OSError) -> None:
        if not self._failed:
            log.error("cannot %s the captions history %s (%s); the page keeps only what this run shows",
                      what, self.path, exc)
        self._failed = True
