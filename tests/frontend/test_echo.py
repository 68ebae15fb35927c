"""Echo cancellation: the SpeexDSP engine on a simulated box, the reference timeline, the delay
tracker, the duplex decision (gate fallback on a stalled reference) and the self-check."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import fftconvolve

from agent.audio.synth import speak
from agent.dsp.echo import EchoConfig, make_echo_canceller
from agent.dsp.echo_reference import CaptureClock, ReferenceTimeline, measure_lag
from agent.duplex import Duplex
from agent.hardware import load_array_profile
from agent.outputs.config import SpeakerConfig
from agent.selfcheck import analyze_self_check, chirp
from agent.simulation_echo import EchoRoom, speaker_rirs
from parley_common.frames import Frame

RATE = 16000


def db(x) -> float:
    return 10 * np.log10(np.mean(np.asarray(x, dtype=float) ** 2) + 1e-9)


@pytest.fixture(scope="module")
def box():
    geometry = load_array_profile("respeaker-4mic-hat")
    return geometry, speaker_rirs(geometry, rt60_s=0.3) * 0.05


def echo_of(far: np.ndarray, rirs: np.ndarray) -> np.ndarray:
    return np.stack([fftconvolve(far.astype(float), rirs[:, m])[:len(far)] for m in range(rirs.shape[1])], axis=1)


def test_speex_removes_the_echo_per_mic_and_keeps_the_talker(box):
    geometry, rirs = box
    far = np.concatenate([speak("Buenos días a todos, la estación de tren está muy cerca.", voice="es")] * 2)
    n = len(far) // 320 * 320
    far = far[:n]
    echo = echo_of(far, rirs)
    talker = np.zeros((n, 4))
    talk = speak("Where is the train station?")[: n // 3]
    talker[n - len(talk):] = talk[:, None] * 0.1  # speaks over the last third of the playback
    rng = np.random.default_rng(0)
    mics = np.clip(echo + talker + rng.standard_normal(echo.shape) * 5, -32768, 32767).astype(np.int16)
    canceller = make_echo_canceller(EchoConfig(), "speex", 4, RATE)
    out = canceller.process(mics, far.astype(np.int16)).astype(float)
    alone = slice(2 * RATE, n - len(talk))  # echo alone, after 2 s of playback
    for mic in range(4):
        assert db(mics[alone, mic]) - db(out[alone, mic]) > 20  # ERLE, every mic
    double_talk = slice(n - len(talk), n)
    residual = out[double_talk, 0] - talker[double_talk, 0]
    assert db(echo[double_talk, 0]) - db(residual) > 12  # still cancelling while the talker speaks
    assert abs(db(out[double_talk, 0]) - db(talker[double_talk, 0])) < 2.0  # and the talker is intact


def clipping_erle(box, config: EchoConfig, clip: float | None) -> tuple[float, float | None]:
    """ERLE on mic 0 over the last third of ~9 s of playback through a (soft-clipping) speaker."""
    _, rirs = box
    far = np.concatenate([speak(text, voice="es") for text in (
        "Buenos días, bienvenidos a la reunión de hoy.", "La estación de tren está muy cerca de aquí.",
        "Por favor, abran la puerta a nuestros invitados.", "Gracias por venir, hasta la próxima semana.")])
    n = len(far) // 320 * 320
    far = far[:n]
    echo = echo_of(EchoRoom(rirs, clip=clip).loudspeaker(far), rirs)
    mics = np.clip(echo + np.random.default_rng(0).standard_normal(echo.shape) * 3, -32768, 32767).astype(np.int16)
    canceller = make_echo_canceller(config, "speex", 4, RATE)
    out = canceller.process(mics, far.astype(np.int16)).astype(float)
    late = slice(2 * n // 3, n)
    return db(echo[late, 0]) - db(out[late, 0]), canceller.saturation


def test_a_soft_clipping_speaker_is_found_and_cancelled_beyond_what_a_linear_filter_reaches(box):
    linear_db, _ = clipping_erle(box, EchoConfig(saturation_search=False), clip=0.5)
    shaped_db, saturation = clipping_erle(box, EchoConfig(), clip=0.5)
    assert linear_db < 24  # the linear filter is capped by the speaker's harmonics (~20 dB)
    assert shaped_db > 28  # the reference shaped by the estimated saturation (~33 dB)
    assert saturation is not None and 0.4 < saturation / 32768 < 0.6  # the speaker clips at half scale


def test_a_linear_speaker_keeps_a_linear_reference(box):
    searched_db, saturation = clipping_erle(box, EchoConfig(), clip=None)
    plain_db, _ = clipping_erle(box, EchoConfig(saturation_search=False), clip=None)
    assert saturation is None
    assert searched_db == pytest.approx(plain_db, abs=0.5)


def test_the_saturation_search_rests_while_nothing_plays_and_still_finds_the_clipping(box):
    """A box waits long for its first translation: its probes must not run on a silent reference
    (nine mono filters, ~0.08 CPU s per audio s), and the search must still work once it plays."""
    _, rirs = box
    far = np.concatenate([speak(text, voice="es") for text in (
        "Buenos días, bienvenidos a la reunión de hoy.", "La estación de tren está muy cerca de aquí.")])
    idle = np.zeros(5 * RATE)
    far = np.concatenate([idle, far])[:(len(idle) + len(far)) // 320 * 320]
    echo = echo_of(EchoRoom(rirs, clip=0.5).loudspeaker(far), rirs)
    mics = np.clip(echo + np.random.default_rng(0).standard_normal(echo.shape) * 3, -32768, 32767).astype(np.int16)
    canceller = make_echo_canceller(EchoConfig(), "speex", 4, RATE)
    search, calls = canceller._search, []

    class CountingLibrary:
        def __init__(self, lib):
            self.lib = lib

        def __getattr__(self, name):
            real = getattr(self.lib, name)
            if name != "speex_echo_cancellation":
                return real
            return lambda *args: (calls.append(1), real(*args))[1]

    search._lib = CountingLibrary(search._lib)
    canceller.process(mics[:len(idle)], far[:len(idle)].astype(np.int16))
    tail_frames = 200 // 10 + 1
    assert len(calls) <= tail_frames * len(search.candidates)  # only until a whole tail of silence was seen
    canceller.process(mics[len(idle):], far[len(idle):].astype(np.int16))
    assert len(calls) > RATE // 160 * len(search.candidates)  # they run while it plays
    assert canceller.saturation is not None and 0.4 < canceller.saturation / 32768 < 0.6


def test_measure_lag_finds_the_echo_delay_and_refuses_noise():
    rng = np.random.default_rng(1)
    reference = rng.standard_normal(RATE)
    mic = np.concatenate([np.zeros(240), reference])[:RATE] * 0.3 + rng.standard_normal(RATE) * 0.05
    assert measure_lag(reference, mic, -800, 1600) == 240
    assert measure_lag(reference, rng.standard_normal(RATE), -800, 1600) is None


def test_reference_timeline_is_contiguous_within_a_playback_and_says_what_is_missing():
    clock = CaptureClock(RATE)
    clock.observe(0, 100.0)  # capture sample 0 at monotonic 100 s
    timeline = ReferenceTimeline(clock)
    piece = np.arange(1, 321, dtype=np.int16)
    timeline.write(piece, 100.0 + 1.0, buffered_s=0.1)  # leaves the device at capture sample 16000
    timeline.write(piece, 100.0 + 1.0 + 0.013, buffered_s=0.1)  # jitter: still follows the first piece
    got, missing = timeline.read(16000, 640)
    assert np.array_equal(got, np.concatenate([piece, piece])) and missing == 0
    got, missing = timeline.read(16640, 320)  # playing, but not written yet: late
    assert missing == 320 and not got.any()
    timeline.write(piece, 100.0 + 1.5, buffered_s=0.1)  # 0.46 s late: an underrun, laid down anew
    assert timeline.reanchors == 1 and np.array_equal(timeline.read(24000, 320)[0], piece)
    timeline.end_playback()
    assert timeline.read(30000, 320)[1] == 0  # nothing playing: silence is not missing


class Playing:
    playing = True
    barge_ins = 0

    def mic_gate_open(self) -> bool:
        return False

    def barge_in(self) -> None:
        self.barge_ins += 1


def test_a_stalled_reference_falls_back_to_the_gate_and_says_so(caplog):
    clock = CaptureClock(RATE)
    clock.observe(0, 0.0)
    timeline = ReferenceTimeline(clock)
    speaker = Playing()
    changes = []
    duplex = Duplex("speex", EchoConfig(), SpeakerConfig(), timeline, speaker, RATE, 320,
                    on_change=lambda mode, reason: changes.append((mode, reason)))
    duplex.converged = True  # as after the first playback
    timeline.write(np.ones(320, np.int16) * 1000, 0.0, buffered_s=0.1)  # then the speaker thread stops feeding it
    zeros = np.zeros((320, 4), np.int16)
    for i in range(20):  # 400 ms of capture
        frame = Frame(zeros, i * 320, RATE)
        duplex.reference_for(frame)
        duplex.observe(frame, zeros, vad_speech=False)
    assert duplex.stalled and duplex.gate_closed()
    assert changes[-1] == ("half", "reference stalled")
    assert "echo reference stalled" in caplog.text


def test_convergence_needs_a_whole_window_of_real_playback_cancelled(box):
    """Frames the filter was just trained on (the self-check chirp) and one lucky frame among
    uncancelled ones must not open full duplex: both let `make demo` answer itself."""
    _, rirs = box
    clock = CaptureClock(RATE)
    clock.observe(0, 0.0)
    timeline = ReferenceTimeline(clock)
    far = speak("Buenos días a todos, la estación de tren está muy cerca.", voice="es")[:3 * RATE].astype(np.int16)
    timeline.write(far, 0.0, buffered_s=0.1)
    mics = np.clip(echo_of(far, rirs), -32768, 32767).astype(np.int16)
    duplex = Duplex("speex", EchoConfig(), SpeakerConfig(), timeline, Playing(), RATE, 320)
    duplex.canceller = make_echo_canceller(EchoConfig(), "speex", 4, RATE)
    frames = [Frame(mics[s:s + 320], s, RATE) for s in range(0, len(far) // 320 * 320, 320)]
    trained, rest = frames[:RATE // 320], frames[RATE // 320:]
    duplex.train(trained)
    quiet = lambda frame: (frame.samples // 100).astype(np.int16)  # noqa: E731 (40 dB of attenuation)
    for frame in trained:
        duplex.reference_for(frame)
        duplex.observe(frame, quiet(frame), vad_speech=False)
    assert not duplex.converged  # in-sample attenuation proves nothing
    for i, frame in enumerate(rest[:40]):
        duplex.reference_for(frame)
        duplex.observe(frame, quiet(frame) if i % 10 == 9 else frame.samples, vad_speech=False)
    assert not duplex.converged  # a lucky frame in ten
    for frame in rest[40:]:
        duplex.reference_for(frame)
        duplex.observe(frame, quiet(frame), vad_speech=False)
    assert duplex.converged


@pytest.mark.parametrize("error_ms", [60, -60])
def test_a_reference_60_ms_off_is_re_aligned_and_cancelled_within_a_second_of_playback(box, error_ms):
    """The device plays 60 ms later (+) or earlier (-) than the reference says; the tracker must
    move the reference and re-train the filter within 1 s of playback (it took 2-5 s with 1 s
    windows, and a 60 ms late echo was left for the filter to absorb by itself)."""
    _, rirs = box
    far = np.concatenate([speak(text, voice="es") for text in (
        "Buenos días, bienvenidos a la reunión de hoy.", "La estación de tren está muy cerca de aquí.")])
    n = len(far) // 320 * 320
    error = error_ms * RATE // 1000
    played = np.zeros(n + 2 * RATE)
    played[RATE + error:RATE + error + n] = far[:n]  # the reference says the playback starts at 1 s
    mics = np.clip(echo_of(played, rirs) + np.random.default_rng(3).standard_normal((len(played), 4)) * 3,
                   -32768, 32767).astype(np.int16)
    clock = CaptureClock(RATE)
    clock.observe(0, 0.0)
    timeline = ReferenceTimeline(clock)
    timeline.write(far[:n].astype(np.int16), 1.0, buffered_s=0.1)
    duplex = Duplex("speex", EchoConfig(), SpeakerConfig(), timeline, Playing(), RATE, 320)
    duplex.canceller = canceller = make_echo_canceller(EchoConfig(), "speex", 4, RATE)
    moved_at_s, mic, out = None, [], []
    for start in range(0, RATE + n, 320):
        frame = Frame(mics[start:start + 320], start, RATE)
        cancelled = canceller.process(frame.samples, duplex.reference_for(frame))
        duplex.observe(frame, cancelled, vad_speech=False)
        if moved_at_s is None and abs(duplex.delay_ms - error_ms) < 5:
            moved_at_s = (start + 320 - RATE) / RATE
        mic.append(frame.samples[:, 0])
        out.append(cancelled[:, 0])
    assert moved_at_s is not None and moved_at_s < 1.0  # of playback
    after = slice(RATE + int(1.5 * RATE), RATE + 2 * RATE)  # the half second after 1.5 s of playback
    assert db(np.concatenate(mic)[after]) - db(np.concatenate(out)[after]) > 20


def duplex_playing(far: np.ndarray) -> Duplex:
    """A Duplex whose speaker plays ``far`` from capture sample 0 (all of it on the timeline)."""
    clock = CaptureClock(RATE)
    clock.observe(0, 0.0)
    timeline = ReferenceTimeline(clock, capacity_s=len(far) / RATE + 1)
    timeline.write(far.astype(np.int16), 0.0, buffered_s=0.1)
    return Duplex("speex", EchoConfig(), SpeakerConfig(), timeline, Playing(), RATE, 320)


def test_an_echo_path_that_moved_between_playbacks_is_followed_without_closing_the_gate(box):
    """The output device comes back 30 ms slower between two playbacks: during the second the
    reference moves, the filter is re-trained on the playback just heard and, cancelling it at
    once, stays in full duplex (closing the gate then lost a talker's words and their barge-in)."""
    _, rirs = box
    first, second = (np.concatenate([speak(text, voice="es") for text in pair]) for pair in (
        ("Buenos días, bienvenidos a la reunión de hoy.", "La estación de tren está muy cerca de aquí."),
        ("Por favor, abran la puerta a nuestros invitados.", "Gracias por venir, hasta la próxima semana.")))
    gap, shift = RATE, 30 * RATE // 1000
    far = np.concatenate([first, np.zeros(gap), second])
    n = len(far) // 320 * 320
    far, split = far[:n], len(first) + gap // 2
    later = np.concatenate([np.zeros(shift), far])[:n]
    echo = np.concatenate([echo_of(far, rirs)[:split], echo_of(later, rirs)[split:]])
    mics = np.clip(echo + np.random.default_rng(4).standard_normal(echo.shape) * 3, -32768, 32767).astype(np.int16)
    duplex = duplex_playing(far)
    duplex.canceller = canceller = make_echo_canceller(EchoConfig(), "speex", 4, RATE)
    full = []
    for start in range(0, n, 320):
        frame = Frame(mics[start:start + 320], start, RATE)
        duplex.observe(frame, canceller.process(frame.samples, duplex.reference_for(frame)), vad_speech=False)
        full.append(duplex.full_duplex)
    assert abs(duplex.delay_ms - 30) < 5
    assert full[split // 320] and all(full[split // 320:])


class RecordingCanceller:
    """The real SpeexDSP canceller, with what it was fed since its last reset kept."""

    def __init__(self):
        self.engine = make_echo_canceller(EchoConfig(), "speex", 4, RATE)
        self.since_reset: list[tuple[np.ndarray, np.ndarray]] | None = None

    def process(self, mics, reference):
        if self.since_reset is not None:
            self.since_reset.append((mics, np.array(reference)))
        return self.engine.process(mics, reference)

    def reset(self):
        self.since_reset = []
        self.engine.reset()


def test_a_relearn_after_the_echo_path_moved_trains_on_the_start_up_chirp_again_under_the_new_alignment(box):
    """Re-trained on the last 1.5 s alone (a fraction of a second of speech when the move is found
    early), the filter adapted to the next talker and the playback after began with the box's own
    voice as an utterance (bench/echo.py, 'after double talk'); the chirp must be fed again, its
    reference shifted by the move."""
    _, rirs = box
    shift = 60 * RATE // 1000  # the device plays 60 ms later than the self-check said, from the start
    speech = np.concatenate([speak(text, voice="es") for text in ("Buenos días, bienvenidos a la reunión de hoy.",
                                                                  "La estación de tren está muy cerca de aquí.")])
    chirp_at, chirp_signal = 1600, chirp(RATE, 500, -30.0)
    trained_at = chirp_at + len(chirp_signal) + RATE // 2
    far = np.concatenate([np.zeros(chirp_at), chirp_signal, np.zeros(RATE), speech])
    n = len(far) // 320 * 320
    far = far[:n]
    echo = echo_of(np.concatenate([np.zeros(shift), far])[:n], rirs)
    mics = np.clip(echo + np.random.default_rng(5).standard_normal(echo.shape) * 3, -32768, 32767).astype(np.int16)
    duplex = duplex_playing(far)
    duplex.canceller = canceller = RecordingCanceller()
    heard = [Frame(mics[s:s + 320], s, RATE) for s in range(0, trained_at, 320)]
    duplex.train(heard)
    for start in range(trained_at, n, 320):
        frame = Frame(mics[start:start + 320], start, RATE)
        duplex.observe(frame, canceller.process(frame.samples, duplex.reference_for(frame)), vad_speech=False)
        if canceller.since_reset is not None:
            break
    assert canceller.since_reset is not None and abs(duplex.delay_ms - 60) < 5  # moved, and re-learned
    fed = canceller.since_reset[:len(heard)]  # the chirp comes first, then the playback just heard
    assert [id(mics_fed) for mics_fed, _ in fed] == [id(frame.samples) for frame in heard]
    padded = np.concatenate([np.zeros(RATE), far])
    for frame, (_, reference) in zip(heard, fed):
        at = RATE + frame.start_sample - duplex.offset_samples
        assert np.array_equal(reference, padded[at:at + 320].astype(np.int16))  # under the new alignment


def chirp_recording(geometry, rirs, channel_order=None, dead=None):
    signal = np.concatenate([np.zeros(1600), chirp(RATE, 500, -30.0), np.zeros(8000)])
    delay = 64  # 4 ms device + path delay beyond what the reference says
    mics = echo_of(np.concatenate([np.zeros(delay), signal])[: len(signal)], rirs)
    mics += np.random.default_rng(2).standard_normal(mics.shape) * 3
    if dead is not None:
        mics[:, dead] = 0
    if channel_order is not None:
        mics = mics[:, channel_order]
    return np.round(mics).astype(np.int16), signal.astype(np.int16)


def test_self_check_measures_the_delay_and_the_speaker_direction(box):
    geometry, rirs = box
    mics, reference = chirp_recording(geometry, rirs)
    result = analyze_self_check(mics, reference, geometry, RATE)
    assert result.problems == [] and result.channel_fix is None
    direct_ms = 1000 * np.median(np.argmax(np.abs(rirs), axis=0)) / RATE  # the simulated path's own delay
    assert abs(result.delay_ms - (4.0 + direct_ms)) < 0.3  # 4 ms of device delay plus the path
    assert result.speaker_azimuth_deg is not None and min(result.speaker_azimuth_deg, 360 - result.speaker_azimuth_deg) < 20


@pytest.mark.parametrize("shift", [1, 2, 3])
def test_self_check_detects_a_rotated_channel_order_and_its_fix_restores_it(box, shift):
    geometry, rirs = box
    order = [(i + shift) % 4 for i in range(4)]  # stream channel i carries mic i + shift
    mics, reference = chirp_recording(geometry, rirs, channel_order=order)
    result = analyze_self_check(mics, reference, geometry, RATE)
    assert result.rotation == shift and "rotated" in result.problems[0]
    fixed, _ = chirp_recording(geometry, rirs)
    assert np.array_equal(mics[:, result.channel_fix], fixed)


def test_self_check_reports_a_dead_mic(box):
    geometry, rirs = box
    mics, reference = chirp_recording(geometry, rirs, dead=2)
    result = analyze_self_check(mics, reference, geometry, RATE)
    assert result.dead_mics == [2] and any("dead" in p for p in result.problems)


def test_a_speaker_the_mics_do_not_hear_is_no_problem(box):
    geometry, rirs = box
    _, reference = chirp_recording(geometry, rirs)
    room = np.round(np.random.default_rng(3).standard_normal((len(reference), 4)) * 30).astype(np.int16)
    result = analyze_self_check(room, reference, geometry, RATE)
    assert not result.heard and result.problems == [] and result.delay_ms is None


def test_echo_cancellation_off_is_read_as_written_not_as_yaml_false():
    from agent.config.schema import load_agent_config

    config = load_agent_config(None, "frontend: {echo_cancellation: off}\n")
    assert config.frontend.echo_cancellation == "off"
