"""Voice activity detectors behind one interface: ``is_speech(mono int16 frame) -> bool``.

``webrtc`` is the WebRTC GMM detector (tiny, fast, 10/20/30 ms frames). ``silero`` runs the ONNX
model that the silero-vad wheel ships, with onnxruntime directly (no torch); it works on 32 ms
windows, so it answers for each frame with the probability of the latest complete window.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np


class VadUnavailable(RuntimeError):
    """The configured VAD engine's package or model is missing."""


@dataclass(frozen=True)
class VadConfig:
    engine: Literal["webrtc", "silero"] = field(
        default="silero", metadata={"help": "silero resists clatter and hum that fool webrtc; webrtc is lighter"})
    webrtc_mode: int = field(default=3, metadata={"min": 0, "max": 3, "help": "0: most permissive .. 3: most aggressive"})
    silero_threshold: float = field(default=0.5, metadata={"min": 0.05, "max": 0.95})


class WebRtcVad:
    def __init__(self, config: VadConfig, sample_rate_hz: int):
        import webrtcvad

        self._vad = webrtcvad.Vad(config.webrtc_mode)
        self._rate = sample_rate_hz

    def is_speech(self, samples: np.ndarray) -> bool:
        return self._vad.is_speech(np.ascontiguousarray(samples, dtype="<i2").tobytes(), self._rate)


class SileroVad:
    WINDOW = 512
    CONTEXT = 64

    def __init__(self, config: VadConfig, sample_rate_hz: int):
        if sample_rate_hz != 16000:
            raise VadUnavailable("the silero engine is used at 16000 Hz only")
        try:
            import onnxruntime
        except ImportError:
            raise VadUnavailable("the silero VAD needs onnxruntime: pip install 'parley[silero]'") from None
        spec = importlib.util.find_spec("silero_vad")
        model = Path(spec.origin).parent / "data" / "silero_vad.onnx" if spec and spec.origin else None
        if model is None or not model.is_file():
            raise VadUnavailable("the silero VAD model is missing: pip install --no-deps silero-vad")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self._threshold = config.silero_threshold
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros(self.CONTEXT, dtype=np.float32)
        self._buffer = np.zeros(0, dtype=np.float32)
        self._sr = np.array(16000, dtype=np.int64)
        self.probability = 0.0

    def is_speech(self, samples: np.ndarray) -> bool:
        self._buffer = np.concatenate([self._buffer, samples.astype(np.float32) / 32768.0])
        while self._buffer.size >= self.WINDOW:
            window, self._buffer = self._buffer[: self.WINDOW], self._buffer[self.WINDOW:]
            x = np.concatenate([self._context, window])[None, :]
            out, self._state = self._session.run(None, {"input": x, "state": self._state, "sr": self._sr})
            self._context = window[-self.CONTEXT:]
            self.probability = float(out[0, 0])
        return self.probability >= self._threshold


def make_vad(config: VadConfig, sample_rate_hz: int):
    return SileroVad(config, sample_rate_hz) if config.engine == "silero" else WebRtcVad(config, sample_rate_hz)
