"""A full filesystem under the transcript (issue 21, case 1): every final still reaches the console,
the TTS files and the spool; the transcript's failure is logged once, listed in /healthz and shown
as the output_lost state; when space comes back the transcript catches up, in order, and only then
do the spool entries go.

The full disk is real: a 64 kB tmpfs mounted in a private mount namespace (``unshare -m``) over the
transcript's folder, filled before the agent starts; the test reaches it through /proc/PID/root.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from agent.demo import write_multichannel_wav
from agent.hardware import load_array_profile
from agent.outputs.transcript import read_transcript
from agent.simulation import simulate_scene
from tests.support.data import shared_data_dir
from tests.support.speech import english_samples

pytestmark = pytest.mark.slow

UTTERANCES = 3


def _can_unshare() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory):
    geometry = load_array_profile("respeaker-4mic-hat")
    speech = [pcm for _, pcm in english_samples(shared_data_dir(), limit=UTTERANCES)]
    scene = simulate_scene(geometry, speech, 60.0, rt60_s=0.2, noise="diffuse", snr_db=30.0, seed=3, gap_s=1.5)
    quiet_tail = np.zeros((16000 * 25, geometry.n_mics), np.int16)  # the agent stays up while space comes back
    path = tmp_path_factory.mktemp("full-disk") / "speech.wav"
    write_multichannel_wav(path, np.concatenate([scene.mixture, quiet_tail]), 16000)
    return path


def console_finals(lines: list[str]) -> dict[int, str]:
    """Utterance id -> recognized text, from the console's final lines ('[3]    61°  en: ...')."""
    found = (re.match(r"\[(\d+)\] +-?\d+°  \S+: (.*)", line) for line in list(lines))
    return {int(m.group(1)): m.group(2).strip() for m in found if m}


def wait_for(condition, timeout_s: float, what: str, lines: list[str]):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}:\n" + "".join(lines)[-3000:])


@pytest.mark.skipif(not _can_unshare(), reason="needs root and unshare -m for a private tmpfs")
def test_a_full_transcript_disk_costs_the_transcript_only_and_it_catches_up(speech_wav, gateway, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    tts, spool = tmp_path / "tts", tmp_path / "spool"
    config = tmp_path / "agent.yaml"
    config.write_text(f"""
array: {{profile: respeaker-4mic-hat}}
capture: {{source: wav, wav: {{path: "{speech_wav}", realtime: true, loop: false}}}}
uplink: {{backend: gateway, url: "{gateway.base_url}", to_languages: [es], spool_dir: "{spool}"}}
outputs:
  console: {{show_partials: false}}
  speaker: {{backend: wav, output_dir: "{tts}", realtime: false}}
  transcript: {{path: "{full / 'transcript.jsonl'}"}}
  http: {{enabled: true, port: 0}}
  leds: {{backend: log}}
daemon: {{log_level: debug}}  # the log LED backend's state lines are debug
""")
    script = (f"mount -t tmpfs -o size=64k tmpfs {full} && (head -c 1M /dev/zero > {full}/filler; true) && "
              f"exec {sys.executable} -m agent.cli run --config {config}")
    env = {k: v for k, v in os.environ.items() if k != "PARLEY_PIN_FACTORY"}
    proc = subprocess.Popen(["unshare", "-m", "sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=dict(env, PYTHONUNBUFFERED="1"))
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    inside = Path(f"/proc/{proc.pid}/root") / str(full).lstrip("/")
    try:
        wait_for(lambda: len(console_finals(lines)) >= UTTERANCES, 60, "every final on the console", lines)
        settled = None
        while settled != len(console_finals(lines)):  # no new final for 3 s: a talker may be cut in more pieces
            settled = len(console_finals(lines))
            time.sleep(3)
        spoken = [uid for uid, text in console_finals(lines).items() if text != "(nothing recognized)"]
        wait_for(lambda: all(list(tts.glob(f"{uid:04d}-es*.wav")) for uid in spoken), 15, "the TTS files", lines)
        assert read_transcript(inside / "transcript.jsonl") == []
        assert sorted(int(p.stem) for p in spool.glob("*.utt")) == sorted(console_finals(lines)), \
            "a final not in the transcript keeps its spool entry"
        url = re.search(r"captions and status on (http://\S+)", "".join(lines)).group(1)
        with pytest.raises(urllib.error.HTTPError) as unhealthy:  # 503: a problem is listed
            urllib.request.urlopen(url + "/healthz", timeout=5)
        health = json.loads(unhealthy.value.read())
        assert health["device_state"] == "output_lost", health
        assert any(p.startswith("transcript failing") and "No space left on device" in p for p in health["problems"])

        (inside / "filler").unlink()  # space comes back
        wait_for(lambda: len(read_transcript(inside / "transcript.jsonl")) == settled, 10,
                 "the transcript to catch up", lines)
        wait_for(lambda: not list(spool.glob("*.utt")), 5, "the spool entries to go", lines)
        records = read_transcript(inside / "transcript.jsonl")
        assert [r["utterance"] for r in records] == sorted(r["utterance"] for r in records)
        assert sum(bool(r["source"] and r["translations"]["es"]) for r in records) >= UTTERANCES - 1
        health = json.loads(urllib.request.urlopen(url + "/healthz", timeout=5).read())
        assert health["ok"] and health["device_state"] != "output_lost", health
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    log = "".join(lines)
    assert proc.returncode == 0, log[-3000:]
    assert "Traceback" not in log and "Exception in thread" not in log, log[-3000:]
    assert log.count("transcript failed: No space left on device") == 1, log[-3000:]
    assert "transcript works again" in log and "leds: output_lost" in log
