"""Subtitles from finals: SubRip (.srt) and WebVTT (.vtt), one file per language.

Cue times come from the audio clock: an utterance's ``start_sample`` and ``duration_ms`` say when
the words were spoken, not when the result arrived. Long text is cut for reading following the
Netflix Timed Text Style Guide's general requirements (also the BBC's order of magnitude): at most
42 characters a line, 2 lines a cue, a cue on screen 5/6 s to 7 s. An utterance's time is shared
among its cues in proportion to their characters; cues never overlap and never go back in time.

The audio clock restarts with the agent, so each run (``session``) is placed on one timeline: the
first as it is, each later one where the wall clock says it began (counted from the first run's
audio start) and never before the end of what is already there. The live files append across
restarts; ``STEM.timeline.json`` beside them keeps that origin.
"""

from __future__ import annotations

import json
import logging
import math
import re
import textwrap
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import srt

from agent.events import FinalResult
from agent.outputs.config import SubtitlesConfig
from parley_common.languages import base_language

MAX_LINE_CHARS = 42
MAX_LINES = 2
MIN_CUE_S = 5 / 6
MAX_CUE_S = 7.0
SESSION_GAP_S = 1.0  # at least this between the last cue of one run and the first of the next
SOURCE = "source"
_CUE_TIMES = re.compile(r"^\d+:\d\d:\d\d[,.]\d{3} --> (\d+):(\d\d):(\d\d)[,.](\d{3})", re.M)

log = logging.getLogger("parley.subtitles")


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str  # lines joined by "\n"


def utterance_text(record: FinalResult | dict, language: str) -> str:
    """The text of one language ('source': what was recognized) from a final or a transcript record.

    In a conversation, a line spoken in ``language`` itself is its recognized text, not a translation."""
    if isinstance(record, FinalResult):
        source, translations, spoken = record.source_text, record.translations, record.language
    else:
        source, translations, spoken = record.get("source", ""), record.get("translations") or {}, record.get("language")
    spoken_base = base_language(spoken or "")
    return (source if language in (SOURCE, spoken_base) else translations.get(language, "")).strip()


def split_cues(text: str, start_s: float, duration_s: float) -> list[Cue]:
    """One utterance as readable cues: lines of <= 42 characters, <= 2 lines and <= 7 s a cue."""
    lines = textwrap.wrap(" ".join(text.split()), MAX_LINE_CHARS, break_long_words=True)
    if not lines:
        return []
    count = max(math.ceil(len(lines) / MAX_LINES), math.ceil(duration_s / MAX_CUE_S))
    count = min(count, len(lines))  # never a cue without words; a one-line talker past 7 s keeps one cue
    groups = [lines[round(i * len(lines) / count):round((i + 1) * len(lines) / count)] for i in range(count)]
    total_chars = sum(len(line) for line in lines)
    cues, at_s = [], start_s
    for group in groups:
        share_s = duration_s * sum(len(line) for line in group) / total_chars
        cues.append(Cue(at_s, at_s + share_s, "\n".join(group)))
        at_s += share_s
    return cues


class CueTimeline:
    """Makes cue times fit the guidelines across utterances: >= 5/6 s on screen, no overlap."""

    def __init__(self, last_end_s: float = 0.0) -> None:
        self._last_end_s = last_end_s

    def place(self, cue: Cue) -> Cue:
        start_s = round(max(cue.start_s, self._last_end_s), 3)  # whole milliseconds: what both formats hold
        end_s = round(max(cue.end_s, start_s + MIN_CUE_S), 3)
        self._last_end_s = end_s
        return Cue(start_s, end_s, cue.text)


def _timestamp(seconds: float, separator: str) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{separator}{ms % 1000:03d}"


def format_cue(cue: Cue, index: int, fmt: str) -> str:
    """One cue block (ending in a blank line). SRT through the ``srt`` library; VTT is its sibling."""
    if fmt == "srt":
        return srt.Subtitle(index, timedelta(seconds=cue.start_s), timedelta(seconds=cue.end_s), cue.text).to_srt()
    return f"{index}\n{_timestamp(cue.start_s, '.')} --> {_timestamp(cue.end_s, '.')}\n{cue.text}\n\n"


VTT_HEADER = "WEBVTT\n\n"


