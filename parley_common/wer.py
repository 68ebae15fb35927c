"""Word error rate: how far what was recognized is from what was said (the demo, tests, benches).

Normalised for case and punctuation, any script's letters kept (the demo's Spanish has accents);
digits are dropped as the tests always did (spell numbers out first where they matter).
"""

from __future__ import annotations

import re

_NOT_A_WORD = re.compile(r"[^\w']|[\d_]")


def normalise(text: str) -> list[str]:
    return _NOT_A_WORD.sub(" ", text.lower()).split()


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, reference length)."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1], len(ref)
