"""What a protocol session hands the outbox, and what the outbox asks of a session.

A session (``TranslatorV1Session``, ``UspSession``) is sans-I/O, like websockets' ``Protocol``:
it is told what the outbox sends (``begin``/``audio``/``end`` of an utterance) and what the
service said (``receive``), and answers with the messages to write and with *placed* events —
results already attributed to an utterance id. It owns its wire state and its attribution
rules; it has no socket, no thread and no clock (``now`` is passed in). The outbox keeps what is
common to both: what is owed, the spool, replay after a reconnect, the window, final timeouts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

Message = str | bytes  # a WebSocket text or binary message


class ProtocolError(ValueError):
    """The service sent something we cannot parse: costs a reconnect, never a crash."""


@dataclass(frozen=True)
class ServiceResult:
    """A partial or final recognition, as decoded from the wire."""

    final: bool
    text: str
    translations: dict[str, str] = field(default_factory=dict)
    language: str | None = None  # USP with identify_languages: the language the service heard


# -- placed events: a session's verdicts, each naming its utterance --------------------------------

@dataclass(frozen=True)
class Heard:
    """A partial, or a final piece of the utterance (an utterance may hold several phrases)."""

    utterance_id: int
    result: ServiceResult


@dataclass(frozen=True)
class Completed:
    """Every piece of the utterance is in: write its final (empty when none came).

    ``speech_may_follow``: v1 sends synthesized speech after the final, so the utterance may still
    be owed it; USP completes at ``turn.end``, after its speech."""

    utterance_id: int
    speech_may_follow: bool = False


@dataclass(frozen=True)
class Spoken:
    utterance_id: int
    wav_bytes: bytes
    language: str | None = None


@dataclass(frozen=True)
class Resume:
    """Send the utterance again from ``from_bytes`` of its audio, not before ``not_before_s``."""

    utterance_id: int
    from_bytes: int
    not_before_s: float


@dataclass(frozen=True)
class GaveUp:
    """The service refused the utterance: the finals already in make its final, else it is dropped."""

    utterance_id: int
    reason: str


@dataclass(frozen=True)
class Notice:
    """Something a person should see that belongs to no utterance (shown as a non-fatal UplinkError)."""

    message: str


Placed = Heard | Completed | Spoken | Resume | GaveUp | Notice


class Sending(Protocol):
    """What a session may read of an utterance being sent (``agent.uplink.outbox.Utterance``)."""

    chunks: list[bytes]

    @property
    def id(self) -> int: ...

    @property
    def sent_bytes(self) -> int: ...


class Session(Protocol):
    """One service protocol, sans-I/O. Every method returns what to send and/or placed events."""

    max_in_flight: int  # utterances the service takes at once; a backlog is sent at that pace

    @property
    def subprotocols(self) -> list[str] | None:
        """The WebSocket subprotocols the handshake offers (None: none)."""

    def url(self) -> str: ...

    def headers(self) -> list[str]: ...

    def credentials_rejected(self) -> bool:
        """The handshake was refused (401/403); True when the next attempt presents other credentials."""

    def connected(self) -> list[Message]:
        """A new connection: forget all wire state; the messages that open it."""

    def begin(self, utterance: Sending) -> list[Message]:
        """Sending starts (again) at ``utterance.sent_bytes``."""

    def audio(self, utterance: Sending, pcm: bytes) -> list[Message]: ...

    def end(self, utterance: Sending, now: float) -> list[Message]: ...

    def receive(self, message: Message, now: float) -> tuple[list[Message], list[Placed]]:
        """Raises ProtocolError for what cannot be parsed."""

    def tick(self, now: float) -> list[Placed]:
        """Verdicts that only time brings (v1: the quiet after an utterance's last piece)."""

    def forget(self, utterance_id: int) -> None:
        """The utterance left the outbox: drop what the session keeps for it."""
