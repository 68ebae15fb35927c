"""The demo says what was really recognized for each scripted line, with its WER, and fails on garble."""

from __future__ import annotations

from agent.demo import CONVERSATION_LINES, DEMO_LINES, print_heard, score_lines

SPANS = [(16000 * 2, 16000 * 4), (16000 * 8, 16000 * 10), (16000 * 14, 16000 * 17)]  # the scene's utterances


def record(start_s: float, duration_s: float, source: str, **extra) -> dict:
    return {"start_sample": int(start_s * 16000), "duration_ms": duration_s * 1000, "source": source,
            "translations": {"es": "…"}, **extra}


def test_each_final_is_scored_against_the_line_its_audio_overlaps():
    records = [record(1.8, 2.0, "Good morning everyone."),
               record(7.7, 1.5, "Where is that"), record(9.3, 0.8, "rain station?"),  # one line cut in two
               record(11.5, 0.5, "uh")]  # noise between lines belongs to none
    heard = score_lines(DEMO_LINES, SPANS, records)
    assert [h.recognized for h in heard] == ["Good morning everyone.", "Where is that rain station?", ""]
    assert [(h.errors, h.words) for h in heard] == [(0, 3), (2, 5), (7, 7)]  # the third was never heard: all 7 missed


def test_the_report_prints_every_line_with_its_wer_and_the_pooled_wer(capsys):
    spans = SPANS + [(16000 * 20, 16000 * 22)]
    records = [record(2.0, 2.0, "Good morning. Where is the train station?", party="Emma"),
               record(8.0, 2.0, "Buenos días. La estación está muy cerca.", party="Sofía"),
               record(14.0, 2.0, "Thank you very much.", party="Emma"),
               record(20.0, 2.0, "Le haga, voy a enviarje.", party="Sofía")]
    pooled = print_heard(score_lines(CONVERSATION_LINES, spans, records))
    out = capsys.readouterr().out
    assert "Sofía said:  De nada. Buen viaje." in out and "heard: Le haga, voy a enviarje.   WER 1.25" in out
    assert "heard: Buenos días. La estación está muy cerca.   WER 0.00" in out
    assert abs(pooled - 5 / 22) < 1e-9 and "WER 0.23 over 22 scripted words" in out
