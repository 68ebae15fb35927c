"""The whole agent (real DSP, VAD, uplink, outputs) against the real gateway on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agent.config.schema import load_agent_config
from agent.daemon import Agent
from agent.demo import write_multichannel_wav
from agent.events import SpeechStarted
from agent.hardware import load_array_profile
from agent.outputs.leds import MockLeds
from agent.outputs.transcript import read_transcript
from agent.simulation import simulate_scene
from tests.support.data import shared_data_dir
from tests.support.speech import english_samples

AZIMUTH_DEG = 120.0


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    geometry = load_array_profile("respeaker-4mic-hat")
    speech = [pcm for _, pcm in english_samples(shared_data_dir(), limit=2)]
    noise_dir = shared_data_dir() / "noise" if shared_data_dir() else None
    scene = simulate_scene(geometry, speech, AZIMUTH_DEG, rt60_s=0.3, noise="diffuse", snr_db=20.0, seed=3,
                           noise_dir=noise_dir, gap_s=6.0)  # pauses cover the final and the spoken translation (half-duplex)
    path = tmp_path_factory.mktemp("scene") / "scene.wav"
    write_multichannel_wav(path, scene.mixture, 16000)
    return path, scene


def agent_yaml(scene_path, url, out: Path, backend: str, realtime: bool, loop: bool = False) -> str:
    if backend == "azure":
        url += "/speech/translation/cognitiveservices/v1"
    return f"""
array: {{profile: respeaker-4mic-hat}}
capture: {{source: wav, wav: {{path: "{scene_path}", realtime: {str(realtime).lower()}, loop: {str(loop).lower()}}}}}
uplink: {{backend: {backend}, url: "{url}", to_languages: [es, ca]}}
outputs:
  speaker: {{backend: wav, output_dir: "{out / 'tts'}", languages: [es], gate_tail_ms: 200}}
  transcript: {{path: "{out / 'transcript.jsonl'}"}}
  leds: {{backend: mock}}
"""


@pytest.mark.parametrize("backend", ["gateway", "azure"])
def test_agent_translates_every_utterance_and_speaks_with_the_mic_gated(scene, gateway, tmp_path, backend):
    scene_path, truth = scene
    config_path = tmp_path / "agent.yaml"
    config_path.write_text(agent_yaml(scene_path, gateway.base_url, tmp_path, backend, realtime=True)
                           + "frontend: {echo_cancellation: off}\n")  # the half-duplex gate, as configured
    started_events = []

    def note_gate(event):
        if isinstance(event, SpeechStarted):
            started_events.append((event, agent.speaker.mic_gate_open()))

    with Agent(load_agent_config(config_path), on_segment_event=note_gate) as agent:
        drained = agent.wait_until_drained(timeout_s=60)
    assert drained
    records = read_transcript(tmp_path / "transcript.jsonl")
    assert len(records) == len(truth.utterances)
    assert all(r["source"] and set(r["translations"]) == {"es", "ca"} for r in records)
    assert all(abs((r["azimuth_deg"] - AZIMUTH_DEG + 180) % 360 - 180) < 15 for r in records)
    spoken = sorted(p.name for p in (tmp_path / "tts").iterdir())
    assert spoken == [f"{r['utterance']:04d}-es.wav" for r in records]
    assert all(gate_open for _, gate_open in started_events)  # no utterance began while the speaker talked
    assert agent.counters.muted_frames > 0  # and frames were gated while it did
    leds: MockLeds = agent.leds.backend
    sequence = [s for i, s in enumerate(leds.states) if i == 0 or leds.states[i - 1] != s]
    for expected in (["idle", "listening", "translating"], ["speaking", "idle"]):
        text = ",".join(sequence)
        assert ",".join(expected) in text, sequence
    assert leds.frames[-1][1] == [(0.0, 0.0, 0.0)] * leds.num_leds


def test_daemon_stops_cleanly_on_sigterm_within_two_seconds(scene, gateway, tmp_path):
    scene_path, _ = scene
    config_path = tmp_path / "agent.yaml"
    config_path.write_text(agent_yaml(scene_path, gateway.base_url, tmp_path, "gateway", realtime=True, loop=True)
                           .replace("backend: mock", "backend: log") + "daemon: {log_level: debug}\n")  # LED states are debug
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(0.5)
    messages = []

    def listen():  # like systemd: read every notification as it comes
        while True:
            try:
                messages.append(notify.recv(4096).decode())
            except socket.timeout:
                if proc.poll() is not None:
                    return
            except OSError:
                return

    env = dict(os.environ, PYTHONUNBUFFERED="1", NOTIFY_SOCKET=str(tmp_path / "notify.sock"), WATCHDOG_USEC="2000000")
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(config_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    transcript = tmp_path / "transcript.jsonl"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (transcript.exists() and read_transcript(transcript)):
        time.sleep(0.2)  # wait until it has translated something, so there is state to shut down cleanly
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=10)
    elapsed_s = time.monotonic() - sent
    assert proc.returncode == 0, output[-2000:]
    assert elapsed_s < 2.5
    listener.join(5)
    notify.close()
    assert "READY=1" in messages[0]
    assert sum("WATCHDOG=1" in m for m in messages) >= 3  # petted about every second while audio flowed
    assert "STOPPING=1" in messages[-1]
    assert "leds: starting" in output
    records = read_transcript(tmp_path / "transcript.jsonl")
    assert records and all(r["source"] for r in records)


def test_bad_config_exits_with_ex_config_and_names_the_problem(tmp_path):
    config_path = tmp_path / "agent.yaml"
    config_path.write_text("capture:\n  sorce: wav\n")
    proc = subprocess.run([sys.executable, "-m", "agent.cli", "run", "--config", str(config_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 78
    assert f"{config_path}:2: capture.sorce" in proc.stderr and "did you mean 'source'" in proc.stderr
