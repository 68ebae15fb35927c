"""Each output fails on its own: logged once then rate-limited, listed as a problem, retried in order."""

from __future__ import annotations

import errno
import logging

import pytest

from agent.events import FinalResult
from agent.outputs.config import TranscriptConfig
from agent.outputs.health import OutputHealth, RetryingWriter
from agent.outputs.transcript import TranscriptWriter, read_transcript


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_failing_output_is_logged_once_then_rate_limited_and_reported(caplog):
    clock, changes = Clock(), []
    health = OutputHealth(on_change=changes.append, clock=clock, log_every_s=60)
    full = OSError(errno.ENOSPC, "No space left on device")

    def fail():
        raise full

    with caplog.at_level(logging.WARNING, "parley.outputs"):
        for second in range(120):
            clock.now = float(second)
            assert health.run("transcript", fail) is False
        assert health.run("console", lambda: None)
        assert health.problems() == ["transcript failing for 119 s (120 error(s)): No space left on device"]
        clock.now = 130.0
        assert health.run("transcript", lambda: None)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["transcript failed: No space left on device; the other outputs go on, and it is retried",
                        "transcript still failing (61 errors in 60 s): No space left on device",
                        "transcript works again (after 120 error(s) in 130 s)"]
    assert changes == [("transcript",), ()] and health.problems() == []


def test_a_backlog_is_written_in_order_once_the_disk_has_room(tmp_path):
    clock, disk_full, written = Clock(), [True], []
    store = []

    def write(event):
        if disk_full[0]:
            raise OSError(errno.ENOSPC, "No space left on device")
        store.append(event)

    writer = RetryingWriter("transcript", write, OutputHealth(clock=clock), written.append, max_pending=3, clock=clock)
    for n in range(1, 5):
        writer.put(n)
    assert writer.pending == 3 and writer.lost == 1 and written == []  # 1 stays in the spool for a restart
    disk_full[0] = False
    clock.now = 1.0
    writer.tick()
    assert store == [] and writer.pending == 3  # not yet due
    clock.now = 3.0
    writer.tick()
    assert store == [2, 3, 4] == written and writer.pending == 0


def test_a_transcript_write_that_fails_leaves_no_torn_line(tmp_path, monkeypatch):
    path = tmp_path / "t.jsonl"
    writer = TranscriptWriter(TranscriptConfig(path=str(path), fsync=True))
    writer.write(FinalResult(1, "one", {"es": "uno"}))
    import agent.outputs.transcript as transcript

    def fsync_fails(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(transcript.os, "fsync", fsync_fails)
    with pytest.raises(OSError):
        writer.write(FinalResult(2, "two", {"es": "dos"}))
    monkeypatch.undo()
    writer.write(FinalResult(3, "three", {"es": "tres"}))
    assert [r["utterance"] for r in read_transcript(path)] == [1, 3]
    assert path.read_text().count("\n") == 2


def test_a_speaker_that_cannot_open_waits_and_recovers_when_it_can(tmp_path, monkeypatch):
    import time

    import agent.outputs.speaker as speaker_module
    from agent.outputs.config import SpeakerConfig

    monkeypatch.setattr(speaker_module, "SINK_RETRY_S", 0.1)
    blocker = tmp_path / "tts"
    blocker.write_text("a file where the TTS folder belongs")
    changes = []
    health = OutputHealth(on_change=changes.append)
    speaker = speaker_module.Speaker(SpeakerConfig(backend="wav", output_dir=str(blocker)), health=health)
    assert speaker.sink is None and health.failing == ("speaker",)
    speaker.start()
    blocker.unlink()
    deadline = time.monotonic() + 5
    while health.failing and time.monotonic() < deadline:
        time.sleep(0.05)
    speaker.close()
    assert changes == [("speaker",), ()] and speaker.sink is not None


def test_a_transcript_on_a_full_device_raises_on_write_and_closes_quietly():
    """/dev/full: every write is ENOSPC. The write says so (the backlog keeps the final); the close at
    SIGTERM must not, or the stop turns into 'cannot start: [Errno 28]' and exit 78."""
    writer = TranscriptWriter(TranscriptConfig(path="/dev/full", fsync=False))
    with pytest.raises(OSError) as full:
        writer.write(FinalResult(1, "one", {"es": "uno"}))
    assert full.value.errno == errno.ENOSPC
    writer.close()
