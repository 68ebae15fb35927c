"""What the captions/status end-to-end tests share: a talker scene, free ports, a gateway on a fixed port."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from agent.demo import write_multichannel_wav
from agent.hardware import load_array_profile
from agent.simulation import simulate_scene
from gateway.config import GatewayConfig
from gateway.server import GatewayThread
from tests.support.data import shared_data_dir
from tests.support.speech import english_samples


AZIMUTH_DEG = 60.0


def write_scene(path: Path, utterances: int = 2, gap_s: float = 3.0) -> Path:
    """A talker at 60° in a reverberant room, as the 4-mic array hears them."""
    geometry = load_array_profile("respeaker-4mic-hat")
    speech = [pcm for _, pcm in english_samples(shared_data_dir(), limit=utterances)]
    noise_dir = shared_data_dir() / "noise" if shared_data_dir() else None
    scene = simulate_scene(geometry, speech, AZIMUTH_DEG, rt60_s=0.3, noise="diffuse", snr_db=20.0, seed=5,
                           noise_dir=noise_dir, gap_s=gap_s)
    write_multichannel_wav(path, scene.mixture, 16000)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_gateway(port: int) -> GatewayThread:
    return GatewayThread(GatewayConfig(port=port)).start()


def agent_yaml(scene: Path, gateway_port: int, http_port: int, out: Path, loop: bool, **http) -> str:
    extra = "".join(f", {key}: {value}" for key, value in http.items())
    return f"""
array: {{profile: respeaker-4mic-hat}}
capture: {{source: wav, wav: {{path: "{scene}", realtime: true, loop: {str(loop).lower()}}}}}
uplink:
  url: "ws://127.0.0.1:{gateway_port}"
  to_languages: [es, ca]
  speech_output: false
  reconnect: {{initial_backoff_ms: 100, max_backoff_ms: 500}}
outputs:
  speaker: {{backend: none}}
  transcript: {{path: "{out / 'transcript.jsonl'}"}}
  leds: {{backend: none}}
  http: {{enabled: true, port: {http_port}{extra}}}
  subtitles: {{directory: "{out / 'subtitles'}", languages: [es]}}
"""


def get_json(url: str) -> tuple[int, dict]:
    """(status, body); (0, {}) while nothing listens."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except urllib.error.URLError:
        return 0, {}


def wait_until(predicate, timeout_s: float, what: str, poll_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
