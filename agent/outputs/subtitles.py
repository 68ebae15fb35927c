"""Subtitles from finals: SubRip (.srt) and WebVTT (.vtt), one file per language.

Cue times come from the audio clock: an utterance's ``start_sample`` and ``duration_ms`` say when
the words were spoken, not when the result arrived. Long text is cut for reading following the
Netflix Timed Text Style Guide's general requirements (also the BBC's order of magnitude): at most
42 characters a line, 2 lines a cue, a cue on screen 5/6 s to 7 s. An utterance's time is shared
among its cues in proportion to their characters; cues never overlap and never go back in time.
"""

from __future__ import annotations

import math
import textwrap
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import srt

from agent.events import FinalResult
from agent.outputs.config import SubtitlesConfig
from parley_common.languages import base_language

MAX_LINE_CHARS = 42
MAX_LINES = 2
MIN_CUE_S = 5 / 6
MAX_CUE_S = 7.0
SOURCE = "source"


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

    def __init__(self) -> None:
        self._last_end_s = 0.0

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
    """(start, duration) in seconds of audio, or None if the record has no audio times."""
    if isinstance(record, FinalResult):
        start_sample, duration_ms = record.start_sample, record.duration_ms
    else:
        start_sample, duration_ms = record.get("start_sample"), record.get("duration_ms")
    if start_sample is None or duration_ms is None:
        return None
    return start_sample / sample_rate_hz, duration_ms / 1000


def render(records: list[dict], language: str, fmt: str, sample_rate_hz: int) -> str:
    """A whole subtitle file from transcript records (``parley subtitles``)."""
    timeline, blocks = CueTimeline(), []
    for record in records:
        times = cue_times(record, sample_rate_hz)
        if times is None:
            continue
        for cue in split_cues(utterance_text(record, language), *times):
            blocks.append(format_cue(timeline.place(cue), len(blocks) + 1, fmt))
    return (VTT_HEADER if fmt == "vtt" else "") + "".join(blocks)


class _LiveFile:
    """One live file; a write that fails (a full disk) is cut back off, so the file stays valid."""

    def __init__(self, path: Path, fmt: str):
        self.fmt = fmt
        self.file = path.open("wb", buffering=0)
        self.cues = 0
        if fmt == "vtt":
            self.append(VTT_HEADER)

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
        if self.directory:
            self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, language: str, fmt: str) -> Path:
        return self.directory / f"{self.config.stem}.{language}.{fmt}"

    def write(self, event: FinalResult) -> None:
        if self.directory is None:
            return
        times = cue_times(event, self.sample_rate_hz)
        if times is None:
            return
        languages = self.config.languages or tuple(event.translations)
        failure: OSError | None = None
        with self._lock:
            for language in languages:
                timeline = self._timelines.setdefault(language, CueTimeline())
                cues = [timeline.place(c) for c in split_cues(utterance_text(event, language), *times)]
                for fmt in self.config.formats:
                    try:
                        self._append(language, fmt, cues)
                    except OSError as exc:  # the other files still get their cues
                        failure = failure or exc
        if failure is not None:
            raise failure  # these cues are skipped; `parley subtitles` rebuilds them from the transcript

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
