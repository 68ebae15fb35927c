"""Full duplex on simulated rooms: echo cancellation vs the half-duplex gate.

The box (ReSpeaker 4-mic HAT profile, its loudspeaker at the profile's ``speaker_m``, 7.6 cm from
the array centre) plays espeak-ng Spanish translations in a 5 x 4 x 2.8 m room (RT60 0.3 / 0.6 s,
``agent.simulation``); a talker 1.5 m away (the shared ARCTIC recordings, else espeak-ng English)
says one sentence in silence and then the others each starting while a translation plays. Real
noise 20 dB under the talker. The echo is ~16 dB above the talker at mic 0. The speaker is linear or
mildly clipping (tanh at half scale); the device plays up to 60 ms later (+) or earlier (-) than the
reference says (the self-check measured it once; the tracker must follow).

Every frame goes through the real front end (echo canceller per mic, DOA, MVDR, AGC, Silero VAD,
segmenter) and the real ``Duplex`` (gate / full duplex / barge-in); playback stops at a barge-in
(``barge_in: stop``), so what the room hears changes as it would. Measured:

- ERLE on the echo alone (the canceller on the echo without talker or noise, same playback):
  after convergence (from 1 s of playback on), and the time until a 0.5 s window first reaches 20 dB;
- ERLE in double talk (echo over the residual echo, exact: the linear filter's output minus the
  near-end is its residual) and the level of the output vs the near-end in those frames;
- talker WER on the utterances the segmenter sent (Whisper tiny.en through the gateway's
  recognizer, beam 5 as it decodes finals) for the sentences said over playback: cancellation vs
  the gate vs the same scene with no playback;
- self-utterances (a segment with no talker in it whose echo is within 10 dB of the rest of the
  sound: the box's voice; the others are the VAD firing on the room's noise, counted apart),
  barge-in reaction (talker onset -> stop),
  false barge-ins per minute of playback-only time;
- front-end CPU (RTF, one core) at 4 and 6 mics, cancellation on vs off, side by side.

    python bench/echo.py --quick     # RT60 0.3, linear speaker, delay errors 0 and 30 ms, 4 talker sentences
    python bench/echo.py             # RT60 0.3 / 0.6, linear / clipping, delay errors 0 / +60 / -60 ms, 6 sentences
    python bench/echo.py --playback-minutes 10 [--rt60 0.3] [--speaker linear]   # no talker, no Whisper
    python bench/echo.py --cpu       # the CPU table alone: playing vs idle, 4 / 6 mics, cancellation on / off

``--playback-minutes`` plays that much of the box's speech (the Spanish sentences in random order,
0.4-2.5 s pauses) into the room's noise with nobody talking, and counts every barge-in the duplex
asks for (the playback is not stopped, so each false trigger is counted on its own) and every
segment sent to the uplink (during playback or its tail: the box's own voice; otherwise: noise).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO)]

from agent.audio.synth import speak  # noqa: E402
from agent.dsp.echo import EchoConfig  # noqa: E402
from agent.dsp.echo_reference import CaptureClock, ReferenceTimeline  # noqa: E402
from agent.duplex import Duplex  # noqa: E402
from agent.events import SpeechChunk, SpeechEnded, SpeechStarted  # noqa: E402
from agent.frontend import FrontEnd, FrontendConfig  # noqa: E402
from agent.hardware import load_array_profile  # noqa: E402
from agent.outputs.config import SpeakerConfig  # noqa: E402
from agent.selfcheck import SelfCheckConfig, chirp  # noqa: E402
from agent.simulation import simulate_scene  # noqa: E402
from agent.simulation_echo import EchoRoom, speaker_rirs  # noqa: E402
from parley_common.frames import Frame  # noqa: E402
from tests.support.speech import english_samples, word_errors  # noqa: E402

RATE = 16000
FRAME = 320
CHIRP_AT = RATE // 10
LATENCY = 1600  # the device buffer: the reference is written this far ahead
ECHO_OVER_TALKER_DB = 16.0
FAR_END = ("Buenos días, bienvenidos a la reunión de hoy.", "La estación de tren está muy cerca de aquí.",
           "Por favor, abran la puerta a nuestros invitados.", "Gracias por venir, hasta la próxima semana.",
           "El tren sale a las nueve de la mañana.", "Hoy hace buen tiempo en la ciudad.")
MORE_FAR_END = ("¿Dónde está la oficina del director?", "Necesitamos tres copias del informe antes del lunes.",
                "Mi hermana vive en Barcelona desde hace diez años.", "¿Podría repetir la pregunta, por favor?",
                "El museo abre a las diez y cierra a las seis.", "No entiendo lo que quiere decir.",
                "Vamos a empezar con el primer punto del orden del día.", "La cena está lista, sentaos a la mesa.",
                "¿Cuánto cuesta un billete de ida y vuelta?", "El proyecto terminará a finales de marzo.",
                "Sí, claro.", "Muchas gracias, muy amable.", "Esperamos noticias de la fábrica esta tarde.",
                "Los niños juegan en el parque después de la escuela.")
BOX_VOICE_MARGIN_DB = 10.0  # a segment whose echo is within this of the rest of the sound is the box's voice


class BenchSpeaker:
    """The speaker as ``Duplex`` sees it, driven by the bench's schedule."""

    def __init__(self, tail_samples: int, react: bool = True):
        self.react = react
        self.playing = False
        self.stop_requested = False
        self.barge_ins = 0
        self.requests = 0  # every barge-in the duplex asked for while playing, reacted to or not
        self._gate_until = 0
        self._tail = tail_samples
        self.now = 0

    def mic_gate_open(self) -> bool:
        return not self.playing and self.now >= self._gate_until

    def ended(self) -> None:
        self.playing = False
        self._gate_until = self.now + self._tail

    def barge_in(self) -> None:
        self.requests += self.playing
        if self.react and self.playing and not self.stop_requested:
            self.barge_ins += 1
            self.stop_requested = True


