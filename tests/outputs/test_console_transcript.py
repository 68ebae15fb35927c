"""Console captions and the power-cut-safe, rotating transcript."""

from __future__ import annotations

import io
import json

from agent.events import FinalResult, PartialResult
from agent.outputs.config import ConsoleConfig, TranscriptConfig
from agent.outputs.console import ConsoleOutput
from agent.outputs.transcript import TranscriptWriter, read_transcript


class TtyBuffer(io.StringIO):
    def isatty(self):
        return True


def final(n: int) -> FinalResult:
    return FinalResult(n, f"hello number {n}", {"es": f"hola número {n}", "ca": f"hola número {n}"}, 45.0, n * 16000, 900.0)


def test_tty_partials_overwrite_one_line_and_finals_stay():
    out = TtyBuffer()
    console = ConsoleOutput(ConsoleConfig(), out)
    console.partial(PartialResult(1, "hel", {"es": "ho"}))
    console.partial(PartialResult(1, "hello", {"es": "hola"}))
    console.final(final(1))
    text = out.getvalue()
    assert text.count("\r\x1b[2K") >= 3
    assert "hello number 1" in text and "es: hola número 1" in text
    assert not text.split("\n")[0].endswith("hel")


def test_journal_gets_plain_lines():
    out = io.StringIO()
    console = ConsoleOutput(ConsoleConfig(), out)
    console.partial(PartialResult(2, "good", {}))
    console.final(final(2))
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert console.finals_shown == 1


def test_transcript_lines_are_complete_json_after_every_write(tmp_path):
    path = tmp_path / "t.jsonl"
    writer = TranscriptWriter(TranscriptConfig(path=str(path)))
    for n in range(3):
        writer.write(final(n))
        records = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(records) == n + 1
    writer.close()
    assert records[2]["translations"]["es"] == "hola número 2" and records[2]["azimuth_deg"] == 45.0


def test_a_torn_last_line_from_a_power_cut_is_skipped(tmp_path):
    path = tmp_path / "t.jsonl"
    writer = TranscriptWriter(TranscriptConfig(path=str(path)))
    writer.write(final(1))
    writer.close()
    with path.open("a") as fh:
        fh.write('{"time": "2026-11-24T00:00:00", "source": "half a li')
    assert [r["utterance"] for r in read_transcript(path)] == [1]


def test_rotation_by_size_keeps_n_files(tmp_path):
    path = tmp_path / "t.jsonl"
    writer = TranscriptWriter(TranscriptConfig(path=str(path), max_bytes=1000, keep_files=2, fsync=False))
    for n in range(40):
        writer.write(final(n))
    writer.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["t.jsonl", "t.jsonl.1", "t.jsonl.2"]
    assert all(p.stat().st_size <= 1000 for p in tmp_path.iterdir())
    newest = read_transcript(path)[-1]["utterance"]
    assert newest == 39 and read_transcript(tmp_path / "t.jsonl.1")[-1]["utterance"] < read_transcript(path)[0]["utterance"]
