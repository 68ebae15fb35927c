"""The profanity options of both protocols, over the word list of the better-profanity package (MIT).

Translator v1: ``ProfanityAction`` NoAction | Marked (default) | Deleted and ``ProfanityMarker``
Asterisk (default) | Tag. USP: ``profanity`` masked (default) | removed | raw, in the query or in
``speech.context`` ``phraseDetection.enrichment.profanity``. The list is English, applied to
recognized English text; a translation is checked against the same list carried into its language by
the gateway's own translator, word by word (:func:`translated_word_list`: "hell" -> "infierno",
"crap" -> "caga"), plus the English words, which the translator leaves as they are when it does not
know them ("damn").
"""

from __future__ import annotations

import re
import threading
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


_translated: dict[str, frozenset[str]] = {}
_translated_lock = threading.Lock()


def translated_word_list(language: str, translate) -> frozenset[str]:
    """The English list in ``language`` (base code) through ``translate(word) -> text``, once per process:
    each word's rendering when it is one word, with the English list itself. A rendering of several
    words is left out, so "ass" -> "asno de" cannot put "de" on the list."""
    with _translated_lock:
        if language not in _translated:
            rendered = set()
            for word in word_list():
                try:
                    out = translate(word).strip().lower().strip("*#@")
                except Exception:  # noqa: BLE001 - a word the translator chokes on is just not listed
                    continue
                if out and " " not in out and _WORD.fullmatch(out):
                    rendered.add(out)
            _translated[language] = frozenset(rendered) | word_list()
        return _translated[language]


def apply(text: str, mode: str, words: frozenset[str] | None = None) -> str:
    """``text`` with each listed word masked with asterisks, tagged, or removed (``raw``: as it is);
    ``words``: the list for the text's language (default: English)."""
    if mode == RAW or not text:
        return text
    words = word_list() if words is None else words

    def replace(match: re.Match) -> str:
        word = match.group(0)
        if word.lower() not in words and word.lower().rsplit("'", 1)[-1] not in words:  # l'infern: elided article
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
