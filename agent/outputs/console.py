"""Live captions on the console or the journal: partials overwrite one line on a TTY, finals stay.
In the journal each line carries its syslog priority: partials and speech starts are debug, so
``journalctl -u parley-agent`` at the default level shows finals and link changes only."""

from __future__ import annotations

import sys
import threading

from agent.events import FinalResult, LinkStatus, PartialResult, SpeechStarted, UplinkError
from agent.outputs.config import ConsoleConfig
from parley_common.languages import base_language
from parley_common.logsetup import stream_is_journal


def _direction(azimuth_deg: float | None) -> str:
    return f"{azimuth_deg:5.0f}°" if azimuth_deg is not None else "    –"


DEBUG, INFO, WARNING, ERROR = 7, 6, 4, 3  # syslog priorities


class ConsoleOutput:
    def __init__(self, config: ConsoleConfig, stream=None):
        self.config = config
        self.stream = stream or sys.stdout
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.journal = stream_is_journal(self.stream)
        self._lock = threading.Lock()
        self._partial_open = False
        self.finals_shown = 0

    def _write(self, line: str, transient: bool = False, priority: int = INFO) -> None:
        if not self.config.enabled:
            return
        with self._lock:
            if self.journal:
                self.stream.write(f"<{priority}>{line}\n")
            elif self.tty:
                self.stream.write("\r\x1b[2K" + line + ("" if transient else "\n"))
                self._partial_open = transient
            else:
                self.stream.write(line + "\n")
            self.stream.flush()

    def speech_started(self, event: SpeechStarted) -> None:
        self._write(f"[{event.utterance_id}] speech from {_direction(event.azimuth_deg).strip()}"
                    f" (confidence {event.doa_confidence:.2f})", transient=self.tty, priority=DEBUG)

    def partial(self, event: PartialResult) -> None:
        if self.config.show_partials:
            translations = "  ".join(f"{k}: {v}" for k, v in event.translations.items() if v)
            self._write(f"[{event.utterance_id}] … {event.source_text}  {translations}".rstrip(), transient=self.tty,
                        priority=DEBUG)

    def final(self, event: FinalResult) -> None:
        self.finals_shown += 1
        who = f"{event.party} " if event.party else ""
        spoken = base_language(event.language or "?")
        lines = [f"[{event.utterance_id}] {_direction(event.azimuth_deg)}  {who}{spoken}: {event.source_text or '(nothing recognized)'}"]
        indent = len(str(event.utterance_id)) + 10 + len(who)
        lines += [f"{'':>{indent}}{lang}: {text}" for lang, text in event.translations.items()]
        for line in lines:
            self._write(line)

    def link_status(self, event: LinkStatus) -> None:
        self._write(f"link {'up' if event.connected else 'down'}: {event.detail}", priority=INFO if event.connected else WARNING)

    def error(self, event: UplinkError) -> None:
        self._write(f"error: {event.message}", priority=ERROR)
