"""``parley demo``: the whole chain on one machine, no sound card and no cloud account.

It makes a scene (English sentences spoken from a known direction in a simulated reverberant room
with a noise source, recorded by a ReSpeaker 4-mic array), starts the offline gateway on loopback,
and runs the real agent on that recording: capture -> DOA/beamformer -> VAD/segmenter -> uplink ->
console, transcript and a WAV "speaker" whose sound also reaches the simulated mics (the box hears
itself, as a real one does: the echo canceller removes it, so a talker who answers while a
translation plays is heard). ``--conversation``: an English talker at 60° and a
Spanish talker at 240° take turns; each seat is a party, so each line is recognized in its
talker's language and translated (and spoken) into the other's.
"""

from __future__ import annotations

import json
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.audio.synth import speak
from agent.hardware import load_array_profile
from parley_common.wer import word_errors



@dataclass(frozen=True)
class Line:
    """One thing said in the scene: the text, the espeak-ng voice that says it, and from where."""

    text: str
    voice: str
    azimuth_deg: float
    party: str | None = None


DEMO_SENTENCES = (
    "Good morning everyone.",
    "Where is the train station?",
    "Please open the door for our guests.",
)
DEMO_PROFILE = "respeaker-4mic-hat"
DEMO_AZIMUTH_DEG = 60.0
DEMO_TARGETS = ("es", "ca")
# Pauses as people leave them; the next talker may start while the box still speaks (full duplex:
# the echo canceller keeps the mic open; the self-check chirp at start trains it).
DEMO_GAP_S = 4.5
# The box's loudspeaker 6 dB below a talker's voice; 7.6 cm from the mics its echo is still ~16 dB above
# a talker 1.5 m away, so the talkers are recorded 16 dB down to leave the mics headroom.
SPEAKER_VOLUME = 0.5
TALKER_LEVEL = 0.16
DEMO_LINES = tuple(Line(sentence, "en-us", DEMO_AZIMUTH_DEG) for sentence in DEMO_SENTENCES)

# --conversation: two seats, two languages; the seats split the circle between the talkers.
CONVERSATION_LINES = (
    Line("Good morning. Where is the train station?", "en-us", 60.0, "Emma"),
    Line("Buenos días. La estación está muy cerca.", "es", 240.0, "Sofía"),
    Line("Thank you very much.", "en-us", 60.0, "Emma"),
    Line("De nada. Buen viaje.", "es", 240.0, "Sofía"),
)
CONVERSATION_PARTIES = """\
conversation:
  parties:
    - name: Emma
      language: en-US
      from_deg: 330
      to_deg: 150
    - name: Sofía
      language: es-ES
      from_deg: 150
      to_deg: 330
"""
CONVERSATION_GAP_S = 5.5  # Spanish goes through Whisper base, a little slower than English
# Pooled over the script: above this the demo fails, so garbled recognition is never called a success
# (Whisper base on the simulated room measures ~0.2; pocketsphinx on espeak-ng's voice 0.5-0.9).
DEMO_WER_BOUND = 0.5


@dataclass(frozen=True)
class HeardLine:
    """One scripted line and what the box made of it: the finals whose audio overlaps it, in order."""

    line: Line
    records: tuple[dict, ...]
    errors: int
    words: int

    @property
    def recognized(self) -> str:
        return " ".join(r.get("source", "") for r in self.records).strip()

    @property
    def wer(self) -> float:
        return self.errors / max(1, self.words)


def score_lines(lines: tuple[Line, ...], spans: list[tuple[int, int]], records: list[dict]) -> list[HeardLine]:
    """Each final goes to the scripted line its audio overlaps most (a line cut in two keeps both
    halves, a line never recognized has none); WER counts the words of the line's finals together."""
    owned: list[list[dict]] = [[] for _ in lines]
    for record in records:
        start = record.get("start_sample")
        if start is None:
            continue
        end = start + round((record.get("duration_ms") or 0) * 16000 / 1000)
        overlaps = [min(end, b) - max(start, a) for a, b in spans]
        best = max(range(len(spans)), key=overlaps.__getitem__)
        if overlaps[best] > 0:
            owned[best].append(record)
    heard = []
    for line, mine in zip(lines, owned, strict=True):
        errors, words = word_errors(line.text, " ".join(r.get("source", "") for r in mine))
        heard.append(HeardLine(line, tuple(mine), errors, words))
    return heard


def print_heard(heard: list[HeardLine]) -> float:
    """Per line: what was said, what was recognized with its WER, the translations. Returns the pooled WER."""
    print("\nparley demo: what was said and what the box recognized (word error rate against the script):")
    for number, item in enumerate(heard, 1):
        who = f"{item.line.party} " if item.line.party else ""
        print(f"  {number}. {who}said:  {item.line.text}")
        print(f"     {' ' * len(who)}heard: {item.recognized or '(nothing)'}   WER {item.wer:.2f}")
        translations = [f"{lang}: {text}" for r in item.records for lang, text in (r.get("translations") or {}).items()]
        if translations:
            print(f"     {' ' * len(who)}  ->   " + "; ".join(translations))
    errors, words = sum(h.errors for h in heard), sum(h.words for h in heard)
    pooled = errors / max(1, words)
    print(f"parley demo: WER {pooled:.2f} over {words} scripted words ({errors} errors; the bound is {DEMO_WER_BOUND})")
    return pooled


