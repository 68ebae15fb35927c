"""Audio device discovery through PortAudio, with errors that list what does exist."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass


class DeviceNotFound(LookupError):
    """No device matches the configured name or index; the message lists the candidates."""


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    max_input_channels: int
    max_output_channels: int
    default_rate_hz: int


def open_pyaudio():
    """A PyAudio instance, with ALSA's probing chatter on stderr silenced."""
    import pyaudio

    with _quiet_stderr():
        return pyaudio.PyAudio()


@contextlib.contextmanager
def _quiet_stderr():
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def list_devices(pa=None) -> list[DeviceInfo]:
    owned = pa is None
    pa = pa or open_pyaudio()
    try:
        return [
            DeviceInfo(
                index=i, name=str(info["name"]),
                max_input_channels=int(info["maxInputChannels"]),
                max_output_channels=int(info["maxOutputChannels"]),
                default_rate_hz=int(info["defaultSampleRate"]),
            )
            for i in range(pa.get_device_count())
            for info in [pa.get_device_info_by_index(i)]
        ]
    finally:
        if owned:
            pa.terminate()


def find_input_device(spec: str | None, pa=None) -> DeviceInfo:
    return _find_device(spec, pa, "input")


def find_output_device(spec: str | None, pa=None) -> DeviceInfo:
    return _find_device(spec, pa, "output")


def _find_device(spec: str | None, pa, direction: str) -> DeviceInfo:
    """By PortAudio index (a number), exact name, or case-insensitive name substring; None: default."""
    owned = pa is None
    pa = pa or open_pyaudio()
    try:
        devices = [d for d in list_devices(pa) if _channels(d, direction) > 0]
        if spec is None:
            try:
                info = pa.get_default_input_device_info() if direction == "input" else pa.get_default_output_device_info()
            except OSError:
                raise DeviceNotFound(_not_found("no default " + direction + " device", devices, direction)) from None
            return next(d for d in devices if d.index == int(info["index"]))
        if spec.strip().isdigit():
            matches = [d for d in devices if d.index == int(spec)]
        else:
            matches = [d for d in devices if d.name == spec] or [
                d for d in devices if spec.lower() in d.name.lower()]
        if not matches:
            raise DeviceNotFound(_not_found(f"no {direction} device matches {spec!r}", devices, direction))
        return matches[0]
    finally:
        if owned:
            pa.terminate()


def _channels(device: DeviceInfo, direction: str) -> int:
    return device.max_input_channels if direction == "input" else device.max_output_channels


def _not_found(headline: str, devices: list[DeviceInfo], direction: str) -> str:
    if not devices:
        return f"{headline}; this machine has no {direction} devices (is the sound card / HAT driver loaded?)"
    listing = "; ".join(f"[{d.index}] {d.name} ({_channels(d, direction)} ch)" for d in devices)
    return f"{headline}; {direction} devices that exist: {listing}"


def format_device_table(pa=None) -> str:
    """The table ``parley devices`` prints."""
    devices = list_devices(pa)
    rows = [f"{'index':>5}  {'in':>3}  {'out':>3}  {'rate_hz':>7}  name"]
    rows += [f"{d.index:>5}  {d.max_input_channels:>3}  {d.max_output_channels:>3}  {d.default_rate_hz:>7}  {d.name}"
             for d in devices]
    if not devices:
        rows.append("  (no audio devices found)")
    return "\n".join(rows)
