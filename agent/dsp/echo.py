"""Acoustic echo cancellation: the box's own playback removed from every mic before DOA/beamformer.

Placement (measured in issue 20 and again by ``bench/echo.py``): a linear filter per mic before the
DOA and the beamformer keeps the talker intact and lets the DOA find the talker instead of the
loudspeaker; cancelling only the beam leaves the DOA aimed at the box. The engine is SpeexDSP's MDF
(Debian ``libspeexdsp1`` through ctypes, one multichannel state for all mics), chosen over WebRTC's
AEC2/AEC3 because those suppress a talker who speaks over the playback (WER 0.97 in double talk).

A cheap loudspeaker saturates: its sound is a compressed copy of the drive signal, and a linear
filter on the drive signal stops near 20 dB (``bench/echo.py``, tanh speaker). ``SaturationSearch``
estimates that compression as a memoryless tanh of a full scale out of a fixed grid (mono probe
filters on mic 0, one per candidate, race on the first seconds of loud playback; the smallest
residual wins) and the reference is then shaped through it (a Hammerstein model: the memoryless
nonlinearity on the reference, the linear filter for the room). Feeding the nonlinear terms as
extra loudspeaker channels instead (``speex_echo_state_init_mc`` with x^3 or a clipped residual
beside x) reached only 21-23 dB: MDF adapts poorly on far-end channels that correlate that much.

Optional residual-echo suppression (``speex_preprocess`` tied to the echo state) is applied to a
copy of the beam that only the VAD hears: the suppressor's spectral gain makes the VAD deaf to the
echo the linear filter leaves, while the recognizer gets the unsuppressed (linear) signal.

    canceller = make_echo_canceller(EchoConfig(), "speex", n_mics=4, sample_rate_hz=16000)
    cleaned = canceller.process(mics_int16, reference_int16)   # (n, mics), (n,)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger("parley.echo")

SPEEX_ECHO_SET_SAMPLING_RATE = 24
SPEEX_PREPROCESS_SET_DENOISE = 0
SPEEX_PREPROCESS_SET_AGC = 2
SPEEX_PREPROCESS_SET_DEREVERB = 8
SPEEX_PREPROCESS_SET_ECHO_SUPPRESS = 20
SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE = 22
SPEEX_PREPROCESS_SET_ECHO_STATE = 24


class EchoUnavailable(RuntimeError):
    """The configured engine's library is not installed."""


@dataclass(frozen=True)
class EchoConfig:
    tail_ms: int = field(
        default=200, metadata={"min": 20, "max": 1000,
                               "help": "echo path length the filter models (room reverberation plus reference lead)"})
    frame_ms: int = field(default=10, metadata={"min": 5, "max": 20, "help": "the filter's block length"})
    residual_suppression: bool = field(
        default=True, metadata={"help": "speex_preprocess residual-echo suppression on the VAD's copy of the beam"})
    suppress_db: int = field(default=-40, metadata={"min": -90, "max": 0, "help": "residual echo suppression, far end alone"})
    suppress_active_db: int = field(
        default=-6, metadata={"min": -90, "max": 0, "help": "residual echo suppression while someone also speaks (deeper delays barge-in)"})
    lead_ms: float = field(
        default=10.0, metadata={"min": 0.0, "max": 100.0,
                                "help": "the reference is fed this much before the measured echo (never later than it)"})
    initial_delay_ms: float = field(
        default=0.0, metadata={"min": -100.0, "max": 500.0,
                               "help": "playback->capture delay beyond the output latency, until the self-check or the tracker measures it"})
    converged_erle_db: float = field(
        default=12.0, metadata={"min": 3.0, "max": 60.0, "help": "echo attenuation at which the mic gate may open during playback"})
    converged_after_ms: int = field(
        default=300, metadata={"min": 20, "max": 5000, "help": "far-end time the attenuation must hold before it counts"})
    stall_ms: int = field(
        default=200, metadata={"min": 20, "max": 5000,
                               "help": "playing but no reference for this long: fall back to the half-duplex gate"})
    saturation_search: bool = field(
        default=True, metadata={"help": "estimate the loudspeaker's saturation on the first loud playback and shape the reference by it"})
    track_window_ms: int = field(
        default=400, metadata={"min": 200, "max": 10000, "help": "playback per delay re-measurement (two agreeing ones move the reference)"})

    def __post_init__(self) -> None:
        if self.lead_ms >= self.tail_ms:
            raise ValueError(f"lead_ms {self.lead_ms} must be below tail_ms {self.tail_ms}: the filter must reach the echo")


