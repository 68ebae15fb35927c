"""Limits on a client's JSON before it is parsed: Python's parser recurses per nesting level, and
``[`` × 50 000 would end in RecursionError deep inside it. The real bodies (``speech.config``,
``speech.context``, ``telemetry``) nest 6 levels and weigh a few kB."""

from __future__ import annotations

import re

MAX_JSON_DEPTH = 32
MAX_JSON_BYTES = 256 * 1024
_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')  # strings skipped whole, so brackets inside them do not count


class JsonLimitError(ValueError):
    """The body is larger or deeper than any client needs; the message says which limit."""


def check_json_limits(text: str, what: str, max_depth: int = MAX_JSON_DEPTH, max_bytes: int = MAX_JSON_BYTES) -> None:
    if len(text) > max_bytes:
        raise JsonLimitError(f"{what}: the JSON body is {len(text)} bytes; at most {max_bytes} are accepted")
    depth = 0
    for match in _STRUCTURE.finditer(text):
        token = match.group(0)
        if token in "[{":
            depth += 1
            if depth > max_depth:
                raise JsonLimitError(f"{what}: the JSON body nests deeper than {max_depth} levels")
        elif token in "]}":
            depth -= 1
