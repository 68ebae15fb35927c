"""What the connection owner needs from a wire protocol, and the events it gets back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol


class ProtocolError(ValueError):
    """The service sent something we cannot parse: costs a reconnect, never a crash."""


@dataclass(frozen=True)
class ServiceResult:
    """A partial or final recognition. ``turn`` names the utterance's turn (USP); None for v1."""

    final: bool
    text: str
    translations: dict[str, str] = field(default_factory=dict)
    turn: str | None = None
    stream_position: int | None = None  # v1 timing info: byte offset of the recognized span
    stream_size_bytes: int | None = None  # v1 timing info: its length in bytes
    end_ticks: int | None = None  # USP final: where it ends from the turn's first sample (acknowledged audio)
    language: str | None = None  # USP with identify_languages: the language the service heard


@dataclass(frozen=True)
class ServiceAudio:
    """Synthesized speech for the latest final (v1) or for ``turn`` (USP)."""

    wav_bytes: bytes
    language: str | None = None
    turn: str | None = None


@dataclass(frozen=True)
class TurnEnded:
    turn: str


@dataclass(frozen=True)
class ServiceFailure:
    """The service failed (part of) a turn and said why (a RecognitionStatus error, a failed synthesis).

    ``action``: ``retry`` the utterance from its acknowledged audio after a back-off (``throttled``:
    a longer one), ``cancel`` it, or only ``report`` (the text still arrives). Acted on at turn end.
    """

    turn: str
    reason: str
    action: Literal["retry", "cancel", "report"]
    throttled: bool = False


ServiceEvent = ServiceResult | ServiceAudio | TurnEnded | ServiceFailure


@dataclass(frozen=True)
class Opened:
    """Where an utterance begins on the wire: its USP turn, or its v1 byte offset in the stream."""

    turn: str | None = None
    stream_position: int | None = None


class WireProtocol(Protocol):
    """One service protocol as the connection owner drives it; it reads utterances, never writes them."""

    turns: bool  # results name their utterance (USP) or not (v1)
    max_in_flight: int  # utterances the service takes at once; a backlog is sent at that pace
    subprotocols: list[str] | None

    def url(self) -> str: ...

    def headers(self) -> list[str]: ...

    def credentials_rejected(self) -> bool:
        """The handshake was refused (401/403); True when the next attempt presents other credentials."""

    def on_connect(self, ws) -> None: ...

    def begin(self, ws, utterance) -> Opened: ...

    def send_audio(self, ws, utterance, pcm: bytes) -> None: ...

    def end(self, ws, utterance) -> int | None:
        """Send the end of the utterance; v1 returns the stream offset where it ends."""

    def turn_completed(self, ws, turn: str) -> None:
        """A turn got its final and its end (USP acknowledges with telemetry)."""

    def parse(self, message: str | bytes) -> list[ServiceEvent]: ...
