"""The profanity options of both protocols, over the word list of the better-profanity package (MIT).

Translator v1: ``ProfanityAction`` NoAction | Marked (default) | Deleted and ``ProfanityMarker``
Asterisk (default) | Tag. USP: ``profanity`` masked (default) | removed | raw, in the query or in
``speech.context`` ``phraseDetection.enrichment.profanity``. The list is English; it is applied
to recognized text and translations alike.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

MASKED, TAGGED, REMOVED, RAW = "masked", "tagged", "removed", "raw"
USP_OPTIONS = {"masked": MASKED, "removed": REMOVED, "raw": RAW}
V1_ACTIONS = ("noaction", "marked", "deleted")
V1_MARKERS = ("asterisk", "tag")
_WORD = re.compile(r"[\w']+")


class ProfanityError(ValueError):
    """An option value neither protocol knows; the message names the allowed ones."""


@lru_cache(maxsize=1)
def word_list() -> frozenset[str]:
    text = resources.files("better_profanity").joinpath("profanity_wordlist.txt").read_text()
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip() and " " not in line)


def apply(text: str, mode: str) -> str:
    """``text`` with each listed word masked with asterisks, tagged, or removed (``raw``: as it is)."""
    if mode == RAW or not text:
        return text
    words = word_list()

    def replace(match: re.Match) -> str:
        word = match.group(0)
        if word.lower() not in words:
            return word
        if mode == MASKED:
            return "*" * len(word)
        return f"<profanity>{word}</profanity>" if mode == TAGGED else ""

    result = _WORD.sub(replace, text)
    if mode == REMOVED:
        result = re.sub(r"\s+([,.;:!?])", r"\1", " ".join(result.split()))
    return result


def usp_mode(value: str | None) -> str:
    if value is None:
        return MASKED
    try:
        return USP_OPTIONS[value.lower()]
    except KeyError:
        raise ProfanityError(f"profanity {value!r} is not supported; use one of {', '.join(USP_OPTIONS)}") from None


def v1_mode(action: str | None, marker: str | None) -> str:
    action, marker = (action or "marked").lower(), (marker or "asterisk").lower()
    if action not in V1_ACTIONS:
        raise ProfanityError(f"ProfanityAction {action!r} is not supported; use one of NoAction, Marked, Deleted")
    if marker not in V1_MARKERS:
        raise ProfanityError(f"ProfanityMarker {marker!r} is not supported; use Asterisk or Tag")
    if action == "noaction":
        return RAW
    if action == "deleted":
        return REMOVED
    return MASKED if marker == "asterisk" else TAGGED
