"""English (or any espeak-ng voice) speech made on this machine, for tests, benchmarks and the demo.

The shipped product never needs it at run time; it exists so that every place that needs human-like
speech can fall back to it when the shared recordings are not present.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave

import numpy as np
import soxr


class SynthUnavailable(RuntimeError):
    """espeak-ng is not installed."""


def speak(text: str, voice: str = "en-us", sample_rate_hz: int = 16000, words_per_minute: int = 150) -> np.ndarray:
    """Synthesize ``text`` with espeak-ng; returns mono int16 samples at ``sample_rate_hz``."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SynthUnavailable("espeak-ng is not installed (apt-get install espeak-ng)")
    wav_bytes = subprocess.run(
        [exe, "-v", voice, "-s", str(words_per_minute), "--stdout", text],
        check=True, capture_output=True,
    ).stdout
    samples, native_rate_hz = read_wav_bytes(wav_bytes)
    if native_rate_hz != sample_rate_hz:
        samples = soxr.resample(samples, native_rate_hz, sample_rate_hz, quality="HQ")
    return np.asarray(samples, dtype=np.int16).reshape(-1)


def read_wav_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """Decode a 16-bit PCM WAV held in memory; tolerates the zero/0xFFFFFFFF sizes of streamed WAVs."""
    if len(data) >= 44 and data[:4] == b"RIFF" and data[36:40] == b"data":
        channels = int.from_bytes(data[22:24], "little")
        rate_hz = int.from_bytes(data[24:28], "little")
        pcm = np.frombuffer(data[44: 44 + (len(data) - 44) // 2 * 2], dtype="<i2")
        return pcm.reshape(-1, channels)[:, 0].copy(), rate_hz
    with wave.open(io.BytesIO(data)) as wav:
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        return pcm.reshape(-1, wav.getnchannels())[:, 0].copy(), wav.getframerate()
