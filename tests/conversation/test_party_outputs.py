"""Who said it, in which language: the stamp on results, and what the outputs make of it."""

from __future__ import annotations

import io
import queue

from agent.conversation.uplinks import PartyResults, _Links
from agent.events import FinalResult, LinkStatus, PartialResult, UplinkError
from agent.outputs.config import ConsoleConfig, TranscriptConfig
from agent.outputs.console import ConsoleOutput
from agent.outputs.http import CaptionState
from agent.outputs.subtitles import utterance_text
from agent.outputs.transcript import TranscriptWriter, read_transcript


class FakeLink:
    def __init__(self, connected: bool):
        self.connected = connected


def test_results_are_stamped_with_party_and_language_and_links_report_all_up_only():
    results: queue.Queue = queue.Queue()
    links = _Links()
    es, en = FakeLink(True), FakeLink(False)
    links.uplinks = {"es-ES": es, "en-US": en}
    stamp = PartyResults(results, "es-ES", lambda utterance_id, _language: {7: "Sofía"}.get(utterance_id), links)
    stamp.put_nowait(FinalResult(7, "hola", {"en": "hello"}))
    stamp.put(PartialResult(7, "ho"), timeout=1.0)
    stamp.put_nowait(LinkStatus(True, "connected"))
    en.connected = True
    stamp.put_nowait(LinkStatus(True, "connected"))
    stamp.put_nowait(UplinkError("refused"))
    final, partial, half, full, error = (results.get_nowait() for _ in range(5))
    assert (final.party, final.language, partial.party, partial.language) == ("Sofía", "es-ES", "Sofía", "es-ES")
    # one connected of two is not "link down: es-ES: connected": it says what the box waits for
    assert (half.connected, full.connected) == (False, True)
    assert half.detail == "waiting for en-US (es-ES connected)" and full.detail == "es-ES: connected"
    assert error.message == "es-ES: refused"


def test_console_transcript_captions_and_subtitles_say_who_spoke_which_language(tmp_path):
    final = FinalResult(3, "hola a todos", {"en": "hello everyone"}, 240.0, 0, 900.0, party="Sofía", language="es-ES")
    out = io.StringIO()
    ConsoleOutput(ConsoleConfig(), out).final(final)
    assert "Sofía es: hola a todos" in out.getvalue() and "en: hello everyone" in out.getvalue()
    writer = TranscriptWriter(TranscriptConfig(path=str(tmp_path / "t.jsonl"), fsync=False))
    writer.write(final)
    writer.close()
    [record] = read_transcript(tmp_path / "t.jsonl")
    assert (record["party"], record["language"]) == ("Sofía", "es-ES")
    caption = CaptionState(10).apply(final)
    assert (caption["party"], caption["language"]) == ("Sofía", "es-ES")
    # a Spanish reader's subtitles show Sofía's own words, and the English ones their translation
    assert utterance_text(final, "es") == "hola a todos" and utterance_text(record, "en") == "hello everyone"