def build_timeline(talkers, far_end, first_alone_s=1.6):
    """Far-end playbacks and talker sentences on one timeline: talker 0 alone (before any playback),
    then playback k, with talker k starting 0.8 s into it; returns (playbacks, talker spans, length)."""
    playbacks, spans = [], []
    cursor = int(first_alone_s * RATE)
    spans.append((cursor, cursor + len(talkers[0])))
    cursor += len(talkers[0]) + RATE
    for k, talker in enumerate(talkers[1:]):
        far = far_end[k % len(far_end)]
        playbacks.append((cursor, far))
        onset = cursor + int(0.8 * RATE)
        spans.append((onset, onset + len(talker)))
        cursor = max(cursor + len(far), onset + len(talker)) + int(1.5 * RATE)
    return playbacks, spans, cursor + RATE


class BenchBox:
    """The front end and the duplex wired as the daemon wires them, a frame at a time: what is heard
    until ``train_at`` (the self-check's chirp) is kept, then the canceller is trained on it, as
    ``Agent._self_check`` does."""

    def __init__(self, geometry, config: FrontendConfig, speaker: BenchSpeaker, train_at: int):
        self.frontend = FrontEnd(config, geometry, RATE)
        clock = CaptureClock(RATE)
        clock.observe(0, 0.0)
        self.timeline = ReferenceTimeline(clock, capacity_s=8.0)
        self.duplex = Duplex(config.echo_cancellation, config.echo, SpeakerConfig(), self.timeline, speaker, RATE, FRAME)
        self.duplex.canceller = self.frontend.echo_canceller
        self.duplex.set_delay(0.0)  # what the self-check measures on this simulated device
        self.segments: list[dict] = []
        self._train_at = train_at
        self._heard: list[Frame] = []
        self._current = None

    def step(self, frame: Frame) -> None:
        if frame.start_sample < self._train_at:
            self._heard.append(frame)
        elif self._heard:
            self.duplex.train(self._heard)
            self._heard = []
        reference = self.duplex.reference_for(frame)
        events = self.frontend.process(frame, muted=self.duplex.gate_closed(), reference=reference)
        self.duplex.observe(frame, self.frontend.last_cancelled, self.frontend.is_speech)
        self._current = follow_segments(events, self.segments, self._current)

    def finish(self) -> list[dict]:
        self._current = follow_segments(self.frontend.flush(), self.segments, self._current)
        return self.segments


