"""1,100 half-sent HTTP connections while the agent translates through the real gateway (issue 21,
case 2): the agent runs with a 1024-descriptor limit, as a default systemd service would; the HTTP
server keeps within its cap, the uplink reconnects after a cut, every final arrives in the
transcript, the TTS files are written, and the journal stays short."""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from agent.demo import write_multichannel_wav
from agent.hardware import load_array_profile
from agent.outputs.transcript import read_transcript
from agent.simulation import simulate_scene
from tests.support.data import shared_data_dir
from tests.support.proxy import FaultProxy
from tests.support.speech import english_samples

pytestmark = pytest.mark.slow

UTTERANCES = 3
FLOOD = 1100
FD_LIMIT = 1024
FLOOD_S = 45.0


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory):
    geometry = load_array_profile("respeaker-4mic-hat")
    speech = [pcm for _, pcm in english_samples(shared_data_dir(), limit=UTTERANCES)]
    scene = simulate_scene(geometry, speech, 60.0, rt60_s=0.2, noise="diffuse", snr_db=30.0, seed=4, gap_s=2.5)
    quiet = np.zeros((16000 * 4, geometry.n_mics), np.int16)  # the flood is up before anyone speaks
    path = tmp_path_factory.mktemp("flood") / "speech.wav"
    write_multichannel_wav(path, np.concatenate([quiet, scene.mixture, quiet, quiet]), 16000)
    return path


def _limit_fds() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


def test_a_flood_of_half_sent_requests_leaves_the_uplink_spool_and_tts_their_descriptors(speech_wav, gateway,
                                                                                      tmp_path):
    proxy = FaultProxy(gateway.port)
    tts, spool = tmp_path / "tts", tmp_path / "spool"
    config = tmp_path / "agent.yaml"
    config.write_text(f"""
array: {{profile: respeaker-4mic-hat}}
capture: {{source: wav, wav: {{path: "{speech_wav}", realtime: true, loop: false}}}}
uplink: {{backend: gateway, url: "{proxy.url}", to_languages: [es], spool_dir: "{spool}"}}
outputs:
  console: {{show_partials: false}}
  speaker: {{backend: wav, output_dir: "{tts}", realtime: false, max_age_ms: 60000}}
  transcript: {{path: "{tmp_path / 'transcript.jsonl'}"}}
  http: {{enabled: true, port: 0}}
  leds: {{backend: log}}
""")
    env = {k: v for k, v in os.environ.items() if k != "PARLEY_PIN_FACTORY"}
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=_limit_fds,
                            env=dict(env, PYTHONUNBUFFERED="1"))
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    peak_fds = 0
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r"captions and status on http://[\d.]+:(\d+)", "".join(lines))):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)[-3000:]
            time.sleep(0.1)
        flood = subprocess.Popen([sys.executable, "-m", "tests.support.http_flood", found.group(1), str(FLOOD),
                                  str(FLOOD_S)], stdout=subprocess.PIPE, text=True)
        cut = False
        deadline = time.monotonic() + 90
        while proc.poll() is None and time.monotonic() < deadline:
            peak_fds = max(peak_fds, len(os.listdir(f"/proc/{proc.pid}/fd")))
            if not cut and any(re.match(r"\[\d+\] +-?\d+°", line) for line in lines):
                proxy.cut()  # the first final is in: the uplink must connect again, mid-flood
                cut = True
            time.sleep(0.5)
        assert flood.poll() is None, "the flood ended before the agent did"
        flood.terminate()
        opened, closed = (int(n) for n in re.findall(r"=(\d+)", flood.communicate(timeout=10)[0]))
        assert opened >= FLOOD and closed > 0  # the server closed half-sent requests and refused beyond its cap
        assert proc.wait(timeout=15) == 0, "".join(lines)[-3000:]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)
        proxy.close()
    log = "".join(lines)
    records = read_transcript(tmp_path / "transcript.jsonl")
    finals = [line for line in lines if re.match(r"\[\d+\] +-?\d+°", line)]
    assert cut and len(records) == len(finals) >= UTTERANCES, log[-3000:]
    assert sum(bool(r["source"] and r["translations"].get("es")) for r in records) >= UTTERANCES - 1, records
    spoken = [r["utterance"] for r in records if r["translations"].get("es")]
    assert all(list(tts.glob(f"{uid:04d}-es*.wav")) for uid in spoken), (spoken, sorted(tts.iterdir()), log)
    assert log.count("link up") >= 2, log[-3000:]  # connected again after the cut
    assert not list(spool.glob("*.utt"))
    assert "HTTP connection cap (100) reached" in log  # the flood filled the cap ...
    assert 100 < peak_fds < FD_LIMIT - 200, peak_fds  # ... and the cap held: the uplink, spool and TTS had room
    assert "Traceback" not in log and "Too many open files" not in log, log[-3000:]
    assert len(lines) < 120, f"{len(lines)} log lines:\n" + log[-3000:]