class EchoCanceller(ABC):
    """One engine: mics (n, mics) int16 and the reference (n,) int16 at the capture rate, aligned."""

    frame_samples: int

    @abstractmethod
    def process(self, mics: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """The mics with the echo removed, same shape and dtype; ``n`` a multiple of ``frame_samples``."""

    def suppress_residual(self, beam: np.ndarray) -> np.ndarray:
        """The beam (n,) int16 with residual echo suppressed; engines without a suppressor return it."""
        return beam

    @abstractmethod
    def reset(self) -> None:
        """Forget the learned echo path (the reference moved)."""

    def close(self) -> None:  # noqa: B027 (not abstract: an engine without native state has nothing to free)
        pass


def _load_speexdsp():
    name = ctypes.util.find_library("speexdsp") or "libspeexdsp.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError as exc:
        raise EchoUnavailable(f"echo cancellation 'speex' needs libspeexdsp (Debian: apt-get install libspeexdsp1): {exc}") from None
    lib.speex_echo_state_init_mc.restype = ctypes.c_void_p
    lib.speex_echo_state_init_mc.argtypes = [ctypes.c_int] * 4
    lib.speex_echo_cancellation.argtypes = [ctypes.c_void_p] * 4
    lib.speex_echo_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    lib.speex_echo_state_reset.argtypes = [ctypes.c_void_p]
    lib.speex_echo_state_destroy.argtypes = [ctypes.c_void_p]
    lib.speex_preprocess_state_init.restype = ctypes.c_void_p
    lib.speex_preprocess_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.speex_preprocess_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    lib.speex_preprocess_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.speex_preprocess_state_destroy.argtypes = [ctypes.c_void_p]
    return lib


SATURATION_GRID = (0.9, 0.77, 0.65, 0.55, 0.47, 0.40, 0.34, 0.29)  # tanh full scale, fraction of int16 full scale
SEARCH_LOUD_DBFS = -40.0  # far-end frames louder than this train the probes
SEARCH_STRONG_PEAK = 0.2 * 32768  # frames peaking above this are compared: a saturating speaker compresses them
SEARCH_WARMUP_S = 1.5  # loud far-end before the probes' residuals count (they converge meanwhile)
SEARCH_MEASURE_S = 1.0  # strong far-end over which the residuals are compared
SEARCH_GIVE_UP_S = 30.0  # loud far-end without enough strong frames: the drive never saturates, linear it is
SEARCH_MARGIN_DB = 2.5  # a shaped reference must beat the linear one by this much to be adopted


def saturate(reference: np.ndarray, full_scale: float | None) -> np.ndarray:
    """The drive signal as a speaker saturating at ``full_scale`` (int16 units) plays it; None: linear."""
    if full_scale is None:
        return reference
    return np.round(full_scale * np.tanh(reference.astype(np.float64) / full_scale)).astype(np.int16)


class SaturationSearch:
    """Races mono SpeexDSP filters on mic 0, one per candidate saturation (plus the linear one),
    over the first seconds of loud playback; ``result`` is the winner's full scale, None: linear.
    Costs one mono filter per candidate while the box plays until it is done, nothing after."""

    def __init__(self, lib, frame_samples: int, tail_samples: int, sample_rate_hz: int):
        self._lib = lib
        self.candidates: list[float | None] = [None] + [f * 32768.0 for f in SATURATION_GRID]
        self._states = []
        for _ in self.candidates:
            state = lib.speex_echo_state_init_mc(frame_samples, tail_samples, 1, 1)
            rate = ctypes.c_int(sample_rate_hz)
            lib.speex_echo_ctl(state, SPEEX_ECHO_SET_SAMPLING_RATE, ctypes.byref(rate))
            self._states.append(state)
        self._residual = np.zeros(len(self.candidates))
        self._loud_frames = self._strong_frames = 0
        self._warmup = int(SEARCH_WARMUP_S * sample_rate_hz / frame_samples)
        self._measure = int(SEARCH_MEASURE_S * sample_rate_hz / frame_samples)
        self._give_up = int(SEARCH_GIVE_UP_S * sample_rate_hz / frame_samples)
        self._out = np.empty(frame_samples, dtype=np.int16)
        self._tail_frames = -(-tail_samples // frame_samples)
        self._silent_frames = 0
        self.done = False
        self.result: float | None = None

    def feed(self, mic0: np.ndarray, reference: np.ndarray) -> None:
        """One frame; the search ends by itself after enough loud far-end. Nothing has played for a
        whole tail (the reference all zeros): the probes hold only zeros of far end and would not
        adapt, so they are not run, and a box waiting hours for its first translation does not pay
        for them. (Skipping merely quiet frames made ``make demo`` worse: the probes then missed
        the soft parts of speech and the echo tails.)"""
        self._silent_frames = 0 if reference.any() else self._silent_frames + 1
        if self._silent_frames > self._tail_frames:
            return
        loud = dbfs(reference) >= SEARCH_LOUD_DBFS
        strong = loud and self._loud_frames >= self._warmup and int(np.max(np.abs(reference))) >= SEARCH_STRONG_PEAK
        for k, (state, full) in enumerate(zip(self._states, self.candidates)):
            far = np.ascontiguousarray(saturate(reference, full))
            self._lib.speex_echo_cancellation(state, mic0.ctypes.data, far.ctypes.data, self._out.ctypes.data)
            if strong:
                self._residual[k] += np.sum(self._out.astype(np.float64) ** 2)
        self._loud_frames += loud
        self._strong_frames += strong
        if self._strong_frames >= self._measure:
            residual_db = 10 * np.log10(self._residual + 1.0)
            best = int(np.argmin(residual_db))
            self.result = self.candidates[best] if residual_db[0] - residual_db[best] >= SEARCH_MARGIN_DB else None
            self.close()
        elif self._loud_frames >= self._give_up:
            self.close()

    def restart(self) -> None:
        """The echo path moved: what was measured so far says nothing."""
        for state in self._states:
            self._lib.speex_echo_state_reset(state)
        self._residual[:] = 0.0
        self._loud_frames = self._strong_frames = 0

    def close(self) -> None:
        for state in self._states:
            self._lib.speex_echo_state_destroy(state)
        self._states = []
        self.done = True


def dbfs(samples: np.ndarray) -> float:
    """Level of int16 samples in dB relative to full scale (about -150 for silence or no samples)."""
    power = float(np.mean(samples.astype(np.float64) ** 2)) if samples.size else 0.0
    return 10 * np.log10(power / 32768.0 ** 2 + 1e-15)


class SpeexEchoCanceller(EchoCanceller):
    """SpeexDSP MDF, one multichannel state (``speex_echo_state_init_mc``): all mics share the
    far-end spectrum and one double-talk decision, so 4 mics cost less than 4 mono filters."""

    library = staticmethod(lambda: _load_speexdsp())

    def __init__(self, config: EchoConfig, n_mics: int, sample_rate_hz: int):
        self._lib = _load_speexdsp()
        self.n_mics = n_mics
        self.frame_samples = sample_rate_hz * config.frame_ms // 1000
        self._config = config
        self._rate = sample_rate_hz
        tail = sample_rate_hz * config.tail_ms // 1000
        self._state = self._lib.speex_echo_state_init_mc(self.frame_samples, tail, n_mics, 1)
        rate = ctypes.c_int(sample_rate_hz)
        self._lib.speex_echo_ctl(self._state, SPEEX_ECHO_SET_SAMPLING_RATE, ctypes.byref(rate))
        self._pre = self._make_preprocess() if config.residual_suppression else None
        self._out = np.empty(self.frame_samples * n_mics, dtype=np.int16)
        self._search = SaturationSearch(self._lib, self.frame_samples, tail, sample_rate_hz) \
            if config.saturation_search else None
        self.saturation: float | None = None  # the loudspeaker's estimated tanh full scale (int16 units), None: linear

    def _make_preprocess(self):
        pre = self._lib.speex_preprocess_state_init(self.frame_samples, self._rate)
        # speex_preprocess applies no gain at all with its denoiser off, the echo suppressor included
        for request, value in ((SPEEX_PREPROCESS_SET_DENOISE, 1), (SPEEX_PREPROCESS_SET_AGC, 0),
                               (SPEEX_PREPROCESS_SET_DEREVERB, 0),
                               (SPEEX_PREPROCESS_SET_ECHO_SUPPRESS, self._config.suppress_db),
                               (SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE, self._config.suppress_active_db)):
            arg = ctypes.c_int(value)
            self._lib.speex_preprocess_ctl(pre, request, ctypes.byref(arg))
        self._lib.speex_preprocess_ctl(pre, SPEEX_PREPROCESS_SET_ECHO_STATE, ctypes.c_void_p(self._state))
        return pre

    def process(self, mics: np.ndarray, reference: np.ndarray) -> np.ndarray:
        mics = np.ascontiguousarray(mics, dtype=np.int16)
        reference = np.ascontiguousarray(reference, dtype=np.int16)
        out = np.empty_like(mics)
        n = self.frame_samples
        for start in range(0, mics.shape[0], n):
            block = np.ascontiguousarray(mics[start:start + n])
            far = np.ascontiguousarray(reference[start:start + n])
            if self._search is not None:
                self._search.feed(np.ascontiguousarray(block[:, 0]), far)
                if self._search.done:
                    self.saturation, self._search = self._search.result, None
                    log.info("loudspeaker: %s", "linear" if self.saturation is None else
                             f"saturates near {self.saturation / 32768:.2f} of full scale; the echo reference is shaped by it")
            far = np.ascontiguousarray(saturate(far, self.saturation))
            self._lib.speex_echo_cancellation(self._state, block.ctypes.data, far.ctypes.data, self._out.ctypes.data)
            out[start:start + n] = self._out.reshape(n, self.n_mics)
        return out

    def suppress_residual(self, beam: np.ndarray) -> np.ndarray:
        if self._pre is None:
            return beam
        out = np.array(beam, dtype=np.int16, copy=True)
        n = self.frame_samples
        for start in range(0, len(out) - n + 1, n):
            block = np.ascontiguousarray(out[start:start + n])
            self._lib.speex_preprocess_run(self._pre, block.ctypes.data)
            out[start:start + n] = block
        return out

    def reset(self) -> None:
        self._lib.speex_echo_state_reset(self._state)
        if self._search is not None:
            self._search.restart()

    def close(self) -> None:
        if self._search is not None:
            self._search.close()
            self._search = None
        if self._pre is not None:
            self._lib.speex_preprocess_state_destroy(self._pre)
            self._pre = None
        if self._state:
            self._lib.speex_echo_state_destroy(self._state)
            self._state = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


ENGINES = {"speex": SpeexEchoCanceller}


def speaker_level_pattern_db(mic_positions_m: np.ndarray, speaker_m) -> np.ndarray | None:
    """How much louder each mic hears the box's own loudspeaker than the mics' average (1/r: a
    speaker a few cm away is several dB louder at the near mics; a talker a metre away is not)."""
    if speaker_m is None or len(mic_positions_m) < 2:
        return None
    level = -20 * np.log10(np.linalg.norm(mic_positions_m - np.asarray(speaker_m, dtype=float), axis=1))
    return level - level.mean()


def echo_likeness(mics: np.ndarray, pattern_db: np.ndarray) -> float:
    """1 when the mics' level differences are the loudspeaker's, 0 when the level is even (a talker)."""
    level = 10 * np.log10(np.mean(mics.astype(np.float64) ** 2, axis=0) + 1e-9)
    return float(np.dot(level - level.mean(), pattern_db) / np.dot(pattern_db, pattern_db))


def make_echo_canceller(config: EchoConfig, engine: str, n_mics: int, sample_rate_hz: int) -> EchoCanceller | None:
    """None for ``off``; raises EchoUnavailable when the engine's library is missing."""
    if engine == "off":
        return None
    return ENGINES[engine](config, n_mics, sample_rate_hz)
