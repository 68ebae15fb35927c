"""The outbox on disk: every utterance owed a result survives a restart, a crash or a power cut.

One append-only file per utterance in ``uplink.spool_dir`` (systemd's StateDirectory). A file is a run of records — one type byte (``S`` started, ``A``
audio, ``E`` ended), a 4-byte big-endian length, the payload (JSON for S and E, 16 kHz PCM for
A) — so a power cut can at worst tear the last record, which ``load`` ignores. Records are
written unbuffered (a crash loses nothing) and fsynced at the start and the end of an utterance
and at least every ``FSYNC_INTERVAL_S`` in between (a power cut loses at most that). A file is
removed once the results side acknowledged its final (every durable output has it) or the outbox
dropped it, so the size is bounded by the outbox's
audio budget (``outbox_max_audio_s``). A disk that fails costs the spool (logged once), never
the utterance in memory.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import struct
import time
from pathlib import Path
from typing import BinaryIO

from agent.events import SpeechEnded, SpeechStarted

log = logging.getLogger("parley.uplink")

FSYNC_INTERVAL_S = 1.0
SUFFIX = ".utt"
_RECORD = struct.Struct(">cI")


@dataclasses.dataclass
class SpooledUtterance:
    started: SpeechStarted
    chunks: list[bytes]
    ended: SpeechEnded | None


class Spool:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._open: dict[int, tuple[BinaryIO, float]] = {}  # utterance id -> (file, last fsync)
        self.problem: str | None = None  # why the last write failed; None once one works again

    def _path(self, utterance_id: int) -> Path:
        return self.directory / f"{utterance_id:010d}{SUFFIX}"

    # -- writing (the uplink thread) -----------------------------------------------------------

    def started(self, event: SpeechStarted) -> None:
        def write():
            fh = self._path(event.utterance_id).open("wb", buffering=0)  # a crash loses nothing written
            self._open[event.utterance_id] = (fh, 0.0)
            self._append(event.utterance_id, b"S", json.dumps(dataclasses.asdict(event)).encode(), sync=True)
            self._sync_directory()

        self._guard(write)

    def audio(self, utterance_id: int, pcm: bytes) -> None:
        if utterance_id in self._open:
            self._guard(lambda: self._append(utterance_id, b"A", pcm, sync=False))

    def ended(self, event: SpeechEnded) -> None:
        if event.utterance_id not in self._open:
            return

        def write():
            self._append(event.utterance_id, b"E", json.dumps(dataclasses.asdict(event)).encode(), sync=True)
            self._open.pop(event.utterance_id)[0].close()

        self._guard(write)

    def remove(self, utterance_id: int) -> None:
        def unlink():
            entry = self._open.pop(utterance_id, None)
            if entry:
                entry[0].close()
            self._path(utterance_id).unlink(missing_ok=True)

        self._guard(unlink, proves_writable=False)  # a full disk still unlinks

    def close(self) -> None:
        """Flush what is open (an utterance cut off by the stop); it is resent after the restart."""
        for utterance_id in list(self._open):
            fh, _ = self._open.pop(utterance_id)
            def flush(fh=fh) -> None:
                os.fsync(fh.fileno())
                fh.close()

            self._guard(flush)

    def _append(self, utterance_id: int, kind: bytes, payload: bytes, sync: bool) -> None:
        fh, synced_at = self._open[utterance_id]
        fh.write(_RECORD.pack(kind, len(payload)) + payload)
        now = time.monotonic()
        if sync or now - synced_at >= FSYNC_INTERVAL_S:
            os.fsync(fh.fileno())
            self._open[utterance_id] = (fh, now)

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _guard(self, action, proves_writable: bool = True) -> None:
        """A failing disk costs the spool, never the utterance in memory; ``problem`` says so (the
        daemon logs it and shows it in /healthz) until a write works again."""
        try:
            action()
        except OSError as exc:
            self.problem = f"{exc.strerror or exc} in {self.directory}: utterances owed a result are in memory only"
        else:
            if proves_writable:
                self.problem = None

    # -- reading (at start) --------------------------------------------------------------------

    def load(self) -> list[SpooledUtterance]:
        """Every utterance an earlier run left, oldest first; an unreadable file is logged and removed."""
        spooled = []
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            try:
                spooled.append(_read(path))
            except (OSError, ValueError, TypeError, KeyError) as exc:
                log.warning("spool file %s is unreadable (%s); removed", path, exc)
                path.unlink(missing_ok=True)
        if spooled:
            log.info("%d utterance(s) from before the restart will be sent", len(spooled))
        return spooled

    def next_utterance_id(self) -> int:
        """An utterance id no spooled utterance uses, so ids never collide across a restart."""
        ids = [int(p.name[: -len(SUFFIX)]) for p in self.directory.glob(f"*{SUFFIX}") if p.name[:-len(SUFFIX)].isdigit()]
        return max(ids, default=0) + 1


def _read(path: Path) -> SpooledUtterance:
    data = path.read_bytes()
    started, ended, chunks, offset = None, None, [], 0
    while offset + _RECORD.size <= len(data):
        kind, length = _RECORD.unpack_from(data, offset)
        payload = data[offset + _RECORD.size: offset + _RECORD.size + length]
        if len(payload) < length:
            break  # torn by a power cut
        offset += _RECORD.size + length
        if kind == b"S":
            started = SpeechStarted(**json.loads(payload))
        elif kind == b"A":
            chunks.append(payload[: len(payload) // 2 * 2])
        elif kind == b"E":
            ended = SpeechEnded(**json.loads(payload))
        else:
            raise ValueError(f"unknown record type {kind!r} at byte {offset}")
    if started is None:
        raise ValueError("no start record")
    return SpooledUtterance(started, chunks, ended)
