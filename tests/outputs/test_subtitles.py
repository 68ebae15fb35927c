"""Subtitles: cue times from the audio clock, reading limits, and files a real parser reads back."""

from __future__ import annotations

import json
import subprocess
import sys

import srt
import webvtt

from agent.events import FinalResult
from agent.outputs.config import SubtitlesConfig
from agent.outputs.subtitles import MAX_CUE_S, MAX_LINE_CHARS, MIN_CUE_S, SubtitleWriter, render, split_cues

RATE_HZ = 16000
LONG_ES = ("Buenos días a todos y bienvenidos a la reunión anual de la asociación, donde hablaremos del "
           "presupuesto, de los nuevos proyectos y de las elecciones del próximo año")


def finals() -> list[FinalResult]:
    return [
        FinalResult(1, "good morning", {"es": "buenos días", "ca": "bon dia"}, 40.0, 2 * RATE_HZ, 900.0),
        FinalResult(2, "long one", {"es": LONG_ES, "ca": "una de llarga"}, 41.0, 5 * RATE_HZ, 9500.0),
        FinalResult(3, "ok", {"es": "vale", "ca": "d'acord"}, 39.0, int(15.2 * RATE_HZ), 300.0),
    ]


def transcript_records() -> list[dict]:
    return [{"utterance": f.utterance_id, "azimuth_deg": f.azimuth_deg, "start_sample": f.start_sample,
             "duration_ms": f.duration_ms, "source": f.source_text, "translations": f.translations} for f in finals()]


def seconds(vtt_time: str) -> float:
    """webvtt-py's HH:MM:SS.mmm (its *_in_seconds drop the milliseconds)."""
    hours, minutes, rest = vtt_time.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(rest)


def check_cues(cues: list[tuple[float, float, str]]) -> None:
    """The guideline limits and monotonic, non-overlapping times."""
    for (start, end, text), following in zip(cues, cues[1:] + [None]):
        lines = text.split("\n")
        assert len(lines) <= 2 and all(len(line) <= MAX_LINE_CHARS for line in lines), text
        assert end - start >= MIN_CUE_S - 1e-3
        assert end - start <= MAX_CUE_S + 1e-3
        if following is not None:
            assert following[0] >= end - 1e-3


def test_a_long_utterance_is_split_for_reading_within_its_spoken_time():
    cues = split_cues(LONG_ES, 5.0, 9.5)
    assert len(cues) >= 2
    assert cues[0].start_s == 5.0 and abs(cues[-1].end_s - 14.5) < 1e-6
    assert " ".join(c.text.replace("\n", " ") for c in cues) == LONG_ES
    check_cues([(c.start_s, c.end_s, c.text) for c in cues])


def test_transcript_to_srt_and_vtt_parse_back_with_times_from_the_audio_clock(tmp_path):
    path = tmp_path / "transcript.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in transcript_records()))
    out = {}
    for fmt in ("srt", "vtt"):
        proc = subprocess.run([sys.executable, "-m", "agent.cli", "subtitles", str(path), "--lang", "es",
                               "--format", fmt, "--out", str(tmp_path / f"es.{fmt}")],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        out[fmt] = (tmp_path / f"es.{fmt}").read_text()
    subs = list(srt.parse(out["srt"]))
    srt_cues = [(s.start.total_seconds(), s.end.total_seconds(), s.content) for s in subs]
    vtt_cues = [(seconds(c.start), seconds(c.end), c.text) for c in webvtt.from_string(out["vtt"])]
    assert [(round(a, 3), round(b, 3), t) for a, b, t in srt_cues] == \
           [(round(a, 3), round(b, 3), t) for a, b, t in vtt_cues]
    check_cues(srt_cues)
    assert srt_cues[0][0] == 2.0 and srt_cues[0][2] == "buenos días"  # spoken 2 s into the audio
    assert srt_cues[1][0] == 5.0 and abs(max(e for _, e, t in srt_cues if t != "vale" and t != "buenos días") - 14.5) < 0.01
    assert srt_cues[-1][2] == "vale" and abs(srt_cues[-1][0] - 15.2) < 0.01
    assert abs(srt_cues[-1][1] - (15.2 + MIN_CUE_S)) < 0.01  # 300 ms of speech shown for the minimum 5/6 s


def test_live_writer_appends_cues_per_language_while_the_session_runs(tmp_path):
    writer = SubtitleWriter(SubtitlesConfig(directory=str(tmp_path), languages=("es", "source")), RATE_HZ)
    first, *rest = finals()
    writer.write(first)
    assert [c.text for c in webvtt.read(str(tmp_path / "captions.es.vtt"))] == ["buenos días"]  # readable already
    for event in rest:
        writer.write(event)
    writer.close()
    expected = render(transcript_records(), "es", "srt", RATE_HZ)
    assert (tmp_path / "captions.es.srt").read_text() == expected
    assert [s.content for s in srt.parse((tmp_path / "captions.source.srt").read_text())] == \
           ["good morning", "long one", "ok"]
    assert not (tmp_path / "captions.ca.srt").exists()


def test_missing_transcript_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "agent.cli", "subtitles", str(tmp_path / "nope.jsonl"), "--lang", "es"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "nope.jsonl" in proc.stderr
