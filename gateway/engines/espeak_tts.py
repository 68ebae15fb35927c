"""Speech synthesis with espeak-ng: one voice per target language, 16 kHz mono 16-bit WAV out."""

from __future__ import annotations

import io
import shutil
import subprocess
import wave

import numpy as np
import soxr

OUTPUT_RATE_HZ = 16000


class SynthesisError(RuntimeError):
    pass


class EspeakSynthesizer:
    def __init__(self, voices: dict[str, str]):
        exe = shutil.which("espeak-ng")
        if exe is None:
            raise SynthesisError("espeak-ng is not installed (apt-get install espeak-ng)")
        self._exe = exe
        self.voices = dict(voices)

    def synthesize(self, text: str, language: str) -> bytes:
        voice = self.voices.get(language)
        if voice is None:
            raise SynthesisError(f"no voice for {language!r}; voices: {', '.join(sorted(self.voices))}")
        result = subprocess.run([self._exe, "-v", voice, "--stdout", text], capture_output=True, timeout=30)
        if result.returncode != 0:
            raise SynthesisError(f"espeak-ng failed: {result.stderr.decode(errors='replace').strip()}")
        raw = result.stdout
        rate_hz = int.from_bytes(raw[24:28], "little")
        pcm = np.frombuffer(raw[44: 44 + (len(raw) - 44) // 2 * 2], dtype="<i2")
        if rate_hz != OUTPUT_RATE_HZ:
            pcm = soxr.resample(pcm, rate_hz, OUTPUT_RATE_HZ, quality="HQ")
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(OUTPUT_RATE_HZ)
            out.writeframes(np.asarray(pcm, dtype="<i2").tobytes())
        return buffer.getvalue()
