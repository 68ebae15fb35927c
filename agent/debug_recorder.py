"""``debug.record_dir``: the last N minutes of what the box heard, in a bounded ring on disk.

Each chunk of ``chunk_s`` is four files named by the UTC time the chunk began:
``STAMP-raw.wav`` (every mic, as captured), ``STAMP-beam.wav`` (the echo-cancelled, beamformed,
levelled mono the VAD and the uplink get), ``STAMP-reference.wav`` (what the speaker played, aligned
as the echo canceller was fed it: ``parley analyze RAW --reference REFERENCE`` replays the chunk) and
``STAMP-segments.jsonl`` (each utterance's start and end with sample index and direction). When a chunk closes, the oldest chunks beyond ``record_minutes`` are deleted,
also those left by an earlier run, so the folder never grows past the ring.

The pipeline thread only puts frames on a bounded queue; a writer thread does the disk I/O. If the
disk is slower than real time, frames are dropped and counted, never the pipeline stalled.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
import wave
from pathlib import Path

import numpy as np

from parley_common.frames import Frame
from agent.events import SpeechEnded, SpeechStarted
from agent.queues import QUEUES

log = logging.getLogger("parley.debug_recorder")

QUEUE_ITEMS = 500  # 10 s of 20 ms frames
SUFFIXES = ("-raw.wav", "-beam.wav", "-reference.wav", "-segments.jsonl")


class DebugRecorder:
    def __init__(self, directory: str, record_minutes: float, chunk_s: float):
        self.directory = Path(directory)
        self.chunk_s = chunk_s
        self.keep_chunks = max(1, math.ceil(record_minutes * 60 / chunk_s))
        self.dropped_frames = 0
        self._queue: queue.Queue = QUEUES["debug"].make(QUEUE_ITEMS)
        self._thread = threading.Thread(target=self._run, name="debug-recorder", daemon=True)
        self._chunk: _Chunk | None = None

    @classmethod
    def from_config(cls, config) -> DebugRecorder | None:
        """None when ``debug.record_dir`` is not set (the default)."""
        if not config.record_dir:
            return None
        return cls(config.record_dir, config.record_minutes, config.chunk_s)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def frame(self, raw: Frame, beam: Frame | None, reference=None) -> None:
        """``reference``: the echo canceller's reference for ``raw`` (int16 (n,)); None: silence."""
        self._put(("frame", raw, beam, reference))

    def segment(self, event) -> None:
        """Utterance starts and ends go to the log; other events are ignored."""
        if isinstance(event, SpeechStarted):
            self._put(("segment", {"event": "started", "utterance_id": event.utterance_id,
                                   "start_sample": event.start_sample, "azimuth_deg": event.azimuth_deg,
                                   "doa_confidence": round(event.doa_confidence, 3)}))
        elif isinstance(event, SpeechEnded):
            self._put(("segment", {"event": "ended", "utterance_id": event.utterance_id,
                                   "end_sample": event.end_sample, "duration_ms": event.duration_ms,
                                   "reason": event.reason, "azimuth_deg": event.azimuth_deg,
                                   "doa_confidence": round(event.doa_confidence, 3)}))

    def close(self, timeout_s: float = 1.0) -> None:
        """Finish the files on disk; what is still queued after ``timeout_s`` is lost."""
        if self._thread.is_alive():
            try:
                self._queue.put(("close",), timeout=timeout_s)
            except queue.Full:
                pass
            self._thread.join(timeout=timeout_s)
        if self.dropped_frames:
            log.warning("debug recorder dropped %d frame(s): the disk is slower than real time", self.dropped_frames)

    def _put(self, item) -> None:
        if QUEUES["debug"].offer(self._queue, item):
            self.dropped_frames += item[0] == "frame"

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item[0] == "close":
                    break
                if item[0] == "frame":
                    self._write_frame(*item[1:])
                elif self._chunk is not None:
                    self._chunk.log(item[1])
        except OSError as exc:  # a full or vanished disk ends the recording, not the agent
            log.error("debug recorder stopped: %s", exc)
        finally:
            if self._chunk is not None:
                self._chunk.close()

    def _write_frame(self, raw: Frame, beam: Frame | None, reference=None) -> None:
        if self._chunk is not None and self._chunk.samples >= self.chunk_s * raw.sample_rate_hz:
            self._chunk.close()
            self._chunk = None
        chunk = self._chunk
        if chunk is None:
            chunk = self._chunk = _Chunk(self.directory, raw)
            self._prune()
        chunk.write(raw, beam, reference)

    def _prune(self) -> None:
        stamps = sorted({p.name[: -len(s)] for s in SUFFIXES for p in self.directory.glob("*" + s)})
        for stamp in stamps[: max(0, len(stamps) - self.keep_chunks)]:
            for suffix in SUFFIXES:
                (self.directory / (stamp + suffix)).unlink(missing_ok=True)


class _Chunk:
    def __init__(self, directory: Path, first: Frame):
        now = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{now % 1:.3f}"[1:].replace(".", "_")
        self.raw = _open_wav(directory / f"{stamp}-raw.wav", first.channels, first.sample_rate_hz)
        self.beam = _open_wav(directory / f"{stamp}-beam.wav", 1, first.sample_rate_hz)
        self.reference = _open_wav(directory / f"{stamp}-reference.wav", 1, first.sample_rate_hz)
        self.segments = open(directory / f"{stamp}-segments.jsonl", "a")
        self.segments.write(json.dumps({"event": "chunk", "start_sample": first.start_sample,
                                        "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}) + "\n")
        self.samples = 0

    def write(self, raw: Frame, beam: Frame | None, reference=None) -> None:
        self.raw.writeframes(raw.samples.astype("<i2").tobytes())
        played = reference if reference is not None else np.zeros(raw.n_samples, np.int16)
        self.reference.writeframes(np.asarray(played, dtype="<i2").tobytes())
        if beam is not None:
            self.beam.writeframes(beam.samples.astype("<i2").tobytes())
        self.samples += raw.n_samples

    def log(self, record: dict) -> None:
        self.segments.write(json.dumps(record) + "\n")
        self.segments.flush()

    def close(self) -> None:
        self.raw.close()
        self.beam.close()
        self.reference.close()
        self.segments.close()


def _open_wav(path: Path, channels: int, rate_hz: int) -> wave.Wave_write:
    out = wave.open(str(path), "wb")
    out.setnchannels(channels)
    out.setsampwidth(2)
    out.setframerate(rate_hz)
    return out
