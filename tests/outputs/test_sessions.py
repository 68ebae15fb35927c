"""Restarts don't forget who said what: two runs into one transcript and one set of live subtitle
files stay distinct and in order, and ``parley subtitles`` says clearly what it cannot do."""

from __future__ import annotations

import subprocess
from itertools import pairwise
import sys
import wave

import numpy as np
import pytest
import srt
import webvtt

from agent.events import FinalResult, SpeechStarted
from agent.outputs.config import SubtitlesConfig, TranscriptConfig
from agent.outputs.subtitles import MIN_CUE_S, SubtitleWriter, render
from agent.outputs.transcript import TranscriptWriter, read_transcript
from agent.session import UtteranceStamper, new_session_id

RATE_HZ = 16000
RUN_GAP_S = 100.0  # the second run starts 100 s (wall clock) after the first
# The issue's case: both runs' first utterance is "utterance 1 at sample 106720".
SPOKEN = [(1, 106720, 2600.0, "buenos días a todos"), (2, 180000, 3100.0, "la reunión empieza ahora"),
          (3, 260000, 2200.0, "gracias por venir")]


def run(writers, run_start_s: float) -> str:
    """One agent run: its utterances stamped as the daemon does (at the end of each utterance's first
    frame), each final written to every writer. Returns the run's session."""
    now = {"s": run_start_s}
    stamper = UtteranceStamper(new_session_id(run_start_s), RATE_HZ, clock=lambda: now["s"])
    for utterance_id, start_sample, duration_ms, text in SPOKEN:
        now["s"] = run_start_s + (start_sample + 512) / RATE_HZ
        started = stamper.stamp(SpeechStarted(utterance_id, start_sample, 30.0, 0.8), start_sample + 512)
        final = FinalResult(utterance_id, f"utterance {utterance_id}", {"es": text}, 30.0, start_sample, duration_ms,
                            session=started.session, started_at_s=started.started_at_s)
        for writer in writers:
            writer.write(final)
    for writer in writers:
        writer.close()
    return stamper.session


def cues_of(srt_text: str) -> list[tuple[float, float, str]]:
    return [(s.start.total_seconds(), s.end.total_seconds(), s.content) for s in srt.parse(srt_text)]


def two_runs(tmp_path, t0_s: float = 1_780_000_000.0) -> tuple[list[str], list[dict]]:
    sessions = []
    for index in range(2):
        writers = [TranscriptWriter(TranscriptConfig(path=str(tmp_path / "transcript.jsonl"), fsync=False)),
                   SubtitleWriter(SubtitlesConfig(directory=str(tmp_path / "live"), languages=("es",)), RATE_HZ)]
        sessions.append(run(writers, t0_s + index * RUN_GAP_S))
    return sessions, read_transcript(tmp_path / "transcript.jsonl")


def test_two_runs_into_one_transcript_give_distinct_records_and_ordered_subtitles(tmp_path):
    sessions, records = two_runs(tmp_path)
    assert len(set(sessions)) == 2 and sorted(sessions) == sessions  # ids sort by the run's start
    assert len({(r["session"], r["utterance"]) for r in records}) == 6  # same ids, still distinct
    starts = [r["started_at"] for r in records]
    assert starts == sorted(starts) and all(r["ended_at"] > r["started_at"] for r in records)

    proc = subprocess.run([sys.executable, "-m", "agent.cli", "subtitles", str(tmp_path / "transcript.jsonl"),
                           "--lang", "es"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    cues = cues_of(proc.stdout)
    assert [text for _, _, text in cues] == [text for *_, text in SPOKEN] * 2
    for (start, end, text), (_, _, duration_ms, _) in zip(cues, SPOKEN * 2, strict=True):
        assert abs((end - start) - duration_ms / 1000) < 0.01, (start, end, text)  # each as long as it was spoken
        assert end - start > MIN_CUE_S + 0.5  # nothing squeezed to the minimum
    for (_, end, _), (start, _, _) in pairwise(cues):
        assert start >= end
    # the second run is where the wall clock puts it: 100 s after the first run's audio began
    assert abs(cues[3][0] - (RUN_GAP_S + SPOKEN[0][1] / RATE_HZ)) < 0.01


def test_live_files_keep_the_earlier_runs_cues_and_match_the_transcript(tmp_path):
    two_runs(tmp_path)
    live_srt = (tmp_path / "live" / "captions.es.srt").read_text()
    live_vtt = (tmp_path / "live" / "captions.es.vtt").read_text()
    assert [s.index for s in srt.parse(live_srt)] == [1, 2, 3, 4, 5, 6]
    assert [c.text for c in webvtt.from_string(live_vtt)] == [text for *_, text in SPOKEN] * 2
    assert live_vtt.count("WEBVTT") == 1
    # the live files and `parley subtitles` put every cue at the same time
    records = read_transcript(tmp_path / "transcript.jsonl")
    assert cues_of(live_srt) == cues_of(render(records, "es", "srt", RATE_HZ))


def test_a_restart_without_the_timeline_file_still_appends_after_the_last_cue(tmp_path):
    first = SubtitleWriter(SubtitlesConfig(directory=str(tmp_path), languages=("es",)), RATE_HZ)
    run([first], 1_780_000_000.0)
    (tmp_path / "captions.timeline.json").unlink()
    before = cues_of((tmp_path / "captions.es.srt").read_text())
    run([SubtitleWriter(SubtitlesConfig(directory=str(tmp_path), languages=("es",)), RATE_HZ)], 1_780_000_050.0)
    after = cues_of((tmp_path / "captions.es.srt").read_text())
    assert after[:3] == before and len(after) == 6
    assert after[3][0] >= before[-1][1] + 1.0 and all(b[0] >= a[1] for a, b in pairwise(after))


def test_records_from_before_sessions_split_where_the_audio_clock_goes_back():
    old = [{"utterance": u, "start_sample": s, "duration_ms": d, "source": "x", "translations": {"es": t}}
           for u, s, d, t in SPOKEN] * 2
    cues = cues_of(render(old, "es", "srt", RATE_HZ))
    assert len(cues) == 6 and all(end - start > MIN_CUE_S + 0.5 for start, end, _ in cues)
    assert all(b[0] >= a[1] for a, b in pairwise(cues))


def subtitles_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli", "subtitles", *args], capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("kind", ["yaml", "wav"])
def test_a_file_that_is_not_a_transcript_is_a_clear_error(tmp_path, kind):
    path = tmp_path / f"input.{kind}"
    if kind == "yaml":
        path.write_text("uplink:\n  url: ws://127.0.0.1:5000\n")
    else:
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1), wav.setsampwidth(2), wav.setframerate(RATE_HZ)
            wav.writeframes(np.zeros(1600, np.int16).tobytes())
    proc = subtitles_cli(str(path), "--lang", "es")
    assert proc.returncode == 1 and proc.stdout == ""
    assert str(path) in proc.stderr and "transcript" in proc.stderr and "Traceback" not in proc.stderr


def test_a_language_not_in_the_transcript_is_a_clear_error(tmp_path):
    two_runs(tmp_path)
    proc = subtitles_cli(str(tmp_path / "transcript.jsonl"), "--lang", "de")
    assert proc.returncode == 1 and proc.stdout == ""
    assert "--lang de" in proc.stderr and "es, source" in proc.stderr
