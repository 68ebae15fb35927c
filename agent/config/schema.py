"""The agent's whole configuration: one YAML file, one frozen dataclass per section.

Each stage owns its section's dataclass next to its code; this module only composes them, adds
the array and daemon sections, and checks what no single section can (e.g. that the capture
stream has the channels the array profile maps).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

from agent.audio.config import CaptureConfig
from agent.conversation.config import ConversationConfig
from agent.config.checks import KeyLines, cross_field_issues, environment_issues
from parley_common.typedyaml import ConfigError, ConfigIssue, load_yaml_config
from agent.frontend import FrontendConfig
from agent.hardware import ArrayGeometry, ProfileError, available_profiles, load_array_profile
from agent.outputs.config import OutputsConfig
from agent.selfcheck import SelfCheckConfig
from agent.uplink.config import UplinkConfig

SYSTEM_CONFIG_PATH = Path("/etc/parley/agent.yaml")


@dataclass(frozen=True)
class InlineGeometry:
    """An array described in the config file itself instead of a shipped profile."""

    mics_m: tuple[tuple[float, ...], ...] = field(metadata={"help": "mic positions [x, y, z] in metres"})
    channel_map: tuple[int, ...] = field(metadata={"help": "stream channel feeding each mic, in order"})
    native_rate_hz: int = field(default=16000, metadata={"min": 8000, "max": 192000})
    native_channels: int = field(default=0, metadata={"min": 0, "max": 32, "help": "0: as many as mics"})


@dataclass(frozen=True)
class ArrayConfig:
    profile: str = field(
        default="respeaker-4mic-hat",
        metadata={"help": "a hardware/arrays/*.yaml profile name, e.g. respeaker-6mic-hat, mono"},
    )
    geometry: InlineGeometry | None = field(
        default=None, metadata={"help": "inline geometry; when set it replaces the profile"})

    def __post_init__(self) -> None:
        if self.geometry is None and self.profile not in available_profiles():
            raise ValueError(
                f"unknown array profile {self.profile!r}; available: {', '.join(available_profiles())}")

    def load(self) -> ArrayGeometry:
        if self.geometry is None:
            return load_array_profile(self.profile)
        g = self.geometry
        return ArrayGeometry.from_mapping(
            {
                "name": "inline",
                "mics_m": [list(m) for m in g.mics_m],
                "channel_map": list(g.channel_map),
                "native_rate_hz": g.native_rate_hz,
                "native_channels": g.native_channels or len(g.channel_map),
            },
            origin="array.geometry",
        )


@dataclass(frozen=True)
class DaemonConfig:
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    status_interval_s: float = field(
        default=10.0, metadata={"min": 1.0, "help": "how often the systemd STATUS line and counters are refreshed"})
    audio_stall_s: float = field(
        default=5.0, metadata={"min": 0.5, "help": "no audio for this long stops petting the systemd watchdog"})
    shutdown_timeout_s: float = field(
        default=2.0, metadata={"min": 0.1, "max": 30.0, "help": "SIGTERM to exit, at most"})


@dataclass(frozen=True)
class DebugConfig:
    record_dir: str | None = field(
        default=None, metadata={"help": "keep the last record_minutes of raw and beamformed audio and the segment log here; null: off"})
    record_minutes: float = field(default=10.0, metadata={"min": 0.1, "max": 1440.0, "help": "length of the ring on disk"})
    chunk_s: float = field(default=60.0, metadata={"min": 2.0, "max": 3600.0, "help": "one file per channel set per chunk; the oldest chunk goes first"})


@dataclass(frozen=True)
class AgentConfig:
    array: ArrayConfig = field(default_factory=ArrayConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    uplink: UplinkConfig = field(default_factory=UplinkConfig)
    conversation: ConversationConfig = field(default_factory=ConversationConfig)
    outputs: OutputsConfig = field(default_factory=OutputsConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    self_check: SelfCheckConfig = field(default_factory=SelfCheckConfig)
    debug: DebugConfig = field(default_factory=DebugConfig)

    @cached_property
    def geometry(self) -> ArrayGeometry:
        return self.array.load()


def load_agent_config(path: str | Path | None, text: str | None = None) -> AgentConfig:
    """Load and validate; raises ConfigError naming every problem (file, line, key, allowed)."""
    config = load_yaml_config(path, AgentConfig, text=text)
    file = str(path) if path is not None else "<defaults>"
    lines = key_lines(path, text)
    try:
        geometry = config.geometry
    except ProfileError as exc:
        raise ConfigError([ConfigIssue(file, None, "array", str(exc))]) from None
    channels = config.capture.channels
    if channels is not None and max(geometry.channel_map) >= channels:
        raise ConfigError([ConfigIssue(
            file, None, "capture.channels",
            f"{channels} channels cannot feed array {geometry.name!r}, whose channel_map uses "
            f"channel {max(geometry.channel_map)}; allowed: >= {max(geometry.channel_map) + 1}")])
    issues = cross_field_issues(config, lines)
    if issues:
        raise ConfigError(sorted(issues, key=lambda issue: issue.line or 0))
    return config


def check_environment(config: AgentConfig, path: str | Path | None) -> None:
    """What a valid config points at on this machine; raises ConfigError naming every problem."""
    issues = environment_issues(config, key_lines(path, None))
    if issues:
        raise ConfigError(sorted(issues, key=lambda issue: issue.line or 0))


def key_lines(path: str | Path | None, text: str | None) -> KeyLines:
    file = str(path) if path is not None else "<defaults>"
    if text is None and path is not None:
        try:
            text = Path(path).read_text()
        except OSError:
            text = None
    return KeyLines(file, text)
