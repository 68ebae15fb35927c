"""Translator Speech v1 messages, written once: the gateway encodes results, the agent decodes them.

Up: a WAV header, then PCM, all binary. Down: JSON text results and binary WAV speech.
Extension: several targets. ``translation`` then holds the first target and ``translations`` maps
every target to its text; a decoder given only ``translation`` files it under the first target.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from parley_common.protocols.wav import HEADER_BYTES, TICKS_PER_SAMPLE, WIRE_BYTES_PER_SAMPLE

PATH = "/speech/translate"


class MessageError(ValueError):
    """A text message that is not a v1 result."""


@dataclass(frozen=True)
class Timing:
    """The ``timinginfo`` feature: where a result lies in time (ticks) and in the byte stream."""

    offset_ticks: int
    duration_ticks: int
    stream_position: int  # byte offset in the stream, header included
    size_bytes: int

    @classmethod
    def of_samples(cls, start_sample: int, end_sample: int) -> "Timing":
        return cls(start_sample * TICKS_PER_SAMPLE, (end_sample - start_sample) * TICKS_PER_SAMPLE,
                   HEADER_BYTES + WIRE_BYTES_PER_SAMPLE * start_sample,
                   WIRE_BYTES_PER_SAMPLE * (end_sample - start_sample))


@dataclass(frozen=True)
class V1Result:
    final: bool
    id: str
    recognition: str
    translations: dict[str, str] = field(default_factory=dict)  # target -> text, in request order
    timing: Timing | None = None

    def encode(self) -> str:
        message: dict[str, object] = {"type": "final" if self.final else "partial", "id": self.id, "recognition": self.recognition,
                   "translation": next(iter(self.translations.values()), "")}
        if len(self.translations) > 1:
            message["translations"] = dict(self.translations)
        if self.timing is not None:
            message.update(audioTimeOffset=self.timing.offset_ticks, audioTimeSize=self.timing.duration_ticks,
                           audioStreamPosition=self.timing.stream_position, audioSizeBytes=self.timing.size_bytes)
        return json.dumps(message, ensure_ascii=False)

    @classmethod
    def decode(cls, text: str, first_target: str) -> "V1Result":
        try:
            data = json.loads(text)
            kind = data["type"]
        except (ValueError, KeyError, TypeError):
            raise MessageError(f"unparseable result: {text[:80]!r}") from None
        if kind not in ("partial", "final"):
            raise MessageError(f"unknown result type {kind!r}")
        translations = data.get("translations")
        if not isinstance(translations, dict):
            translations = {first_target: str(data.get("translation", ""))}
        timing = None
        if isinstance(data.get("audioStreamPosition"), int):  # the field attribution needs; the rest 0 if odd
            timing = Timing(*(data.get(k) if isinstance(data.get(k), int) else 0 for k in (
                "audioTimeOffset", "audioTimeSize", "audioStreamPosition", "audioSizeBytes")))
        return cls(kind == "final", str(data.get("id", "")), str(data.get("recognition", "")), translations, timing)
