"""The agent with its own loudspeaker in the room: the self-check at start (a rotated channel order
repaired, or reported loudly), and SIGTERM while it speaks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from agent.config.schema import load_agent_config
from agent.daemon import Agent
from agent.simulation_echo import EchoRoom, speaker_rirs
from tests.support.wavfiles import write_wav

RATE = 16000


def quiet_room(path, seconds: float = 4.0):
    """Four mics of faint noise: the room before anyone speaks."""
    return write_wav(path, np.random.default_rng(0).standard_normal((int(seconds * RATE), 4)) * 20)


def config_text(wav_path, tmp_path, repair: bool = True, chirp_ms: int = 500, loop: bool = False) -> str:
    return f"""
array: {{profile: respeaker-4mic-hat}}
capture: {{source: wav, wav: {{path: "{wav_path}", realtime: true, loop: {str(loop).lower()}}}}}
uplink: {{backend: gateway, url: "ws://127.0.0.1:9"}}
outputs:
  speaker: {{backend: wav, output_dir: "{tmp_path / 'tts'}"}}
  leds: {{backend: log}}
self_check: {{duration_ms: {chirp_ms}, repair_channel_order: {str(repair).lower()}}}
"""


def run_self_check(tmp_path, channel_order, repair=True):
    config = load_agent_config(None, config_text(quiet_room(tmp_path / "room.wav"), tmp_path, repair))
    room = EchoRoom(speaker_rirs(config.geometry, rt60_s=0.3) * 0.05, channel_order=channel_order)
    agent = Agent(config, room=room).start()
    try:
        deadline = time.monotonic() + 10
        while agent.self_check is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return agent, agent.status(), agent.state.current
    finally:
        agent.close()


def test_the_self_check_finds_the_speaker_and_the_echo_delay(tmp_path):
    agent, status, _ = run_self_check(tmp_path, channel_order=None)
    check = status["self_check"]
    assert check["problems"] == [] and check["rotation"] == 0
    assert min(check["speaker_azimuth_deg"], 360 - check["speaker_azimuth_deg"]) < 20  # the profile's 0°
    assert -10 < check["delay_ms"] < 20  # the device's buffer is in the reference's stamp; the rest is the path
    assert status["echo_delay_ms"] == pytest.approx(check["delay_ms"], abs=0.1)
    assert not (tmp_path / "tts").exists() or not list((tmp_path / "tts").iterdir())  # the folder holds translations only


def test_a_rotated_channel_order_is_detected_and_repaired(tmp_path):
    agent, status, _ = run_self_check(tmp_path, channel_order=[1, 2, 3, 0])  # stream ch i carries mic i+1
    assert status["self_check"]["rotation"] == 1
    assert agent._channel_fix == [3, 0, 1, 2] and status["hardware_problems"] == []
    assert np.array_equal(np.array([1, 2, 3, 0])[agent._channel_fix], [0, 1, 2, 3])  # mic j is column j again


def test_a_rotation_it_may_not_repair_is_reported_loudly(tmp_path):
    agent, status, state = run_self_check(tmp_path, channel_order=[2, 3, 0, 1], repair=False)
    assert status["self_check"]["rotation"] == 2 and agent._channel_fix is None
    assert state == "error"  # the LEDs
    assert any("rotated by 2" in problem for problem in status["hardware_problems"])  # status, /healthz


def test_sigterm_while_the_box_speaks_exits_within_two_seconds(tmp_path):
    """A real ALSA output device (a file PCM) plays the 3 s self-check chirp when SIGTERM comes."""
    asound = tmp_path / "asound.conf"
    asound.write_text(f'''</usr/share/alsa/alsa.conf>
pcm.parley_out {{ type file; slave.pcm "null"; file "{tmp_path / 'out.raw'}"; format "raw" }}
''')
    config_path = tmp_path / "agent.yaml"
    config_path.write_text(config_text(quiet_room(tmp_path / "room.wav"), tmp_path, chirp_ms=3000, loop=True)
                           .replace("{backend: wav, output_dir", "{backend: pyaudio, device: parley_out, output_dir"))
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(config_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "ALSA_CONFIG_PATH": str(asound)})
    output = []
    try:
        for line in proc.stdout:  # the daemon logs at info by default
            output.append(line)
            if "self-check: playing a 3000 ms chirp" in line:
                break
        assert output and "chirp" in output[-1], "".join(output)[-2000:]
        time.sleep(0.5)  # 2.5 s of it still to play
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        elapsed = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    output = "".join(output) + proc.stdout.read()
    assert proc.returncode == 0, output[-2000:]
    assert elapsed < 2.0, f"SIGTERM took {elapsed:.2f} s"
