"""Who sits where and speaks what: the ``conversation`` section.

Both wire protocols fix the recognition language per connection (v1 ``from=``, USP ``language=``),
so every party language gets its own uplink; ``uplink_config_for`` derives that uplink's config
from the shared ``uplink`` section. No parties, or one, is the single-language box of before.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Literal

from agent.uplink import spool_dir
from parley_common.languages import base_language


@dataclass(frozen=True)
class PartyConfig:
    name: str = field(metadata={"help": "shown on every line of the console, transcript and captions"})
    language: str = field(metadata={"help": "the language this party speaks, BCP-47, e.g. en-US, es-ES"})
    hears: tuple[str, ...] = field(
        default=(), metadata={"help": "languages this party reads and hears (the first is spoken); default: the spoken language's base, e.g. es"})
    voice: str | None = field(default=None, metadata={"help": "voice that speaks translations to this party; null: the service's for its language"})
    from_deg: float | None = field(
        default=None, metadata={"min": 0.0, "max": 360.0, "help": "seat: azimuths from this one ..."})
    to_deg: float | None = field(
        default=None, metadata={"min": 0.0, "max": 360.0, "help": "... counter-clockwise to this one (300 -> 60 wraps through 0)"})

    def __post_init__(self) -> None:
        if (self.from_deg is None) != (self.to_deg is None):
            raise ValueError(f"party {self.name!r}: a seat needs both from_deg and to_deg")

    @property
    def base_language(self) -> str:
        return base_language(self.language)

    @property
    def reads(self) -> tuple[str, ...]:
        return self.hears or (self.base_language,)

    @property
    def seated(self) -> bool:
        return self.from_deg is not None


@dataclass(frozen=True)
class ConversationConfig:
    parties: tuple[PartyConfig, ...] = field(
        default=(), metadata={"help": "two or more: each utterance is recognized in its talker's language and translated into the others'; one: its language replaces uplink.from_language"})
    route_by: Literal["direction", "language", "both"] = field(
        default="direction", metadata={"help": (
            "direction: the seat the utterance comes from picks the party (one connection per language); "
            "language: the service identifies the language among the parties' (one connection, USP v2); "
            "both: the seat predicts the language and the gateway's identification overrules it only when sure")})
    default_party: str | None = field(
        default=None, metadata={"help": "party for speech from outside every seat; null: such speech is dropped with a log line"})
    decide_after_ms: int = field(
        default=1000, metadata={"min": 0, "max": 30000,
                               "help": "audio is held this long while the direction settles, then the route is fixed (a correction of the first guess once the direction has stayed 300 ms in the new seat); a shorter utterance is routed by its whole-utterance direction; with route_by language nothing is held"})

    @property
    def multi_party(self) -> bool:
        return len(self.parties) >= 2

    @property
    def identifies_language(self) -> bool:
        return self.multi_party and self.route_by != "direction"

    @property
    def languages(self) -> tuple[str, ...]:
        """The spoken languages, each once, in party order."""
        return tuple(dict.fromkeys(p.language for p in self.parties))

    def parties_speaking(self, language: str) -> list[PartyConfig]:
        return [p for p in self.parties if p.base_language == base_language(language)]

    def party(self, name: str) -> PartyConfig:
        return next(p for p in self.parties if p.name == name)

    def targets(self, party: PartyConfig) -> tuple[str, ...]:
        """What ``party``'s speech is translated into: every other party's languages, in order, once."""
        seen: list[str] = []
        for other in self.parties:
            if other is not party:
                seen += [lang for lang in other.reads if lang != party.base_language and lang not in seen]
        return tuple(seen)

    def listener_voice(self, party: PartyConfig) -> str | None:
        """The voice of the first other party that chose one and hears the first target."""
        targets = self.targets(party)
        for other in self.parties:
            if other is not party and other.voice and targets and other.reads[0] == targets[0]:
                return other.voice
        return None


CONVERSATION_FORGET_AFTER_SILENCE_MS = 300.0


def frontend_for(frontend, conversation: ConversationConfig):
    """Two or more parties take turns: each utterance's direction must be its own talker's, so the
    DOA starts afresh after a pause unless ``frontend.doa.forget_after_silence_ms`` says otherwise."""
    if not conversation.multi_party or frontend.doa.forget_after_silence_ms is not None:
        return frontend
    doa = dataclasses.replace(frontend.doa, forget_after_silence_ms=CONVERSATION_FORGET_AFTER_SILENCE_MS)
    return dataclasses.replace(frontend, doa=doa)


def _connection_spool(uplink, name: str) -> str | None:
    """One spool per connection, so each replays only its own speech after a restart."""
    spool = spool_dir(uplink)
    return os.path.join(spool, name) if spool else None


def identifying_uplink_config(uplink, conversation: ConversationConfig):
    """One connection for every party: the service identifies each utterance's language among the
    parties' and translates it into every language anyone reads; each listener's voice speaks theirs."""
    reads = tuple(dict.fromkeys(lang for party in conversation.parties for lang in party.reads))
    voices = {party.reads[0]: party.voice for party in conversation.parties if party.voice}
    return dataclasses.replace(uplink, from_language=conversation.languages[0], to_languages=reads, voice=None,
                               identify_languages=conversation.languages, voices=voices,
                               spool_dir=_connection_spool(uplink, "identified"))


def uplink_config_for(uplink, conversation: ConversationConfig, party: PartyConfig | None):
    """The uplink section with this party's source language, its listeners' languages and voice."""
    if party is None:
        return uplink
    if not conversation.multi_party:
        return dataclasses.replace(uplink, from_language=party.language)
    return dataclasses.replace(uplink, from_language=party.language, to_languages=conversation.targets(party),
                               voice=conversation.listener_voice(party),
                               spool_dir=_connection_spool(uplink, party.language))