def make_scene(out_dir: Path, shared_data: Path | None, seed: int = 7, lines: tuple[Line, ...] = DEMO_LINES,
               gap_s: float = DEMO_GAP_S, level: float = 1.0):
    """Simulate the room recording; returns (wav path, Scene). ``level`` < 1 leaves headroom for the
    box's own (louder) echo; the Scene's ``scale`` includes it."""
    import dataclasses

    from agent.simulation import simulate_scene

    geometry = load_array_profile(DEMO_PROFILE)
    speech = [speak(line.text, voice=line.voice) for line in lines]
    noise_dir = shared_data / "noise" if shared_data and (shared_data / "noise").is_dir() else None
    one_seat = len({line.azimuth_deg for line in lines}) == 1
    scene = simulate_scene(
        geometry, speech, talker_azimuth_deg=lines[0].azimuth_deg, distance_m=1.5, rt60_s=0.3,
        noise="point" if one_seat else "diffuse", snr_db=20.0, seed=seed, noise_dir=noise_dir, gap_s=gap_s,
        utterance_azimuths_deg=[line.azimuth_deg for line in lines],
    )
    if level != 1.0:
        scene = dataclasses.replace(scene, mixture=np.round(scene.mixture * level).astype(np.int16),
                                    speech_image=scene.speech_image * level, noise_image=scene.noise_image * level,
                                    scale=scene.scale * level)
    path = out_dir / "scene.wav"
    write_multichannel_wav(path, scene.mixture, 16000)
    return path, scene


def write_multichannel_wav(path: Path, samples: np.ndarray, sample_rate_hz: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(samples.shape[1])
        wav.setsampwidth(2)
        wav.setframerate(sample_rate_hz)
        wav.writeframes(np.ascontiguousarray(samples, dtype="<i2").tobytes())


def demo_config_text(scene_path: Path, gateway_url: str, out_dir: Path, realtime: bool,
                     conversation: bool = False, route_by: str = "direction") -> str:
    """The agent config the demo runs with, as YAML, so it is validated like any user's file."""
    spoken = ("en", "es") if conversation else DEMO_TARGETS
    return f"""\
array:
  profile: {DEMO_PROFILE}
capture:
  source: wav
  wav:
    path: {json.dumps(str(scene_path))}
    realtime: {str(realtime).lower()}
    loop: false
uplink:
  backend: gateway
  url: {json.dumps(gateway_url)}
  from_language: en-US
  to_languages: [{", ".join(DEMO_TARGETS)}]
outputs:
  speaker:
    backend: wav
    output_dir: {json.dumps(str(out_dir / "tts"))}
    languages: [{", ".join(spoken)}]
  transcript:
    path: {json.dumps(str(out_dir / "transcript.jsonl"))}
  leds:
    backend: log
""" + (CONVERSATION_PARTIES.replace("conversation:\n", f"conversation:\n  route_by: {route_by}\n") if conversation else "")


def run_demo(out_dir: Path, shared_data: Path | None = None, realtime: bool = True, conversation: bool = False,
             route_by: str = "direction") -> int:
    from agent.config.schema import load_agent_config
    from agent.daemon import Agent
    from parley_common.logsetup import configure_logging
    from agent.outputs.transcript import read_transcript
    from agent.simulation_echo import EchoRoom, speaker_rirs
    from gateway.server import GatewayThread

    configure_logging("warning")
    out_dir = out_dir.resolve()
    if shared_data is None:
        candidate = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
        shared_data = candidate if candidate.is_dir() else None
    lines = CONVERSATION_LINES if conversation else DEMO_LINES
    seats = " and ".join(sorted({f"{line.voice} at {line.azimuth_deg:.0f} deg" for line in lines}))
    print(f"parley demo: simulating a {DEMO_PROFILE} recording, talker {seats} ...")
    scene_path, scene = make_scene(out_dir, shared_data, lines=lines,
                                   gap_s=CONVERSATION_GAP_S if conversation else DEMO_GAP_S, level=TALKER_LEVEL)
    print(f"parley demo: scene written to {scene_path} ({scene.mixture.shape[0] / 16000:.1f} s, "
          f"{scene.mixture.shape[1]} channels); starting the offline gateway ...")
    (out_dir / "transcript.jsonl").unlink(missing_ok=True)
    for old in (out_dir / "tts").glob("*.wav"):
        old.unlink()
    with GatewayThread() as gateway:
        config_path = out_dir / "agent.yaml"
        config_path.write_text(demo_config_text(scene_path, gateway.base_url, out_dir, realtime, conversation, route_by))
        config = load_agent_config(config_path)
        room = EchoRoom(speaker_rirs(config.geometry, rt60_s=0.3), gain=scene.scale * SPEAKER_VOLUME)
        agent = Agent(config, room=room)
        agent.start()
        try:
            drained = agent.wait_until_drained(timeout_s=60.0 + scene.mixture.shape[0] / 16000)
        finally:
            agent.close(timeout_s=3.0)
    tts_files = sorted((out_dir / "tts").glob("*.wav"))
    finals = agent.console.finals_shown
    print(f"\nparley demo: {finals} final result(s) for {len(lines)} spoken sentence(s); "
          f"{len(tts_files)} spoken translation(s) in {out_dir / 'tts'}; transcript {out_dir / 'transcript.jsonl'}")
    heard = score_lines(lines, scene.utterances, read_transcript(out_dir / "transcript.jsonl"))
    failures = [agent.fault] if agent.fault else []
    if print_heard(heard) > DEMO_WER_BOUND:
        failures.append("what was recognized is too far from what was said")
    misrouted = [h for h in heard if any(r.get("party") != h.line.party for r in h.records)]
    if conversation and misrouted:
        failures.append(f"{len(misrouted)} line(s) routed to the wrong party")
    if not (drained and finals >= len(lines) and all(h.records for h in heard) and tts_files):
        failures.append("not every sentence was translated and spoken")
    for failure in failures:
        print(f"parley demo: FAILED: {failure}")
    return 1 if failures else 0
