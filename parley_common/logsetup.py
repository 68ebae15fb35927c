"""One logging set-up for both programs.

On a terminal a line is ``LEVEL logger: message``. Under systemd, stderr is the journal's stream and
each line starts with its syslog priority instead (``<4>parley.uplink: ...``), which journald strips
and files the line at: ``journalctl -p warning -u parley-agent`` then shows warnings and worse only.
systemd says which stream is the journal in ``$JOURNAL_STREAM`` (``device:inode``); a stderr that was
redirected elsewhere by a child of the unit does not match it and stays plain.
"""

from __future__ import annotations

import logging
import os
import sys

PLAIN_FORMAT = "%(levelname)s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(name)s: %(message)s"
# Noisy library loggers and the level they start to matter at, at every level but debug.
QUIET_LIBRARIES = {"websockets.server": logging.WARNING, "aiohttp.access": logging.WARNING}


def syslog_priority(levelno: int) -> int:
    """syslog's numbers: 2 crit, 3 err, 4 warning, 5 notice, 6 info, 7 debug."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    return 6 if levelno >= logging.INFO else 7


def stream_is_journal(stream, environ=os.environ) -> bool:
    device, _, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        status = os.fstat(stream.fileno())
        return (status.st_dev, status.st_ino) == (int(device), int(inode))
    except (AttributeError, OSError, ValueError):  # no such variable, or not a real file descriptor
        return False


class JournalFormatter(logging.Formatter):
    """Every line of a record (a traceback too) carries the record's priority: journald reads lines."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def configure_logging(level: str, stream=None) -> None:
    """The root logger at ``level`` writing to ``stream`` (stderr); a no-op if it already has a handler."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    journal = stream_is_journal(stream)
    handler.setFormatter(JournalFormatter(JOURNAL_FORMAT) if journal else logging.Formatter(PLAIN_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    if logging.getLevelName(level.upper()) != logging.DEBUG:
        for name, library_level in QUIET_LIBRARIES.items():
            logging.getLogger(name).setLevel(library_level)