def self_check_chirp() -> tuple[np.ndarray, int]:
    """The chirp played at CHIRP_AT, and the sample from which the canceller is trained on it."""
    chirp_signal = chirp(RATE, SelfCheckConfig().duration_ms, SelfCheckConfig().level_dbfs)
    return chirp_signal, CHIRP_AT + len(chirp_signal) + RATE // 2


def run_box(geometry, near, playbacks, room: EchoRoom, config: FrontendConfig, delay_error: int, echo_alone=False,
            react=True):
    """One pass of the box over the timeline. Returns segments, barge-in times, playback-only seconds,
    and the echo and the canceller's output at mic 0."""
    speaker = BenchSpeaker(int(0.3 * RATE), react)
    chirp_signal, train_at = self_check_chirp()
    box = BenchBox(geometry, config, speaker, train_at)
    schedule = {start: far for start, far in playbacks}
    schedule[CHIRP_AT] = chirp_signal  # the self-check at start: the canceller trains on it
    dither = np.random.default_rng(1)
    barge_ins = []
    playing, play_pos, play_only_frames = None, 0, 0
    echo0, out0 = [], []
    for s in range(0, len(near) - FRAME + 1, FRAME):
        speaker.now = s
        for start in [t for t in schedule if s <= t < s + FRAME]:
            playing, play_pos, speaker.playing, speaker.stop_requested = schedule.pop(start), 0, True, False
        if playing is not None:
            playing, play_pos = play_frame(playing, play_pos, s, speaker, box.timeline, room, delay_error)
        echo = room.echo(s, FRAME)
        mics = (dither.standard_normal((FRAME, geometry.n_mics)) * 3 if echo_alone else near[s:s + FRAME].astype(float)) \
            + (echo if echo is not None else 0.0)
        frame = Frame(np.clip(np.round(mics), -32768, 32767).astype(np.int16), s, RATE)
        was_stopping = speaker.stop_requested
        box.step(frame)
        if speaker.stop_requested and not was_stopping:
            barge_ins.append(s)
        play_only_frames += speaker.playing
        cancelled = box.frontend.last_cancelled
        echo0.append(echo[:, 0] if echo is not None else np.zeros(FRAME))
        out0.append((cancelled if cancelled is not None else frame.samples)[:, 0])
    return box.finish(), barge_ins, play_only_frames * FRAME / RATE, (np.concatenate(echo0), np.concatenate(out0))


def play_frame(playing, play_pos, s, speaker, timeline, room, delay_error):
    """The device, one frame: LATENCY samples ahead of what the room hears, the reference stamped so."""
    if not speaker.stop_requested:
        piece = playing[play_pos:play_pos + FRAME]
        timeline.write(piece, (s + LATENCY) / RATE, LATENCY / RATE)
        room.emit(s + LATENCY + delay_error, piece)
        play_pos += FRAME
    if speaker.stop_requested or play_pos >= len(playing):
        timeline.end_playback()
        speaker.ended()
        return None, 0
    return playing, play_pos


def follow_segments(events, segments, current):
    for event in events:
        if isinstance(event, SpeechStarted):
            current = {"start": event.start_sample, "audio": []}
            segments.append(current)
        elif isinstance(event, SpeechChunk) and current is not None:
            current["audio"].append(event.frame.samples[:, 0])
        elif isinstance(event, SpeechEnded) and current is not None:
            current["end"] = event.end_sample
            current = None
    return current


