"""Audio in and out: capture sources, device lookup, resampling."""

from agent.audio.capture import CaptureError, CaptureSource, PyAudioSource, WavSource, open_capture
from agent.audio.devices import DeviceNotFound, find_input_device, find_output_device, list_devices

__all__ = [
    "CaptureError", "CaptureSource", "DeviceNotFound", "PyAudioSource", "WavSource",
    "find_input_device", "find_output_device", "list_devices", "open_capture",
]
