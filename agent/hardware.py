"""Microphone-array geometry as plain data, loaded from ``hardware/arrays/*.yaml`` profiles.

The shipped profiles are package data (``agent/arrays``; ``hardware/arrays`` links there), so an
installed package finds them wherever pip put it.

Azimuth convention used by every spatial stage: degrees in the array's x-y plane, measured
counter-clockwise from +x as seen from above, wrapped to [0, 360). A talker on +x is 0 deg, on
+y is 90 deg.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

_PACKAGED_PROFILE_DIRS = (
    Path(__file__).resolve().parent / "arrays",
    Path("/usr/share/parley/hardware/arrays"),  # a distribution package may put more here
)


class ProfileError(ValueError):
    """A hardware profile is missing or malformed."""


@dataclass(frozen=True)
class ArrayGeometry:
    """Where the mics are and which stream channels feed them.

    ``mic_positions_m`` has shape (n_mics, 3); row i belongs to stream channel ``channel_map[i]``.
    """

    name: str
    mic_positions_m: np.ndarray
    channel_map: tuple[int, ...]
    native_rate_hz: int
    native_channels: int
    alsa_card: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        positions = np.asarray(self.mic_positions_m, dtype=float)
        if positions.ndim != 2 or positions.shape[1] != 3:
            raise ProfileError(f"{self.name}: mic positions must be rows of [x, y, z] metres")
        if len(self.channel_map) != positions.shape[0]:
            raise ProfileError(
                f"{self.name}: channel_map has {len(self.channel_map)} entries but there are "
                f"{positions.shape[0]} mics"
            )
        bad = [c for c in self.channel_map if not 0 <= c < self.native_channels]
        if bad:
            raise ProfileError(
                f"{self.name}: channel_map entries {bad} are outside the {self.native_channels}-channel stream"
            )
        object.__setattr__(self, "mic_positions_m", positions)

    @property
    def n_mics(self) -> int:
        return len(self.channel_map)

    @property
    def is_spatial(self) -> bool:
        """True when there are at least two mics, so direction finding and beamforming make sense."""
        return self.n_mics >= 2

    @property
    def aperture_m(self) -> float:
        diffs = self.mic_positions_m[:, None, :] - self.mic_positions_m[None, :, :]
        return float(np.max(np.linalg.norm(diffs, axis=-1)))

    @classmethod
    def from_mapping(cls, data: dict, origin: str = "<inline>") -> "ArrayGeometry":
        required = ("mics_m", "channel_map", "native_rate_hz", "native_channels")
        missing = [k for k in required if k not in data]
        if missing:
            raise ProfileError(f"{origin}: missing {', '.join(missing)} (required: {', '.join(required)})")
        return cls(
            name=str(data.get("name", origin)),
            mic_positions_m=np.asarray(data["mics_m"], dtype=float),
            channel_map=tuple(int(c) for c in data["channel_map"]),
            native_rate_hz=int(data["native_rate_hz"]),
            native_channels=int(data["native_channels"]),
            alsa_card=str(data.get("alsa_card", "")),
            description=str(data.get("description", "")),
        )


def profile_dirs() -> list[Path]:
    """Where profiles are looked up: $PARLEY_HARDWARE_DIR first, then the shipped ones."""
    extra = os.environ.get("PARLEY_HARDWARE_DIR")
    dirs = [Path(extra) / "arrays"] if extra else []
    return dirs + [d for d in _PACKAGED_PROFILE_DIRS if d.is_dir()]


def available_profiles() -> list[str]:
    names = {p.stem for d in profile_dirs() for p in d.glob("*.yaml")}
    return sorted(names)


def load_array_profile(name: str) -> ArrayGeometry:
    """Load a shipped or user profile by name (file stem), e.g. ``respeaker-4mic-hat``."""
    for directory in profile_dirs():
        path = directory / f"{name}.yaml"
        if path.is_file():
            with path.open() as fh:
                return ArrayGeometry.from_mapping(yaml.safe_load(fh), origin=str(path))
    raise ProfileError(f"unknown array profile {name!r}; available: {', '.join(available_profiles())}")


MAX_HARDWARE_CHANNELS = 16  # more than this is a mixer or a plug device (PulseAudio, PipeWire, dsnoop), not a card


def channel_mismatch(geometry: ArrayGeometry, stream_channels: int, source: str, fewer: str = "") -> str | None:
    """Why array ``geometry`` is too small for a stream of ``stream_channels`` (a WAV file, or a
    sound card that offers exactly that many), naming the shipped profiles that fit; None if it fits.

    A wrong profile is worse than no audio: a 2-mic profile on a 4-mic card or a 4-mic one on the
    6-mic HAT's 8 channels still "works", and puts a talker at 60° at 113–123°. (A stream with
    fewer channels than the profile's, but all it maps, is fine: a recording of the mics alone; and
    so is a mono profile on a stereo mic: without directions there is nothing to misplace.)
    ``fewer``: how to open fewer channels instead, where that is possible."""
    if stream_channels <= geometry.native_channels or not geometry.is_spatial:
        return None
    fitting = [name for name in available_profiles() if load_array_profile(name).native_channels == stream_channels]
    advice = (f"array.profile: {' or '.join(fitting)} ({stream_channels} channels)" if fitting else
              f"an array.profile or array.geometry with native_channels {stream_channels}")
    return (f"{source} delivers {stream_channels} channel(s) but array {geometry.name!r} expects a "
            f"{geometry.native_channels}-channel stream; allowed: {advice}{fewer}")
