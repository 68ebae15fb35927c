"""docs/leds.md says what the LEDs really show: its table is the one the code generates."""

from __future__ import annotations

from pathlib import Path

from agent.outputs.leds import PATTERNS, colour_table
from agent.state import STATES

DOC = Path(__file__).resolve().parents[2] / "docs" / "leds.md"


def test_the_documented_colour_table_is_the_code_s():
    text = DOC.read_text(encoding="utf-8")
    generated = text.split("<!-- BEGIN generated: colour_table() -->\n", 1)[1].split("<!-- END generated -->", 1)[0]
    assert generated == colour_table(), "regenerate the table in docs/leds.md from agent/outputs/leds.py"


def test_every_state_has_a_pattern_and_a_documented_meaning():
    assert set(PATTERNS) == set(STATES)
    text = DOC.read_text(encoding="utf-8")
    assert all(f"- `{state}`:" in text for state in STATES)
