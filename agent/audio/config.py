"""Capture configuration: which source, which device, which rates and frame size."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class WavSourceConfig:
    path: str | None = field(default=None, metadata={"help": "multichannel 16-bit WAV file (source: wav)"})
    realtime: bool = field(default=True, metadata={"help": "pace frames at the recording's speed"})
    loop: bool = field(default=False, metadata={"help": "start again at the end instead of stopping"})


@dataclass(frozen=True)
class CaptureConfig:
    source: Literal["pyaudio", "wav"] = "pyaudio"
    device: str | None = field(
        default=None, metadata={"help": "input device: name substring or PortAudio index; null: the default device"})
    native_rate_hz: int | None = field(
        default=None, metadata={"min": 8000, "max": 192000, "help": "device rate; null: the array profile's"})
    channels: int | None = field(
        default=None, metadata={"min": 1, "max": 32, "help": "stream channels; null: the array profile's"})
    sample_rate_hz: int = field(default=16000, metadata={"min": 8000, "max": 48000, "help": "processing rate"})
    frame_ms: Literal[10, 20, 30] = field(default=20, metadata={"help": "frame duration (webrtcvad sizes)"})
    queue_frames: int = field(
        default=100, metadata={"min": 4, "max": 10000, "help": "frames buffered between the audio thread and the pipeline"})
    reopen_initial_ms: int = field(default=500, metadata={"min": 10, "help": "first retry after a device is lost"})
    reopen_max_ms: int = field(default=10000, metadata={"min": 10, "help": "retry interval cap"})
    wav: WavSourceConfig = field(default_factory=WavSourceConfig)

    def __post_init__(self) -> None:
        if self.source == "wav" and not self.wav.path:
            raise ValueError("source 'wav' needs wav.path")