def erle_figures(echo: np.ndarray, out: np.ndarray, playbacks) -> dict:
    """ERLE (mic 0) over playback from 1 s on, and the time until a 0.5 s window first reaches 20 dB."""
    db = lambda x: 10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-9)  # noqa: E731
    converged, first_20_s, heard_s = [], None, 0.0
    for start, far in playbacks:
        for a in range(start, min(len(out), start + len(far)) - RATE // 2, RATE // 2):
            window = slice(a, a + RATE // 2)
            erle = db(echo[window]) - db(out[window])
            if first_20_s is None and erle >= 20:
                first_20_s = heard_s + (a - start) / RATE
            if heard_s + (a - start) / RATE >= 1.0:
                converged.append(erle)
        heard_s += len(far) / RATE
    return {"erle_db": float(np.median(converged)) if converged else None, "converge_s": first_20_s}


def double_talk(echo0, out0, near0, playbacks, spans) -> dict:
    """In frames where both play: ERLE (echo over the residual = output - near end) and output vs near end."""
    both = np.zeros(len(out0), bool)
    for start, far in playbacks:
        both[start:start + len(far)] = True
    talk = np.zeros(len(out0), bool)
    for a, b in spans:
        talk[a:b] = True
    mask = both & talk[:len(both)]
    if not mask.any():
        return {"erle_dt_db": None, "near_change_db": None}
    db = lambda x: 10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-9)  # noqa: E731
    near = near0[:len(out0)].astype(float)
    residual = out0.astype(float) - near
    return {"erle_dt_db": db(echo0[mask]) - db(residual[mask]), "near_change_db": db(out0[mask]) - db(near[mask])}


def is_box_voice(segment, echo0: np.ndarray, rest0: np.ndarray) -> bool:
    """The simulation knows the echo at mic 0: a segment is the box's own voice if its echo is no
    more than BOX_VOICE_MARGIN_DB under everything else the mic heard in it; below that the VAD fired
    on the room (a noise segment, which the box makes with or without playing)."""
    a = segment["start"]
    b = segment.get("end", a + FRAME)
    db = lambda x: 10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2) + 1e-9)  # noqa: E731
    return db(echo0[a:b]) > db(rest0[a:b]) - BOX_VOICE_MARGIN_DB


def split_own(segments, echo0, rest0) -> tuple[list, list]:
    """(the box's own voice, noise segments) among segments with no talker in them."""
    own = [seg for seg in segments if echo0 is not None and is_box_voice(seg, echo0, rest0)]
    return own, [seg for seg in segments if seg not in own]


def overlap(a0, a1, b0, b1) -> int:
    return max(0, min(a1, b1) - max(a0, b0))


