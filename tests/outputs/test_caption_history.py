"""The captions page keeps its last lines across an agent restart: a real server on loopback, stopped
and started again over the same history file."""

from __future__ import annotations

import json

from agent.events import FinalResult
from agent.outputs.config import HttpConfig
from agent.outputs.http import HttpOutput
from tests.outputs.test_http import EventStream

STATUS = {"last_frame_age_s": 0.02, "capture_state": "running"}


def serve(history, kept: int = 2) -> HttpOutput:
    server = HttpOutput(HttpConfig(enabled=True, port=0, finals_kept=kept, history_file=str(history)),
                        lambda: STATUS, audio_stall_s=5.0, languages=("source", "en", "es"), spoken="en")
    server.start()
    return server


def snapshot(server: HttpOutput) -> dict:
    return EventStream(server.url).wait_for(lambda m: m["type"] == "snapshot")


def test_a_restarted_server_shows_the_last_finals_of_the_run_before(tmp_path):
    history = tmp_path / "state" / "captions-history.jsonl"
    first = serve(history)
    stream = EventStream(first.url)
    for utterance_id, text in ((1, "uno"), (2, "dos"), (3, "tres")):
        first.publish(FinalResult(utterance_id, text.upper(), {"es": text}, 30.0, session="20261203T120000.000Z-aa"))
    stream.wait_for(lambda m: m["type"] == "final" and m["utterance"] == 3)
    first.close()
    with history.open("a") as fh:
        fh.write('{"utterance": 4, "sou')  # torn by a power cut

    second = serve(history)
    try:
        shown = snapshot(second)
        assert [(f["utterance"], f["translations"]["es"], f["session"]) for f in shown["finals"]] == \
               [(2, "dos", "20261203T120000.000Z-aa"), (3, "tres", "20261203T120000.000Z-aa")]
        assert shown["languages"] == ["source", "en", "es"] and shown["spoken"] == "en"
        # the file was compacted to what is kept, and the new run appends after it
        assert [json.loads(line)["utterance"] for line in history.read_text().splitlines()] == [2, 3]
        second.publish(FinalResult(1, "ONE", {"es": "una"}, 30.0, session="20261203T130000.000Z-bb"))
        stream = EventStream(second.url)
        stream.wait_for(lambda m: m["type"] == "final" or (m["type"] == "snapshot" and len(m["finals"]) == 2
                                                          and m["finals"][-1]["utterance"] == 1))
    finally:
        second.close()
    third = serve(history)
    try:
        assert [(f["session"][-2:], f["utterance"]) for f in snapshot(third)["finals"]] == [("aa", 3), ("bb", 1)]
    finally:
        third.close()


def test_an_unwritable_history_is_logged_once_and_the_page_goes_on(tmp_path, caplog):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    server = serve(blocker / "history.jsonl")
    try:
        stream = EventStream(server.url)
        for utterance_id in (1, 2):
            server.publish(FinalResult(utterance_id, "x", {"es": "y"}))
        stream.wait_for(lambda m: m["type"] == "final" and m["utterance"] == 2)
    finally:
        server.close()
    assert len([r for r in caplog.records if "captions history" in r.getMessage()]) == 1
