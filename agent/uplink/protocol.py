"""What the connection owner needs from a wire protocol, and the events it gets back."""

from __future__ import annotations

from dataclasses import dataclass, field


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


@dataclass(frozen=True)
class ServiceAudio:
    """Synthesized speech for the latest final (v1) or for ``turn`` (USP)."""

    wav_bytes: bytes
    language: str | None = None
    turn: str | None = None


@dataclass(frozen=True)
class TurnEnded:
    turn: str


ServiceEvent = ServiceResult | ServiceAudio | TurnEnded
