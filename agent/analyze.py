"""``parley analyze``: what the box would hear in a recording — capture -> front end only.

Runs the configured capture framing (channel map, resampling) and front end (DOA, beamformer,
AGC, VAD, segmenter) on a multichannel WAV as fast as the CPU allows, and prints one line per
utterance: start and end, direction at start and at end, DOA confidence, and how much of it the
VAD called speech. Optionally writes each utterance's beamformed audio, as the uplink would send
it. With ``--reference`` (what the box's speaker played, aligned with the recording, e.g. the debug
recorder's ``-reference.wav``) the echo canceller runs as it did on the box, and the segments are the
echo-cancelled signal. No network, no outputs: it answers "why did (not) the box pick that up?".
"""

from __future__ import annotations

import dataclasses
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from agent.audio import open_capture
from agent.config.schema import AgentConfig
from agent.events import SpeechChunk, SpeechEnded, SpeechStarted
from agent.frontend import FrontEnd


@dataclass
class Segment:
    utterance_id: int
    start_s: float
    azimuth_start_deg: float | None
    confidence_start: float
    end_s: float = 0.0
    azimuth_end_deg: float | None = None
    confidence_end: float = 0.0
    reason: str = ""
    speech_frames: int = 0
    frames: int = 0
    audio: list[np.ndarray] = field(default_factory=list)

    @property
    def vad_speech_ratio(self) -> float:
        return self.speech_frames / self.frames if self.frames else 0.0


def analyze_recording(config: AgentConfig, recording: Path, reference: Path | None = None) -> list[Segment]:
    """Every utterance the front end finds in ``recording``; raises CaptureError for a bad file."""
    capture_config = dataclasses.replace(
        config.capture, source="wav",
        wav=dataclasses.replace(config.capture.wav, path=str(recording), realtime=False, loop=False))
    source = open_capture(capture_config, config.geometry)
    frontend = FrontEnd(config.frontend, config.geometry, capture_config.sample_rate_hz)
    rate_hz = capture_config.sample_rate_hz
    played = _read_reference(reference, rate_hz) if reference is not None else None
    segments: list[Segment] = []
    open_segment: Segment | None = None
    source.start()
    try:
        while (frame := source.read(timeout_s=1.0)) is not None:
            events = frontend.process(frame, reference=_span(played, frame) if played is not None else None)
            open_segment = _follow(events, segments, open_segment, rate_hz)
            if open_segment is not None:
                open_segment.frames += 1
                open_segment.speech_frames += frontend.is_speech
        _follow(frontend.flush(), segments, open_segment, rate_hz)
    finally:
        source.close()
    return segments


def _read_reference(path: Path, rate_hz: int) -> np.ndarray:
    from agent.audio.wavreader import WavFormatError, WavReader
    from agent.audio import CaptureError
    from agent.audio.resample import StreamResampler

    try:
        wav = WavReader(str(path))
    except WavFormatError as exc:
        raise CaptureError(f"--reference: {exc}") from None
    try:
        samples = wav.read(1 << 31)[:, :1]
    finally:
        wav.close()
    return StreamResampler(wav.rate_hz, rate_hz, 1).process(samples, last=True)[:, 0]


def _span(played: np.ndarray, frame) -> np.ndarray:
    out = np.zeros(frame.n_samples, np.int16)
    piece = played[frame.start_sample:frame.end_sample]
    out[:len(piece)] = piece
    return out


def _follow(events, segments: list[Segment], current: Segment | None, rate_hz: int) -> Segment | None:
    for event in events:
        if isinstance(event, SpeechStarted):
            current = Segment(event.utterance_id, event.start_sample / rate_hz, event.azimuth_deg, event.doa_confidence)
            segments.append(current)
        elif isinstance(event, SpeechChunk) and current is not None:
            current.audio.append(event.frame.samples[:, 0])
        elif isinstance(event, SpeechEnded) and current is not None:
            current.end_s = event.end_sample / rate_hz
            current.azimuth_end_deg = event.azimuth_deg
            current.confidence_end = event.doa_confidence
            current.reason = event.reason
            current = None
    return current


def print_segments(segments: list[Segment], vad_engine: str, out: TextIO) -> None:
    out.write(f"{'#':>3} {'start s':>8} {'end s':>8} {'dur s':>6} {'az start':>8} {'az end':>7} "
              f"{'conf start/end':>14} {'VAD ' + vad_engine:>12} end\n")
    for s in segments:
        out.write(f"{s.utterance_id:>3} {s.start_s:8.2f} {s.end_s:8.2f} {s.end_s - s.start_s:6.2f} "
                  f"{_deg(s.azimuth_start_deg):>8} {_deg(s.azimuth_end_deg):>7} {s.confidence_start:9.2f}/{s.confidence_end:4.2f} "
                  f"{100 * s.vad_speech_ratio:11.0f}% {s.reason}\n")
    out.write(f"{len(segments)} segment(s)\n")


def write_segments(segments: list[Segment], directory: Path, rate_hz: int) -> list[Path]:
    """Each utterance's beamformed audio as ``segment-NNN.wav`` (16-bit mono)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in segments:
        path = directory / f"segment-{s.utterance_id:03d}.wav"
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(rate_hz)
            wav.writeframes(np.concatenate(s.audio).astype("<i2").tobytes() if s.audio else b"")
        paths.append(path)
    return paths


def _deg(azimuth: float | None) -> str:
    return "-" if azimuth is None else f"{azimuth:.0f}°"
