"""The front end: multichannel frames in, utterance events out.

    frame (n, mics) + reference --echo canceller (per mic)--> --STFT--> DOA (speech hops only) --> beamformer --ISTFT--> mono frame
    mono frame --> AGC --> post-filter --> VAD --> segmenter --> SpeechStarted / SpeechChunk / SpeechEnded

The post-filter (``agent/dsp/postfilter.py``, DeepFilterNet3) is what the uplink hears; the VAD hears
the levelled beam before it unless ``postfilter.vad_input`` is ``filtered``. The beamformed output
lags the input by one STFT hop (10 ms), the post-filter adds its own fixed delay; output frames
carry their true sample index, so timestamps stay exact. The VAD decision of the previous frame gates which hops
update the DOA (speech) and the noise statistics of the DOA and MVDR (non-speech, but not within
``noise_guard_ms`` after speech: the room's reverberant tail of the talker is not noise, and
learning it would teach both to suppress the talker). The DOA also learns a non-speech hop only
``onset_guard_ms`` later, once no speech has begun since: the VAD calls a talker's first syllables
speech a couple of hundred milliseconds late at low SNR, and whitening with a noise covariance that
holds them erases the talker's direction and leaves its mirror image (θ + 180°) as the peak.

Echo cancellation (``agent/dsp/echo.py``) is its own first stage, per mic before the DOA and the
beamformer, so both hear the room without the box's own voice; the VAD hears a copy of the beam
with the residual echo suppressed as well (``EchoCanceller.suppress_residual``).

With the post-filter on, a frame in which it hears speech (its local SNR above
``postfilter.speech_presence_snr_db``) is not noise either: the VAD misses the quiet parts of
low-SNR speech, and the MVDR learning them as noise suppresses the talker (bench/README.md).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from parley_common.frames import Frame
from agent.dsp.agc import AgcConfig, LevelNormalizer
from agent.dsp.beamformer import Beamformer, BeamformerConfig
from agent.dsp.doa import DoaConfig, WhitenedMusicDoa
from agent.dsp.echo import EchoConfig, dbfs, echo_likeness, make_echo_canceller, speaker_level_pattern_db
from agent.dsp.postfilter import PostfilterConfig, make_postfilter
from agent.dsp.stft import StreamingStft
from agent.events import SegmentEvent
from agent.hardware import ArrayGeometry
from parley_common.vad.engines import VadConfig, make_vad
from parley_common.vad.segmenter import Segmenter, SegmenterConfig

HOP_MS = 10
FAR_END_HOLD_HOPS = 50  # the room's echo tail outlasts the playback by a few hundred ms
ECHO_LIKENESS_MAX = 0.5
FAR_END_VAD_FLOOR_DBFS = -60.0  # bench/echo.py: 90 % of a talker's frames are louder, suppressed residue is not


@dataclass(frozen=True)
class FrontendConfig:
    echo_cancellation: Literal["off", "speex"] = field(
        default="speex", metadata={"help": "remove the box's own playback from the mics; off: the mic is gated while it speaks"})
    echo: EchoConfig = field(default_factory=EchoConfig)
    doa: DoaConfig = field(default_factory=DoaConfig)
    beamformer: BeamformerConfig = field(default_factory=BeamformerConfig)
    agc: AgcConfig = field(default_factory=AgcConfig)
    postfilter: PostfilterConfig = field(default_factory=PostfilterConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    noise_guard_ms: float = field(
        default=300.0, metadata={"min": 0.0, "max": 2000.0,
                                 "help": "non-speech this soon after speech (its reverberation) is not learned as noise"})
    onset_guard_ms: float = field(
        default=300.0, metadata={"min": 0.0, "max": 2000.0,
                                 "help": "non-speech this soon before speech (an onset the VAD has not caught yet) is not learned as noise by the DOA"})


class FrontEnd:
    def __init__(self, config: FrontendConfig, geometry: ArrayGeometry, sample_rate_hz: int = 16000,
                 first_utterance_id: int = 1):
        self.config = config
        self.geometry = geometry
        self.sample_rate_hz = sample_rate_hz
        self.hop = sample_rate_hz * HOP_MS // 1000
        self.spatial = geometry.is_spatial
        self._echo = make_echo_canceller(config.echo, config.echo_cancellation, geometry.n_mics, sample_rate_hz)
        self.last_cancelled: np.ndarray | None = None  # the mics after echo cancellation (None: no reference)
        self._far_end_hops = 0  # the box played within this many hops: the VAD hears the suppressed copy
        self._speaker_pattern_db = speaker_level_pattern_db(geometry.mic_positions_m, geometry.speaker_position_m)
        self._stft = StreamingStft(self.hop, geometry.n_mics)
        self._doa = WhitenedMusicDoa(config.doa, geometry, sample_rate_hz, self._stft.n_fft, self.hop) if self.spatial else None
        self._beamformer = Beamformer(config.beamformer, geometry, sample_rate_hz, self._stft.n_fft, self.hop)
        self._agc = LevelNormalizer(config.agc, sample_rate_hz) if config.agc.enabled else None
        self._postfilter = make_postfilter(config.postfilter, sample_rate_hz)
        self._vad_hears_filtered = config.postfilter.vad_input == "filtered"
        self._presence_snr_db = config.postfilter.speech_presence_snr_db if self._postfilter else None
        self._presence = False  # VAD speech, or the post-filter hearing speech: not noise to learn
        self._vad = make_vad(config.vad, sample_rate_hz)
        self._segmenter = Segmenter(config.segmenter, first_utterance_id)
        self._speech = False
        self._noise_guard_hops = int(round(config.noise_guard_ms / HOP_MS))
        self._hops_since_speech = self._noise_guard_hops
        self._hops_since_presence = self._noise_guard_hops
        self._onset_guard_hops = int(round(config.onset_guard_ms / HOP_MS))
        self._doa_noise_pending: deque[np.ndarray] = deque()  # noise hops waiting out the onset guard
        forget_ms = config.doa.forget_after_silence_ms
        self._forget_hops = int(round(forget_ms / HOP_MS)) if forget_ms is not None else None
        self.noise_hops: tuple[bool, ...] = ()  # which hops of the last frame the MVDR learned as noise
        self.last_output: Frame | None = None  # the last beamformed (and levelled) mono frame

    @property
    def azimuth_deg(self) -> float | None:
        """The talker's estimated direction; the configured fixed angle until there is an estimate."""
        estimate = self._doa.azimuth_deg if self._doa else None
        return estimate if estimate is not None else self.config.beamformer.fixed_azimuth_deg

    @property
    def doa_confidence(self) -> float:
        return self._doa.confidence if self._doa else 0.0

    @property
    def is_speech(self) -> bool:
        return self._speech

    @property
    def echo_canceller(self):
        return self._echo

    def process(self, frame: Frame, muted: bool = False, reference: np.ndarray | None = None) -> list[SegmentEvent]:
        """``reference``: what the speaker played for this frame's samples (int16 (n,)), aligned; None: none."""
        frame = self._cancel_echo(frame, reference)
        mono = self._beamform(frame, muted) if self.spatial else frame.samples[:, :1]
        if self._agc is not None:
            mono = self._agc.process(mono)
        delay = self.hop if self.spatial else 0
        vad_input = mono
        if self._postfilter is not None:
            mono = self._postfilter.process(mono)
            delay += self._postfilter.delay_samples
            vad_input = mono if self._vad_hears_filtered else vad_input
        out = self.last_output = Frame(mono, frame.start_sample - delay, frame.sample_rate_hz)
        self._speech = (not muted) and self._is_speech(vad_input[:, 0])
        postfilter = self._postfilter  # the presence threshold is set only with a post-filter
        self._presence = self._speech or (
            self._presence_snr_db is not None and postfilter is not None and postfilter.local_snr_db > self._presence_snr_db)
        return self._segmenter.process(out, self._speech, muted, self.azimuth_deg, self.doa_confidence)

    def _cancel_echo(self, frame: Frame, reference: np.ndarray | None) -> Frame:
        """The echo stage: per mic, before everything that listens to the room."""
        if self._echo is None or reference is None:
            self.last_cancelled = None
            return frame
        cancelled = self.last_cancelled = self._echo.process(frame.samples, reference)
        self._far_end_hops = FAR_END_HOLD_HOPS if np.any(reference) else max(0, self._far_end_hops - frame.n_samples // self.hop)
        return Frame(cancelled, frame.start_sample, frame.sample_rate_hz)

    def _is_speech(self, mono: np.ndarray) -> bool:
        """While the box plays the VAD hears the suppressed copy, and a frame that quiet is not a
        talker (Silero calls residue near digital silence speech now and then)."""
        far_end = self._far_end_hops > 0
        heard = self._vad_input(mono, far_end)
        if far_end and dbfs(heard) < FAR_END_VAD_FLOOR_DBFS:
            return False
        cancelled = self.last_cancelled  # this frame's, when it had a reference (like _vad_input, None: no echo to judge)
        if far_end and cancelled is not None and self._speaker_pattern_db is not None and \
                echo_likeness(cancelled, self._speaker_pattern_db) > ECHO_LIKENESS_MAX:
            return False  # the residue is louder at the mics next to the loudspeaker: the box's own voice
        return self._vad.is_speech(heard)

    def _vad_input(self, mono: np.ndarray, far_end: bool) -> np.ndarray:
        """While the box plays: the residual echo suppressed on the VAD's copy (the suppressor runs
        always, to keep its noise estimate, at the level before the AGC it expects)."""
        if self._echo is None or self.last_cancelled is None:
            return mono
        gain = 10 ** ((self._agc.gain_db if self._agc is not None else 0.0) / 20)
        suppressed = self._echo.suppress_residual(np.round(mono / gain).astype(np.int16))
        if not far_end:
            return mono
        return np.clip(suppressed * gain, -32768, 32767).astype(np.int16)

    def flush(self) -> list[SegmentEvent]:
        return self._segmenter.close("shutdown")

    def _beamform(self, frame: Frame, muted: bool) -> np.ndarray:
        doa = self._doa
        assert doa is not None  # only a spatial array is beamformed, and it has a DOA
        samples = frame.samples.astype(np.float32)
        out = np.empty(frame.n_samples, dtype=np.float32)
        noise_hops = []
        for start in range(0, frame.n_samples, self.hop):
            spectrum = self._stft.analyze(samples[start:start + self.hop])
            if self._speech and self._forget_hops is not None and self._hops_since_speech >= self._forget_hops:
                doa.forget_speech()
            self._hops_since_speech = 0 if self._speech else self._hops_since_speech + 1
            self._hops_since_presence = 0 if self._presence else self._hops_since_presence + 1
            is_noise = not muted and self._hops_since_presence > self._noise_guard_hops
            noise_hops.append(is_noise)
            if self._speech:
                self._doa_noise_pending.clear()
                doa.add_speech(spectrum)
            elif is_noise:
                self._doa_noise_pending.append(spectrum)
                if len(self._doa_noise_pending) > self._onset_guard_hops:
                    doa.add_noise(self._doa_noise_pending.popleft())
            beam = self._beamformer.process(spectrum, doa.azimuth_deg, is_noise=is_noise)
            out[start:start + self.hop] = self._stft.synthesize(beam)
        self.noise_hops = tuple(noise_hops)
        return np.clip(np.round(out), -32768, 32767).astype(np.int16)[:, None]
