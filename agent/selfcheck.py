"""Self-check with the box's own speaker: a short quiet chirp, heard by every mic.

From when the chirp reaches each mic (band-limited GCC-PHAT against the reference, sub-sample
peak) it measures the playback->capture delay for the echo canceller, the direction the array
hears its own loudspeaker from, and compares both with the array profile's ``speaker_m``. An
AC108 ReSpeaker that came up with its channel order rotated hears the speaker a whole number of
mic spacings away: the arrival pattern then fits the profile after rotating the channels, which
the agent applies (or reports loudly). A channel that hears nothing of the chirp is dead; a pair
whose exchange fits the profile much better is reported as swapped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from agent.hardware import ArrayGeometry
from agent.outputs.speaker_sinks import SELF_CHECK_LABEL

log = logging.getLogger("parley.selfcheck")

SOUND_M_PER_S = 343.0
BAND_HZ = (150.0, 7000.0)
SEARCH_MS = (-50.0, 300.0)
DEAD_BELOW_DB = 20.0  # a channel this far under the median heard nothing of the chirp
WRONG_ORDER_RMS_US = 30.0  # arrivals farther than this from the profile's pattern: not as mounted
BETTER_BY = 4.0  # a re-ordering must fit this many times better (squared error) to be believed
LISTEN_AFTER_S = 0.5
HEARD_ABOVE_FLOOR_DB = 6.0
FRAMES_BEFORE_CHIRP = 5


@dataclass(frozen=True)
class SelfCheckConfig:
    at_start: bool = field(default=True, metadata={"help": "play the chirp at start-up (needs a speaker backend)"})
    level_dbfs: float = field(default=-30.0, metadata={"min": -60.0, "max": -6.0, "help": "chirp peak level: quiet"})
    duration_ms: int = field(default=500, metadata={"min": 100, "max": 3000})
    repair_channel_order: bool = field(
        default=True, metadata={"help": "a rotated channel order is re-mapped; false: only reported"})


@dataclass
class SelfCheckResult:
    heard: bool = True
    delay_ms: float | None = None
    arrivals_us: list[float] = field(default_factory=list)
    levels_db: list[float] = field(default_factory=list)
    speaker_azimuth_deg: float | None = None
    expected_azimuth_deg: float | None = None
    rotation: int = 0
    channel_fix: list[int] | None = None  # new column j takes old column channel_fix[j]
    dead_mics: list[int] = field(default_factory=list)
    swapped_mics: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def chirp(rate_hz: int, duration_ms: int, level_dbfs: float) -> np.ndarray:
    """A logarithmic sweep over ``BAND_HZ`` with 10 ms fades, int16."""
    n = rate_hz * duration_ms // 1000
    t = np.arange(n) / rate_hz
    f0, f1, span = BAND_HZ[0], BAND_HZ[1], duration_ms / 1000
    k = np.log(f1 / f0)
    phase = 2 * np.pi * f0 * span / k * (np.exp(t / span * k) - 1)
    fade = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.01 * rate_hz))
    return np.round(np.sin(phase) * fade * 32767 * 10 ** (level_dbfs / 20)).astype(np.int16)


def _arrival_us(mic: np.ndarray, reference: np.ndarray, rate_hz: int) -> float:
    n = 1 << int(np.ceil(np.log2(len(mic) * 2)))
    freqs = np.fft.rfftfreq(n, 1 / rate_hz)
    cross = np.fft.rfft(mic, n) * np.conj(np.fft.rfft(reference, n))
    cross = np.where((freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1]), cross / (np.abs(cross) + 1e-12), 0)
    upsample = 8  # sub-sample resolution by zero-padding the cross spectrum
    cc = np.fft.irfft(cross, n * upsample)
    lags = np.arange(int(SEARCH_MS[0] * rate_hz * upsample / 1000), int(SEARCH_MS[1] * rate_hz * upsample / 1000))
    best = lags[int(np.argmax(cc[lags % len(cc)]))]
    return 1e6 * best / (rate_hz * upsample)


def _expected_us(geometry: ArrayGeometry, speaker_m: np.ndarray) -> np.ndarray:
    return 1e6 * np.linalg.norm(geometry.mic_positions_m - speaker_m, axis=1) / SOUND_M_PER_S


def _misfit(measured: np.ndarray, expected: np.ndarray, alive: np.ndarray) -> float:
    m, e = measured[alive], expected[alive]
    return float(np.mean(((m - m.mean()) - (e - e.mean())) ** 2))


def _rotated(position_m: np.ndarray, angle_deg: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    x, y, z = position_m
    return np.array([x * np.cos(a) - y * np.sin(a), x * np.sin(a) + y * np.cos(a), z])


def is_ring(geometry: ArrayGeometry) -> bool:
    """Mics evenly on a circle, in order: a channel-order shift is then a rotation."""
    xy = geometry.mic_positions_m[:, :2] - geometry.mic_positions_m[:, :2].mean(axis=0)
    if geometry.n_mics < 3 or np.ptp(np.linalg.norm(xy, axis=1)) > 0.05 * np.linalg.norm(xy, axis=1).mean():
        return False
    steps = np.diff(np.unwrap(np.arctan2(xy[:, 1], xy[:, 0])))
    return bool(np.allclose(steps, steps[0], atol=0.05))


def analyze_self_check(mics: np.ndarray, reference: np.ndarray, geometry: ArrayGeometry, rate_hz: int) -> SelfCheckResult:
    """``mics`` (n, mics) and ``reference`` (n,) on the same capture timeline."""
    result = SelfCheckResult()
    mics = mics.astype(np.float64)
    active = np.abs(reference) > 0
    levels = 10 * np.log10(np.mean(mics[active] ** 2, axis=0) + 1e-9) if active.any() else np.zeros(mics.shape[1])
    result.levels_db = [float(v) for v in levels]
    if not active.any():
        result.problems.append("self-check: the chirp never reached the reference (speaker not playing)")
        return result
    first = int(np.argmax(active))
    quiet = mics[:first] if first >= rate_hz // 20 else mics[~active]
    floor = 10 * np.log10(np.mean(quiet ** 2, axis=0) + 1e-9) if len(quiet) else np.zeros(mics.shape[1])
    if np.max(levels - floor) < HEARD_ABOVE_FLOOR_DB:
        result.heard = False  # no echo path (headphones, a speaker far away): nothing to cancel, nothing wrong
        log.info("self-check: the mics do not hear the speaker (%.0f dB over the room at most)", np.max(levels - floor))
        return result
    alive = (levels > np.median(levels) - DEAD_BELOW_DB) & np.any(mics != 0, axis=0)
    result.dead_mics = [int(i) for i in np.flatnonzero(~alive)]
    if result.dead_mics:
        result.problems.append(f"self-check: mic(s) {result.dead_mics} hear nothing of the speaker (dead or unplugged?)")
    arrivals = np.array([_arrival_us(mics[:, m], reference.astype(np.float64), rate_hz) for m in range(mics.shape[1])])
    result.arrivals_us = [float(v) for v in arrivals]
    result.delay_ms = float(np.median(arrivals[alive]) / 1000) if alive.any() else None
    if geometry.speaker_position_m is None or not geometry.is_spatial or alive.sum() < 3:
        return result
    speaker = np.asarray(geometry.speaker_position_m, dtype=float)
    result.expected_azimuth_deg = float(np.degrees(np.arctan2(speaker[1], speaker[0])) % 360)
    misfits = [_misfit(arrivals, _expected_us(geometry, _rotated(speaker, a)), alive) for a in range(360)]
    result.speaker_azimuth_deg = float(result.expected_azimuth_deg + int(np.argmin(misfits))) % 360
    _check_order(result, arrivals, _expected_us(geometry, speaker), alive, geometry)
    return result


def _check_order(result: SelfCheckResult, arrivals: np.ndarray, expected: np.ndarray, alive: np.ndarray,
                 geometry: ArrayGeometry) -> None:
    n = geometry.n_mics
    as_mounted = _misfit(arrivals, expected, alive)
    if np.sqrt(as_mounted) < WRONG_ORDER_RMS_US:
        return
    candidates: list[tuple[float, list[int], int, list[int]]] = []  # (misfit, fix, rotation, swapped pair)
    if is_ring(geometry):
        for k in range(1, n):
            fix = [(j - k) % n for j in range(n)]
            candidates.append((_misfit(arrivals[fix], expected, alive[fix]), fix, k, []))
    for a in range(n):
        for b in range(a + 1, n):
            fix = list(range(n))
            fix[a], fix[b] = b, a
            candidates.append((_misfit(arrivals[fix], expected, alive[fix]), fix, 0, [a, b]))
    misfit, fix, rotation, pair = min(candidates, key=lambda c: c[0])
    spacing = 360 / n
    if misfit * BETTER_BY > as_mounted:
        result.problems.append(f"self-check: the speaker is heard {np.sqrt(as_mounted):.0f} µs off the profile's "
                               f"pattern and no channel re-ordering explains it (wrong profile or speaker_m?)")
    elif rotation:
        result.rotation, result.channel_fix = rotation, fix
        result.problems.append(f"self-check: channel order rotated by {rotation} (the speaker is heard "
                               f"{rotation * spacing:.0f}° off): the ReSpeaker came up shifted")
    else:
        result.swapped_mics, result.channel_fix = pair, fix
        result.problems.append(f"self-check: mics {pair[0]} and {pair[1]} look swapped")


def run_self_check(config: SelfCheckConfig, capture, speaker, timeline, clock, geometry: ArrayGeometry,
                   rate_hz: int, stop=None, timeout_s: float = 5.0):
    """Play the chirp and listen; returns (result, frames heard). The caller owns capture and speaker;
    ``stop`` (a threading.Event) ends the check early."""
    signal = chirp(rate_hz, config.duration_ms, config.level_dbfs)
    frames, references = [], []
    deadline = time.monotonic() + timeout_s
    heard_end_at = None
    while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
        frame = capture.read(timeout_s=0.2)
        if frame is None:
            if capture.state == "stopped":
                break
            continue
        clock.observe(frame.end_sample, time.monotonic())
        frames.append(frame)
        if len(frames) == FRAMES_BEFORE_CHIRP:  # the capture clock is known: the chirp can be placed on it
            log.info("self-check: playing a %d ms chirp at %.0f dBFS", config.duration_ms, config.level_dbfs)
            speaker.play_signal(signal, rate_hz, SELF_CHECK_LABEL)
        references.append(timeline.read(frame.start_sample, frame.n_samples)[0])
        if heard_end_at is None and speaker.played_signals and not speaker.playing:
            heard_end_at = time.monotonic()
        if heard_end_at is not None and time.monotonic() - heard_end_at > LISTEN_AFTER_S:
            break
    if not frames:
        return SelfCheckResult(problems=["self-check: no audio from the mics"]), frames
    mics = np.concatenate([f.samples for f in frames])
    result = analyze_self_check(mics, np.concatenate(references), geometry, rate_hz)
    for problem in result.problems:
        log.warning("%s", problem)
    log.info("self-check: echo delay %s ms, speaker heard at %s° (profile %s°), mic levels %s dBFS",
             _fmt(result.delay_ms), _fmt(result.speaker_azimuth_deg), _fmt(result.expected_azimuth_deg),
             " ".join(f"{v - 90.3:.0f}" for v in result.levels_db))
    return result, frames


def _fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}" if abs(value) >= 10 else f"{value:.1f}"


def check_box(config, room=None) -> SelfCheckResult:
    """``parley self-check``: capture and speaker opened alone, the chirp played once, then closed."""
    from agent.audio import open_capture
    from agent.dsp.echo_reference import CaptureClock, ReferenceTimeline
    from agent.outputs.speaker import Speaker

    rate_hz = config.capture.sample_rate_hz
    clock = CaptureClock(rate_hz)
    timeline = ReferenceTimeline(clock)
    capture = open_capture(config.capture, config.geometry)
    if room is not None:
        capture = room.wrap_capture(capture)
    speaker = Speaker(config.outputs.speaker, sink=room.speaker_sink(config.outputs.speaker) if room else None,
                      reference=timeline, capture_rate_hz=rate_hz)
    try:
        speaker.start()
        capture.start()
        result, _ = run_self_check(config.self_check, capture, speaker, timeline, clock, config.geometry, rate_hz)
        return result
    finally:
        speaker.close()
        capture.close()