def cue_times(record: FinalResult | dict, sample_rate_hz: int) -> tuple[float, float] | None:
    """(start, duration) in seconds of its run's audio, or None if the record has no audio times."""
    if isinstance(record, FinalResult):
        start_sample, duration_ms = record.start_sample, record.duration_ms
    else:
        start_sample, duration_ms = record.get("start_sample"), record.get("duration_ms")
    if start_sample is None or duration_ms is None:
        return None
    return start_sample / sample_rate_hz, duration_ms / 1000


def started_at_s(record: FinalResult | dict) -> float | None:
    """Wall-clock start (Unix seconds) of a final or a transcript record; None for older records."""
    if isinstance(record, FinalResult):
        return record.started_at_s
    try:
        return datetime.fromisoformat(record["started_at"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None


class SessionTimeline:
    """Each run's audio clock onto one timeline; ``origin_s``: the first run's audio start, wall clock."""

    def __init__(self, origin_s: float | None = None, end_s: float = 0.0, fresh: bool = True):
        self.origin_s, self.end_s, self.fresh = origin_s, end_s, fresh
        self._offsets: dict[object, float] = {}

    def offset(self, session: object, start_s: float, spoken_at_s: float | None) -> float:
        """Seconds to add to ``session``'s audio clock; fixed by its first utterance (``start_s`` into it)."""
        if session in self._offsets:
            return self._offsets[session]
        audio_start_s = None if spoken_at_s is None else spoken_at_s - start_s
        if self.fresh:
            offset_s, self.fresh = 0.0, False
            self.origin_s = audio_start_s
        else:
            offset_s = self.end_s + SESSION_GAP_S - start_s
            if audio_start_s is not None and self.origin_s is not None:
                offset_s = max(offset_s, audio_start_s - self.origin_s)
        self._offsets[session] = offset_s
        return offset_s

    def placed(self, end_s: float) -> None:
        self.end_s = max(self.end_s, end_s)


def _by_session(records: list[dict], sample_rate_hz: int) -> list[list[tuple[float, float, dict]]]:
    """Records with audio times, grouped by run, runs in the order they began. A record without a
    session (written before sessions existed) starts a new run wherever the audio clock goes back."""
    runs: dict[object, list[tuple[float, float, dict]]] = {}
    legacy, last_start_s = 0, -1.0
    for record in records:
        times = cue_times(record, sample_rate_hz)
        if times is None:
            continue
        key = record.get("session")
        if key is None:
            legacy += times[0] < last_start_s
            last_start_s, key = times[0], ("legacy", legacy)
        runs.setdefault(key, []).append((*times, record))
    groups = [sorted(entries, key=lambda entry: entry[0]) for entries in runs.values()]
    starts = [[spoken - start for start, _, r in g if (spoken := started_at_s(r)) is not None] for g in groups]
    if all(starts):  # every run knows its wall-clock start: in that order (a replayed utterance joins its run)
        groups = [g for _, g in sorted(zip([min(s) for s in starts], groups, strict=True), key=lambda pair: pair[0])]
    return groups


def render(records: list[dict], language: str, fmt: str, sample_rate_hz: int) -> str:
    """A whole subtitle file from transcript records (``parley subtitles``)."""
    cue_timeline, sessions = CueTimeline(), SessionTimeline()
    blocks: list[str] = []
    for run in _by_session(records, sample_rate_hz):
        for start_s, duration_s, record in run:
            offset_s = sessions.offset(id(run), start_s, started_at_s(record))
            for cue in split_cues(utterance_text(record, language), start_s + offset_s, duration_s):
                placed = cue_timeline.place(cue)
                sessions.placed(placed.end_s)
                blocks.append(format_cue(placed, len(blocks) + 1, fmt))
            sessions.placed(start_s + offset_s + duration_s)
    return (VTT_HEADER if fmt == "vtt" else "") + "".join(blocks)


def transcript_languages(records: list[dict]) -> set[str]:
    """What ``render`` can be asked for: 'source', every translation and every language spoken."""
    languages = {SOURCE}
    for record in records:
        languages.update(record.get("translations") or {})
        if record.get("language"):
            languages.add(base_language(record["language"]))
    return languages


def _existing_cues(path: Path) -> tuple[int, float, str]:
    """(cues, end of the last one in seconds, how the file ends) of a live file an earlier run left."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return 0, 0.0, ""
    ends = [int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000 for h, m, s, ms in _CUE_TIMES.findall(text)]
    return len(ends), max(ends, default=0.0), text[-2:]


class _LiveFile:
    """One STEM.LANG.FMT, opened for appending: an earlier run's cues stay, numbering goes on. A write
    that fails (a full disk) is cut back off, so the file stays valid."""

    def __init__(self, path: Path, fmt: str):
        self.fmt = fmt
        self.cues, _, tail = _existing_cues(path)
        self.file = path.open("ab", buffering=0)
        if not tail and fmt == "vtt":
            self.append(VTT_HEADER)
        elif tail and tail != "\n\n":  # a torn last block (power cut): close it before the next cue
            self.append("\n" if tail.endswith("\n") else "\n\n")

    def append(self, text: str) -> None:
        data, before = text.encode(), self.file.seek(0, 2)
        try:
            written = 0
            while written < len(data):
                written += self.file.write(data[written:])
        except OSError:
            try:
                self.file.truncate(before)
            except OSError:
                pass
            raise


class SubtitleWriter:
    """Live subtitles: each final appends its cues to STEM.LANG.srt/.vtt and flushes them."""

    def __init__(self, config: SubtitlesConfig, sample_rate_hz: int):
        self.config = config
        self.sample_rate_hz = sample_rate_hz
        self.directory = Path(config.directory) if config.directory else None
        self._lock = threading.Lock()
        self._files: dict[tuple[str, str], _LiveFile] = {}
        self._timelines: dict[str, CueTimeline] = {}
        self._sessions = SessionTimeline()
        self._origin_path = self.directory / f"{config.stem}.timeline.json" if self.directory else None
        if self.directory:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._sessions = self._resume(self.directory)

    def path(self, language: str, fmt: str) -> Path:
        assert self.directory is not None, "no subtitles directory: nothing is written"  # write() returns first
        return self.directory / f"{self.config.stem}.{language}.{fmt}"

    def _resume(self, directory: Path) -> SessionTimeline:
        """Where earlier runs left the files: the end of their last cue and the timeline's origin."""
        files = [p for fmt in self.config.formats for p in directory.glob(f"{self.config.stem}.*.{fmt}")]
        if not files:
            return SessionTimeline()
        try:
            origin_s = float(json.loads((directory / f"{self.config.stem}.timeline.json").read_text())["origin_s"])
        except (OSError, ValueError, KeyError, TypeError):
            origin_s = None
        end_s = max(_existing_cues(p)[1] for p in files)
        for language in {p.name.split(".")[-2] for p in files}:
            self._timelines[language] = CueTimeline(end_s)
        return SessionTimeline(origin_s, end_s, fresh=False)

    def write(self, event: FinalResult) -> None:
        if self.directory is None:
            return
        times = cue_times(event, self.sample_rate_hz)
        if times is None:
            return
        languages = self.config.languages or tuple(event.translations)
        failure: OSError | None = None
        with self._lock:
            fresh = self._sessions.fresh
            offset_s = self._sessions.offset(event.session, times[0], event.started_at_s)
            if fresh and self._sessions.origin_s is not None:
                self._save_origin(self._sessions.origin_s)
            start_s = times[0] + offset_s
            self._sessions.placed(start_s + times[1])
            for language in languages:
                timeline = self._timelines.setdefault(language, CueTimeline())
                cues = [timeline.place(c) for c in split_cues(utterance_text(event, language), start_s, times[1])]
                for cue in cues:
                    self._sessions.placed(cue.end_s)
                for fmt in self.config.formats:
                    try:
                        self._append(language, fmt, cues)
                    except OSError as exc:  # the other files still get their cues
                        failure = failure or exc
        if failure is not None:
            raise failure  # these cues are skipped; `parley subtitles` rebuilds them from the transcript

    def _save_origin(self, origin_s: float) -> None:
        if self._origin_path is None:
            return
        try:
            self._origin_path.write_text(json.dumps({"origin_s": origin_s}) + "\n")
        except OSError as exc:
            log.warning("cannot write %s (%s); a restart will continue the files without it", self._origin_path, exc)

    def _append(self, language: str, fmt: str, cues: list[Cue]) -> None:
        key = (language, fmt)
        if key not in self._files:
            self._files[key] = _LiveFile(self.path(language, fmt), fmt)
        live = self._files[key]
        if cues:
            live.append("".join(format_cue(cue, live.cues + n, fmt) for n, cue in enumerate(cues, 1)))
            live.cues += len(cues)

    def close(self) -> None:
        with self._lock:
            for live in self._files.values():
                live.file.close()
            self._files.clear()
