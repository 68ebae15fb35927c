"""The detailed form of a final (``NBest``): what Azure calls Display, ITN, MaskedITN and Lexical, a
confidence, and word timings when the client asked for them (``wordLevelTimestamps``/``WordTimings``).

Whisper writes the display form ("for the 20th time"). ITN (inverse-text-normalised) is that form
without punctuation or capitals, numbers as digits; Lexical is what was said, numbers as words
("for the twentieth time"), through num2words. MaskedITN is ITN with profanity masked: the display
text (and each word) has already had the turn's profanity option applied, so it is ITN here. Word offsets are
ticks from the turn's first sample, like the phrase's, and lie inside the phrase.
"""

from __future__ import annotations

import re

from num2words import num2words

from gateway import profanity
from gateway.engines.transcript import Transcript
from parley_common.languages import base_language
from parley_common.protocols.wav import TICKS_PER_SAMPLE, WIRE_SAMPLE_RATE_HZ

_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+(?:[.,]\d+)?)(st|nd|rd|th)?(?!\w)")
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+")
_NUM2WORDS_LANGUAGES = ("en", "es", "ca", "fr", "de", "it", "pt", "nl", "eo")


def itn_form(text: str) -> str:
    """Display text without punctuation and capitals; digits and profanity masks (``***``) stay."""
    return " ".join(re.sub(r"[^\w'\s*.,-]|(?<!\d)[.,]|[.,](?!\d)", " ", text.lower()).split())


def lexical_form(text: str, language: str = "en") -> str:
    """The spoken words: ITN form with each number (ordinals too) written out."""
    lang = base_language(language)
    lang = lang if lang in _NUM2WORDS_LANGUAGES else "en"

    def spell(match: re.Match) -> str:
        number, suffix = match.group(1), match.group(2)
        if _THOUSANDS.fullmatch(number):  # 1,000 (Whisper writes English thousands so)
            number = number.replace(",", "")
        try:
            if suffix:
                return num2words(int(number), to="ordinal", lang=lang)
            value = float(number.replace(",", ".")) if any(c in number for c in ".,") else int(number)
            return num2words(value, lang=lang)
        except (NotImplementedError, ValueError, OverflowError):
            return number
    return " ".join(_NUMBER.sub(spell, itn_form(text)).replace(",", " ").split())


def nbest_entry(display: str, language: str, details: Transcript | None, phrase_start_sample: int,
                phrase_end_sample: int, with_words: bool, profanity_mode: str = profanity.RAW) -> dict:
    """One ``NBest`` entry for a final; ``profanity_mode`` is applied to the words as it was to ``display``."""
    itn = itn_form(display)
    entry: dict = {"Lexical": lexical_form(display, language), "ITN": itn, "MaskedITN": itn, "Display": display}
    if details is not None and details.confidence is not None:
        entry = {"Confidence": details.confidence, **entry}
    if with_words and details is not None:
        entry["Words"] = _words(details, phrase_start_sample, phrase_end_sample, profanity_mode)
    return entry


def _words(details: Transcript, start_sample: int, end_sample: int, profanity_mode: str) -> list[dict]:
    """Each word's offset and duration in ticks, clamped to the phrase and kept in order (a removed
    profanity leaves no word)."""
    words, last_end = [], start_sample
    for word in details.words:
        text = profanity.apply(word.text, profanity_mode)
        if not text:
            continue
        begin = min(max(start_sample + round(word.start_s * WIRE_SAMPLE_RATE_HZ), last_end), end_sample)
        end = min(max(start_sample + round(word.end_s * WIRE_SAMPLE_RATE_HZ), begin), end_sample)
        last_end = end
        words.append({"Word": itn_form(text) or text, "Offset": begin * TICKS_PER_SAMPLE,
                      "Duration": (end - begin) * TICKS_PER_SAMPLE, "Confidence": round(word.probability, 4)})
    return words
