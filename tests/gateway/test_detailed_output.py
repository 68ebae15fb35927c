"""The NBest forms and word timings built from a final: pure units."""

from __future__ import annotations

from gateway.detailed_output import itn_form, lexical_form, nbest_entry
from gateway.engines.transcript import Transcript, Word
from parley_common.protocols.wav import TICKS_PER_SAMPLE


def test_itn_keeps_digits_and_lexical_says_them():
    display = "For the 20th time, 3.5 men walked 1,000 miles."
    assert itn_form(display) == "for the 20th time 3.5 men walked 1,000 miles"
    assert lexical_form(display) == "for the twentieth time three point five men walked one thousand miles"
    assert lexical_form("Tengo 42 años.", "es-ES") == "tengo cuarenta y dos años"
    assert itn_form("This is ****, ok.") == "this is **** ok"


def test_words_are_clamped_inside_the_phrase_in_order_and_filtered():
    details = Transcript("Hello damn world", 0.8, (Word(" Hello", 0.0, 0.4, 0.9), Word(" damn", 0.3, 0.6, 0.5),
                                                   Word(" world!", 0.6, 9.0, 0.7)))
    entry = nbest_entry("Hello **** world!", "en-US", details, 16000, 16000 + 16000, True, "masked")
    words = entry["Words"]
    assert [w["Word"] for w in words] == ["hello", "****", "world"] and entry["Confidence"] == 0.8
    offsets = [w["Offset"] for w in words]
    assert offsets == sorted(offsets) and offsets[0] == 16000 * TICKS_PER_SAMPLE
    assert all(w["Offset"] + w["Duration"] <= 32000 * TICKS_PER_SAMPLE for w in words)
    assert words[1]["Offset"] >= words[0]["Offset"] + words[0]["Duration"]  # overlap resolved forwards
