"""``parley demo``: the whole chain on one machine, no sound card and no cloud account.

It makes a scene (English sentences spoken from a known direction in a simulated reverberant room
with a noise source, recorded by a ReSpeaker 4-mic array), starts the offline gateway on loopback,
and runs the real agent on that recording: capture -> DOA/beamformer -> VAD/segmenter -> uplink ->
console, transcript and a WAV "speaker".
"""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np

from agent.audio.synth import speak
from agent.hardware import load_array_profile

DEMO_SENTENCES = (
    "Good morning everyone.",
    "Where is the train station?",
    "Please open the door for our guests.",
)
DEMO_PROFILE = "respeaker-4mic-hat"
DEMO_AZIMUTH_DEG = 60.0
DEMO_TARGETS = ("es", "ca")
# People wait for the box to finish speaking: the mic is gated while it talks (half-duplex), so the
# pauses must cover the end-of-speech latency plus the spoken translation.
DEMO_GAP_S = 4.5


def make_scene(out_dir: Path, shared_data: Path | None, seed: int = 7):
    """Simulate the room recording; returns (wav path, Scene)."""
    from agent.simulation import simulate_scene

    geometry = load_array_profile(DEMO_PROFILE)
    speech = [speak(sentence) for sentence in DEMO_SENTENCES]
    noise_dir = shared_data / "noise" if shared_data and (shared_data / "noise").is_dir() else None
    scene = simulate_scene(
        geometry, speech, talker_azimuth_deg=DEMO_AZIMUTH_DEG, distance_m=1.5, rt60_s=0.3,
        noise="point", snr_db=20.0, seed=seed, noise_dir=noise_dir, gap_s=DEMO_GAP_S,
    )
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


def demo_config_text(scene_path: Path, gateway_url: str, out_dir: Path, realtime: bool) -> str:
    """The agent config the demo runs with, as YAML, so it is validated like any user's file."""
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
    languages: [{", ".join(DEMO_TARGETS)}]
  transcript:
    path: {json.dumps(str(out_dir / "transcript.jsonl"))}
  leds:
    backend: log
"""


def run_demo(out_dir: Path, shared_data: Path | None = None, realtime: bool = True) -> int:
    from agent.config.schema import load_agent_config
    from agent.daemon import Agent, configure_logging
    from gateway.server import GatewayThread

    configure_logging("warning")
    out_dir = out_dir.resolve()
    if shared_data is None:
        candidate = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
        shared_data = candidate if candidate.is_dir() else None
    print(f"parley demo: simulating a {DEMO_PROFILE} recording, talker at {DEMO_AZIMUTH_DEG:.0f} deg ...")
    scene_path, scene = make_scene(out_dir, shared_data)
    print(f"parley demo: scene written to {scene_path} ({scene.mixture.shape[0] / 16000:.1f} s, "
          f"{scene.mixture.shape[1]} channels); starting the offline gateway ...")
    with GatewayThread() as gateway:
        config_path = out_dir / "agent.yaml"
        config_path.write_text(demo_config_text(scene_path, gateway.base_url, out_dir, realtime))
        config = load_agent_config(config_path)
        agent = Agent(config)
        agent.start()
        try:
            drained = agent.wait_until_drained(timeout_s=60.0 + scene.mixture.shape[0] / 16000)
        finally:
            agent.stop(timeout_s=3.0)
    tts_files = sorted((out_dir / "tts").glob("*.wav"))
    finals = agent.console.finals_shown
    print(f"\nparley demo: {finals} final result(s) for {len(DEMO_SENTENCES)} spoken sentence(s); "
          f"{len(tts_files)} spoken translation(s) in {out_dir / 'tts'}; transcript {out_dir / 'transcript.jsonl'}")
    if not drained or finals < len(DEMO_SENTENCES) or not tts_files:
        print("parley demo: FAILED: not every sentence was translated and spoken")
        return 1
    return 0
