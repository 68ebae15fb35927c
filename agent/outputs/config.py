"""Output configuration: console, transcript, speaker, LEDs, the button, the HTTP server and subtitles."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from typing import Literal


@dataclass(frozen=True)
class ConsoleConfig:
    enabled: bool = True
    show_partials: bool = True


@dataclass(frozen=True)
class TranscriptConfig:
    path: str | None = field(default=None, metadata={"help": "JSON-lines transcript; null: none"})
    max_bytes: int = field(default=10_000_000, metadata={"min": 1000, "help": "rotate when the file grows past this"})
    keep_files: int = field(default=5, metadata={"min": 0, "max": 1000, "help": "rotated files kept (.1 is the newest)"})
    fsync: bool = field(default=True, metadata={"help": "fsync each line so a power cut loses nothing written"})


@dataclass(frozen=True)
class SpeakerConfig:
    backend: Literal["pyaudio", "wav", "none"] = "pyaudio"
    device: str | None = field(default=None, metadata={"help": "output device: name substring or index; null: default"})
    output_dir: str = field(default="/var/lib/parley/tts", metadata={"help": "where the wav backend writes"})
    realtime: bool = field(default=True, metadata={"help": "wav backend: take as long as playing would"})
    languages: tuple[str, ...] = field(default=(), metadata={"help": "languages to speak; empty: every one received"})
    max_age_ms: int = field(default=8000, metadata={"min": 100, "help": "speech older than this is skipped, not played late"})
    gate_tail_ms: int = field(default=300, metadata={"min": 0, "max": 5000, "help": "mic stays gated this long after playback"})
    queue_items: int = field(default=16, metadata={"min": 1, "max": 1000})


@dataclass(frozen=True)
class LedConfig:
    backend: Literal["rpi-gpio", "apa102", "log", "none", "mock"] = "log"
    pins: dict[str, int] = field(
        default_factory=lambda: {"red": 5, "green": 6, "blue": 13},
        metadata={"help": "colour -> BCM pin for plain LEDs (rpi-gpio)"})
    brightness: float = field(default=0.6, metadata={"min": 0.0, "max": 1.0})
    num_leds: int = field(default=12, metadata={"min": 1, "max": 256, "help": "apa102 ring size"})
    spi_bus: int = field(default=0, metadata={"min": 0})
    spi_device: int = field(default=0, metadata={"min": 0})
    power_pin: int | None = field(default=None, metadata={"help": "GPIO that powers the ring (5 on the ReSpeaker 4-mic HAT)"})
    offset_deg: float = field(default=0.0, metadata={"help": "azimuth of LED 0 relative to the array's +x"})
    frame_rate_hz: float = field(default=25.0, metadata={"min": 1.0, "max": 200.0})


@dataclass(frozen=True)
class ButtonConfig:
    pin: int | None = field(default=None, metadata={"help": "BCM pin of a button to ground; null: no button"})
    mode: Literal["toggle-mute", "push-to-talk"] = "toggle-mute"
    bounce_ms: int = field(default=50, metadata={"min": 0, "max": 1000})


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address; anything else (a name, 0.0.0.0, a LAN address) is not."""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class HttpConfig:
    enabled: bool = field(default=False, metadata={"help": "serve the captions page, /healthz and /metrics"})
    host: str = field(default="127.0.0.1", metadata={"help": "listen address; anything but loopback needs token_file"})
    port: int = field(default=8318, metadata={"min": 0, "max": 65535, "help": "0: any free port (tests)"})
    token_file: str | None = field(
        default=None, metadata={"help": "file holding the access token (?token= or 'Authorization: Bearer')"})
    link_down_bound_s: float = field(
        default=30.0, metadata={"min": 1.0, "help": "/healthz answers 503 when the link is down longer than this"})
    allowed_hosts: tuple[str, ...] = field(
        default=(), metadata={"help": "Host header names accepted besides the bind address (and loopback names on a "
                                      "loopback bind), e.g. the box's DNS name; a wildcard bind accepts any Host "
                                      "unless this is set"})
    max_connections: int = field(
        default=100, metadata={"min": 4, "max": 10000, "help": "open HTTP connections at most (pages, probes); "
                               "beyond them a 503; lowered to fit the file-descriptor limit"})
    request_timeout_s: float = field(
        default=5.0, metadata={"min": 0.5, "max": 120.0, "help": "a connection must deliver a complete request "
                               "this soon (and may idle this long between requests), else it is closed"})
    finals_kept: int = field(default=50, metadata={"min": 1, "max": 1000, "help": "finals a new page is sent on connect"})
    history_file: str | None = field(
        default=None, metadata={"help": "keeps the page's last finals_kept finals across restarts; "
                                "null: $STATE_DIRECTORY/captions-history.jsonl under systemd, else none"})
    queue_items: int = field(default=512, metadata={"min": 16, "max": 100000, "help": "agent -> server event queue"})

    def __post_init__(self) -> None:
        if self.enabled and not is_loopback(self.host) and not self.token_file:
            raise ValueError(f"host {self.host!r} is not loopback, so token_file is required; "
                             "allowed: a loopback host (127.0.0.1, ::1, localhost) or a token_file")
        if self.enabled and self.token_file:
            try:
                token = Path(self.token_file).read_text().strip()
            except OSError as exc:
                raise ValueError(f"token_file {self.token_file!r} cannot be read: {exc.strerror}") from None
            if not token:
                raise ValueError(f"token_file {self.token_file!r} is empty; allowed: a file holding the token")


@dataclass(frozen=True)
class SubtitlesConfig:
    directory: str | None = field(
        default=None, metadata={"help": "write live subtitles here (STEM.LANG.srt and .vtt); null: none"})
    stem: str = field(default="captions", metadata={"help": "file name stem"})
    languages: tuple[str, ...] = field(
        default=(), metadata={"help": "languages to write ('source' is the recognized text); empty: every translation"})
    formats: tuple[Literal["srt", "vtt"], ...] = ("srt", "vtt")


@dataclass(frozen=True)
class OutputsConfig:
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    transcript: TranscriptConfig = field(default_factory=TranscriptConfig)
    speaker: SpeakerConfig = field(default_factory=SpeakerConfig)
    leds: LedConfig = field(default_factory=LedConfig)
    button: ButtonConfig = field(default_factory=ButtonConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    subtitles: SubtitlesConfig = field(default_factory=SubtitlesConfig)