def score(segments, barge_ins, spans, texts, judge, echo0=None, near0=None) -> dict:
    """WER of the sentences said over playback (on what the segmenter sent), self-utterances (the
    box's voice, judged by ``echo0`` against ``near0``; None: no playback), barge-ins."""
    errors = words = 0
    hypotheses = []
    for (a, b), text in zip(spans[1:], texts[1:]):
        audio = [np.concatenate(seg["audio"]) for seg in segments
                 if seg["audio"] and overlap(seg["start"], seg.get("end", seg["start"]), a, b + RATE // 2)]
        if judge is None:  # --no-wer
            continue
        hypothesis = judge.decode(np.concatenate(audio)) if audio else ""
        e, n = word_errors(text, spell_numbers(hypothesis))
        errors, words = errors + e, words + n
        hypotheses.append(hypothesis)
    own, noise = split_own([seg for seg in segments if not any(
        overlap(seg["start"], seg.get("end", seg["start"]), a, b + RATE // 2) for a, b in spans)], echo0, near0)
    reactions, false = [], 0
    for t in barge_ins:
        onsets = [a for a, _ in spans if a - RATE // 10 <= t <= a + RATE]
        if onsets:
            reactions.append(1000 * (t - onsets[0]) / RATE)
        else:
            false += 1
    return {"wer": errors / words if words else None, "words": words, "self_utterances": len(own), "noise_segments": len(noise),
            "barge_in_ms": float(np.median(reactions)) if reactions else None, "barge_ins_caught": len(reactions),
            "false_barge_ins": false, "hypotheses": hypotheses, "sentences": len(spans) - 1}


def spell_numbers(text: str) -> str:
    from bench.array_wer import spell_numbers as spell

    return spell(text)


def trimmed(signal: np.ndarray) -> np.ndarray:
    """The recording without its leading and trailing silence, so onsets (barge-in timing) are the speech's."""
    loud = np.flatnonzero(np.abs(signal) > 0.05 * np.max(np.abs(signal)))
    margin = RATE // 50
    return signal[max(0, loud[0] - margin):loud[-1] + margin]


def make_condition(geometry, rirs, talkers, far_end, clip, seed, shared, talker_azimuth_deg=60.0, talker_distance_m=1.5):
    """The near-end scene and the echo room, levels set as in the module docstring."""
    talkers = [(text, trimmed(signal)) for text, signal in talkers]
    playbacks, spans, length = build_timeline([t for _, t in talkers], far_end)
    track = np.zeros(length)
    for (a, b), (_, signal) in zip(spans, talkers):
        track[a:b] = signal
    scene = simulate_scene(geometry, [track], talker_azimuth_deg=talker_azimuth_deg,
                           distance_m=talker_distance_m, rt60_s=rirs[1], noise="diffuse",
                           snr_db=20.0, seed=seed, noise_dir=shared / "noise" if shared else None, gap_s=0.0)
    near = scene.mixture[:length].astype(float) * 0.16
    noise = scene.noise_image[:length] * 0.16
    talker_db = 10 * np.log10(np.mean(scene.speech_image[:length][track != 0, 0] ** 2) * 0.16 ** 2)
    far_all = np.concatenate([far for _, far in playbacks]).astype(float)
    echo_db = 10 * np.log10(np.mean(np.convolve(far_all, rirs[0][:, 0])[:len(far_all)] ** 2))
    gain = 10 ** ((talker_db + ECHO_OVER_TALKER_DB - echo_db) / 20)
    return near, noise, playbacks, spans, lambda delay_error_ms: EchoRoom(rirs[0], gain=gain, clip=clip)


CPU_ENGINES = {  # what the box runs: nothing to cancel, the steady state, the first loud playback's search
    "off": replace(FrontendConfig(), echo_cancellation="off"),
    "speex": replace(FrontendConfig(), echo=replace(EchoConfig(), saturation_search=False)),
    "speex+search": FrontendConfig(),
}


def cpu_rtf(n_mics_profile: str, engine: str, playing: bool = True, seconds: float = 10.0) -> float:
    """Front-end CPU seconds per second of audio after a 1 s warm-up; ``playing``: a far end all
    along, else the silent reference the duplex reads between playbacks."""
    geometry = load_array_profile(n_mics_profile)
    rng = np.random.default_rng(0)
    mics = (rng.standard_normal((int((seconds + 1) * RATE), geometry.n_mics)) * 300).astype(np.int16)
    far = (rng.standard_normal(len(mics)) * 2000).astype(np.int16) if playing else np.zeros(len(mics), np.int16)
    frontend = FrontEnd(CPU_ENGINES[engine], geometry, RATE)
    started = 0.0
    for s in range(0, len(mics) - FRAME + 1, FRAME):
        if s == RATE:
            started = time.process_time()
        frontend.process(Frame(mics[s:s + FRAME], s, RATE), reference=far[s:s + FRAME] if engine != "off" else None)
    return (time.process_time() - started) / seconds


def cpu_table() -> dict:
    """Every configuration in one process, interleaved (a load change hits them all alike). The
    search ends within the first loud playback (at most 30 s of it); "speex" is every playback after."""
    runs = {f"{profile}/{engine}/{'playing' if playing else 'idle'}": [] for profile in ("respeaker-4mic-hat", "respeaker-6mic-hat")
            for engine in CPU_ENGINES for playing in ((False,) if engine == "off" else (True, False))}
    for _ in range(3):
        for key in runs:
            profile, engine, state = key.split("/")
            runs[key].append(cpu_rtf(profile, engine, state == "playing", seconds=5.0))
    return {key: float(np.median(values)) for key, values in runs.items()}


def playback_soak(geometry, rirs, clip, minutes: float, far_end, noise, gain, seed: int) -> dict:
    """``minutes`` of the box's speech, nobody talking: false barge-ins and self-utterances."""
    rng = np.random.default_rng(seed)
    playbacks, cursor, played = [], CHIRP_AT + 2 * RATE, 0
    while played < minutes * 60 * RATE:
        far = far_end[int(rng.integers(len(far_end)))]
        playbacks.append((cursor, far))
        played += len(far)
        cursor += len(far) + int(rng.uniform(0.4, 2.5) * RATE)
    length = (cursor + RATE) // FRAME * FRAME
    room = EchoRoom(rirs, gain=gain, clip=clip)
    chirp_signal, train_at = self_check_chirp()
    drive = np.zeros(length)
    for start, far in [(CHIRP_AT, chirp_signal)] + playbacks:
        drive[start:start + len(far)] = far
    from scipy.signal import fftconvolve

    played_sound = room.loudspeaker(drive)  # the playback never stops (no reaction): the echo is known ahead
    echo = np.stack([fftconvolve(played_sound, rirs[:, m])[:length] for m in range(geometry.n_mics)], axis=1)
    mics = np.clip(np.round(np.resize(noise, (length, geometry.n_mics)) + echo), -32768, 32767).astype(np.int16)
    speaker = BenchSpeaker(int(0.3 * RATE), react=False)
    box = BenchBox(geometry, FrontendConfig(), speaker, train_at)
    spans = [(CHIRP_AT, chirp_signal)] + playbacks
    index, play_frames, full_frames, barge_in_s = 0, 0, 0, []
    for s in range(0, length, FRAME):
        speaker.now = s
        while index < len(spans) and spans[index][0] + len(spans[index][1]) <= s + LATENCY:
            index += 1
        if index < len(spans) and spans[index][0] <= s + LATENCY:  # the device takes this piece now
            speaker.playing = True
            box.timeline.write(drive[s + LATENCY:s + LATENCY + FRAME].astype(np.int16), (s + LATENCY) / RATE, LATENCY / RATE)
        elif speaker.playing and s >= spans[index - 1][0] + len(spans[index - 1][1]):
            box.timeline.end_playback()
            speaker.ended()
        requests = speaker.requests
        box.step(Frame(mics[s:s + FRAME], s, RATE))
        if speaker.requests > requests:
            barge_in_s.append(round(s / RATE, 2))
        play_frames += speaker.playing and s >= train_at
        full_frames += speaker.playing and s >= train_at and box.duplex.full_duplex  # else the gate, deaf anyway
    segments = box.finish()
    own, _ = split_own(segments, echo[:, 0], mics[:, 0].astype(float) - echo[:, 0])
    playback_min = play_frames * FRAME / RATE / 60
    return {"playback_min": playback_min, "full_duplex_share": full_frames / max(1, play_frames), "false_barge_ins": speaker.requests,
            "false_barge_ins_per_10min": 10 * speaker.requests / playback_min, "self_utterances": len(own),
            "self_utterances_per_10min": 10 * len(own) / playback_min, "noise_segments": len(segments) - len(own),
            "false_barge_in_at_s": barge_in_s, "self_utterance_at_s": [round(seg["start"] / RATE, 2) for seg in own],
            "first_playback_s": round(playbacks[0][0] / RATE, 2), "playbacks": len(playbacks)}


def run_playback_soak(args, shared) -> int:
    geometry = load_array_profile("respeaker-4mic-hat")
    far_end = [speak(text, voice="es") for text in FAR_END + MORE_FAR_END]
    talkers = english_samples(shared, limit=4)
    rows = []
    print(f"{'RT60':>4} {'speaker':>8} | {'min':>5} {'false barge-ins':>15} {'/10 min':>7} | {'self-utt':>8} {'/10 min':>7} {'noise seg':>9} {'full dx':>7}")
    for rt60 in tuple(args.rt60 or (0.3, 0.6)):
        rirs = speaker_rirs(geometry, rt60)
        for name in tuple(args.speaker or ("linear", "clipping")):
            clip = None if name == "linear" else 0.5
            _, noise, _, _, room_for = make_condition(geometry, (rirs, rt60), talkers, far_end[:len(FAR_END)], clip,
                                                      seed=int(rt60 * 10) + args.seed, shared=shared)
            row = playback_soak(geometry, rirs, clip, args.playback_minutes, far_end, noise, room_for(0.0).gain,
                                seed=int(rt60 * 10) + args.seed)
            row.update(rt60_s=rt60, speaker=name, seed=args.seed)
            rows.append(row)
            print(f"{rt60:>4} {name:>8} | {row['playback_min']:>5.1f} {row['false_barge_ins']:>15} "
                  f"{row['false_barge_ins_per_10min']:>7.2f} | {row['self_utterances']:>8} "
                  f"{row['self_utterances_per_10min']:>7.2f} {row['noise_segments']:>9} {row['full_duplex_share']:>7.0%}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"when": datetime.now(timezone.utc).isoformat(), "playback_soak": rows}, indent=1))
    print(f"wrote {args.out}")
    return 0


def after_double_talk(geometry, near, noise, playbacks, spans, room, config, error) -> dict:
    """The talker over every other playback only: the playbacks after double talk have nobody
    talking, so every barge-in and every segment of the box's voice in them is false (the filter has
    just adapted through a talker; the talker-free run never tests that)."""
    talker = near.astype(np.float64) - noise
    kept = [span for i, span in enumerate(spans) if i % 2 == 1 or i == 0]
    heard = np.zeros(len(near), bool)
    for a, b in kept:
        heard[a:b + RATE // 2] = True
    mixed = np.clip(np.round(noise + talker * heard[:, None]), -32768, 32767).astype(np.int16)
    segments, barge_ins, _, (echo0, _) = run_box(geometry, mixed, playbacks, room, config, error)
    alone = [seg for seg in segments if not any(overlap(seg["start"], seg.get("end", seg["start"]), a, b + RATE // 2)
                                                for a, b in kept)]
    own, _ = split_own(alone, echo0, mixed[:, 0])
    false = [t for t in barge_ins if not any(a - RATE // 10 <= t <= a + RATE for a, _ in kept)]
    return {"free_playbacks": len(playbacks) // 2, "self_utterances": len(own), "false_barge_ins": len(false)}


def run_cell(geometry, condition, delay_error_ms, texts, judge) -> dict:
    near, noise, playbacks, spans, room_for = condition
    error = int(round(delay_error_ms * RATE / 1000))
    cell = {"delay_error_ms": delay_error_ms}
    speex, gate = FrontendConfig(), replace(FrontendConfig(), echo_cancellation="off")
    _, _, _, (echo0, out0) = run_box(geometry, near, playbacks, room_for(delay_error_ms), speex, error,
                                     echo_alone=True, react=False)
    cell.update(erle_figures(echo0, out0, playbacks))
    alone_segments, alone_barge_ins, alone_play_s, (echo0, _) = run_box(
        geometry, noise, playbacks, room_for(delay_error_ms), speex, error)  # the room's noise, nobody talking
    cell["false_barge_ins_per_min"] = 60 * len(alone_barge_ins) / alone_play_s
    own, noise_segments = split_own(alone_segments, echo0, noise[:, 0])
    cell["self_utterances_echo_alone"], cell["noise_segments_echo_alone"] = len(own), len(noise_segments)
    cell["after_double_talk"] = after_double_talk(geometry, near, noise, playbacks, spans, room_for(delay_error_ms), speex, error)
    for name, config in (("cancel", speex), ("gate", gate)):
        segments, barge_ins, _, (echo0, out0) = run_box(geometry, near, playbacks, room_for(delay_error_ms), config, error)
        cell[name] = score(segments, barge_ins, spans, texts, judge, echo0, near[:, 0])
        if name == "cancel":
            cell.update(double_talk(echo0, out0, near[:, 0], playbacks, spans))
    return cell


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rt60", type=float, nargs="+", help="override the grid's RT60s")
    parser.add_argument("--speaker", choices=("linear", "clipping"), nargs="+", help="override the grid's speakers")
    parser.add_argument("--errors-ms", type=float, nargs="+", help="override the grid's reference delay errors")
    parser.add_argument("--model", default="tiny.en")
    parser.add_argument("--beam", type=int, default=5, help="beam size of every decode (the gateway's finals: 5)")
    parser.add_argument("--shared-data", type=Path, default=next(
        (p for p in (REPO.parent / "shared" / "data", REPO.parent.parent / "shared" / "data") if p.is_dir()),
        REPO.parent / "shared" / "data"))
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "echo.json")
    parser.add_argument("--playback-minutes", type=float, help="only the talker-free playback soak, this long per cell")
    parser.add_argument("--cpu", action="store_true", help="only the CPU table")
    parser.add_argument("--seed", type=int, default=0, help="--playback-minutes: another order of sentences and noise")
    parser.add_argument("--no-wer", action="store_true", help="no Whisper: barge-ins and self-utterances only")
    parser.add_argument("--talker-azimuth", type=float, default=60.0, help="degrees; the loudspeaker is at 0")
    parser.add_argument("--talker-distance", type=float, default=1.5, help="metres from the array centre")
    args = parser.parse_args()
    shared_dir = args.shared_data if args.shared_data.is_dir() else None
    if args.playback_minutes:
        return run_playback_soak(args, shared_dir)
    if args.cpu:
        cpu_only = cpu_table()
        print("front-end RTF, one core: " + ", ".join(f"{k} {v:.3f}" for k, v in cpu_only.items()))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"when": datetime.now(timezone.utc).isoformat(), "cpu_rtf": cpu_only}, indent=1))
        return 0
    from bench.array_wer import Judge

    started = time.perf_counter()
    rt60s, clips = ((0.3,), (None,)) if args.quick else ((0.3, 0.6), (None, 0.5))
    errors_ms = (0.0, 30.0, -30.0) if args.quick else (0.0, 60.0, -60.0)
    rt60s = tuple(args.rt60 or rt60s)
    clips = tuple(None if name == "linear" else 0.5 for name in args.speaker) if args.speaker else clips
    errors_ms = tuple(args.errors_ms or errors_ms)
    talkers = english_samples(shared_dir, limit=4 if args.quick else 7)
    texts = [text for text, _ in talkers]
    far_end = [speak(text, voice="es") for text in FAR_END]
    geometry = load_array_profile("respeaker-4mic-hat")
    judge = None if args.no_wer else Judge(args.model, beam_size=args.beam)
    cells, silence = [], {}
    print(f"{'RT60':>4} {'speaker':>8} {'err ms':>6} | {'ERLE':>5} {'conv s':>6} {'ERLE dt':>7} {'near dB':>7} | "
          f"{'WER canc':>8} {'gate':>5} {'silence':>7} | {'self':>4} {'noise':>5} {'barge ms':>8} {'caught':>6} {'false/min':>9} | "
          f"{'after double talk: self':>23} {'false':>5}")
    try:
        for rt60 in rt60s:
            rirs = (speaker_rirs(geometry, rt60), rt60)
            for clip in clips:
                condition = make_condition(geometry, rirs, talkers, far_end, clip, seed=int(rt60 * 10), shared=shared_dir,
                                           talker_azimuth_deg=args.talker_azimuth, talker_distance_m=args.talker_distance)
                if rt60 not in silence:
                    near, _, _, spans, room_for = condition
                    segments, _, _, _ = run_box(geometry, near, [], room_for(0.0), FrontendConfig(), 0)
                    silence[rt60] = score(segments, [], spans, texts, judge)
                for error_ms in errors_ms:
                    cell = run_cell(geometry, condition, error_ms, texts, judge)
                    cell.update(rt60_s=rt60, speaker="clipping" if clip else "linear", silence=silence[rt60])
                    cells.append(cell)
                    print(table_row(cell), flush=True)
    finally:
        if judge is not None:
            judge.close()
    cpu = cpu_table()
    print("front-end RTF, one core: " + ", ".join(f"{k} {v:.3f}" for k, v in cpu.items()))
    runtime = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"when": datetime.now(timezone.utc).isoformat(), "quick": args.quick, "model": args.model, "beam_size": args.beam,
                                    "runtime_s": runtime, "cells": cells, "cpu_rtf": cpu}, indent=1, ensure_ascii=False))
    print(f"{runtime:.0f} s; wrote {args.out}")
    return 0


def _f(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table_row(c: dict) -> str:
    k = c["cancel"]
    return (f"{c['rt60_s']:>4} {c['speaker']:>8} {c['delay_error_ms']:>6.0f} | {_f(c['erle_db'], '5.1f')} "
            f"{_f(c['converge_s'], '6.2f')} {_f(c['erle_dt_db'], '7.1f')} {_f(c['near_change_db'], '7.1f')} | "
            f"{_f(k['wer'], '8.2f')} {_f(c['gate']['wer'], '5.2f')} {_f(c['silence']['wer'], '7.2f')} | "
            f"{k['self_utterances'] + c['self_utterances_echo_alone']:>4} "
            f"{k['noise_segments'] + c['noise_segments_echo_alone']:>5} {_f(k['barge_in_ms'], '8.0f')} "
            f"{k['barge_ins_caught']:>3}/{k['sentences']:<2} {c['false_barge_ins_per_min']:>9.1f} | "
            f"{c['after_double_talk']['self_utterances']:>23} {c['after_double_talk']['false_barge_ins']:>5}")


if __name__ == "__main__":
    sys.exit(main())
