"""A stop or a crash in the middle of an utterance, then a restart: the utterance is delivered, once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from agent.demo import write_multichannel_wav
from agent.hardware import load_array_profile
from agent.outputs.transcript import read_transcript
from agent.simulation import simulate_scene

from tests.support.data import shared_data_dir
from tests.support.speech import english_samples


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """One utterance in a quiet room, and a quiet room for the restart to run in."""
    geometry = load_array_profile("respeaker-4mic-hat")
    speech = [pcm for _, pcm in english_samples(shared_data_dir(), limit=1)]
    scene = simulate_scene(geometry, speech, 60.0, rt60_s=0.2, noise="diffuse", snr_db=30.0, seed=5, gap_s=1.0)
    folder = tmp_path_factory.mktemp("recordings")
    write_multichannel_wav(folder / "utterance.wav", scene.mixture, 16000)
    write_multichannel_wav(folder / "quiet.wav", np.zeros((16000 * 8, geometry.n_mics), np.int16), 16000)
    return folder


def start_agent(tmp_path: Path, wav: Path, url: str) -> tuple[subprocess.Popen, list[str]]:
    config = tmp_path / f"{wav.stem}.yaml"
    config.write_text(f"""
array: {{profile: respeaker-4mic-hat}}
capture: {{source: wav, wav: {{path: "{wav}", realtime: true, loop: false}}}}
uplink: {{backend: gateway, url: "{url}", to_languages: [es], spool_dir: "{tmp_path / 'spool'}"}}
outputs:
  speaker: {{backend: none}}
  transcript: {{path: "{tmp_path / 'transcript.jsonl'}"}}
  leds: {{backend: none}}
""")
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    return proc, lines


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
def test_an_utterance_cut_by_a_stop_or_a_crash_is_delivered_once_after_the_restart(recordings, gateway, tmp_path,
                                                                                   how):
    proc, lines = start_agent(tmp_path, recordings / "utterance.wav", gateway.base_url)
    deadline = time.monotonic() + 60
    while not any("speech from" in line for line in lines) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert any("speech from" in line for line in lines), "".join(lines)[-2000:]
    time.sleep(1.0)  # in the middle of the utterance
    proc.send_signal(how)
    proc.wait(timeout=15)
    first_session = next(line.split("session ")[1].strip() for line in lines if "parley.daemon: session " in line)
    first_run = read_transcript(tmp_path / "transcript.jsonl") if (tmp_path / "transcript.jsonl").exists() else []
    if how == signal.SIGKILL:
        assert first_run == [] and len(list((tmp_path / "spool").iterdir())) == 1
    # SIGTERM: the final, ~1 s away, usually comes within the stop budget; else the restart sends it.
    else:
        assert proc.returncode == 0, "".join(lines)[-2000:]

    proc, lines = start_agent(tmp_path, recordings / "quiet.wav", gateway.base_url)
    assert proc.wait(timeout=60) == 0, "".join(lines)[-2000:]
    records = read_transcript(tmp_path / "transcript.jsonl")
    assert [r["utterance"] for r in records] == [1], "".join(lines)[-3000:]
    assert records[0]["source"] and records[0]["translations"]["es"]
    # replayed by the second run, it still says it was spoken in the first (ids restart, sessions do not)
    assert records[0]["session"] == first_session and records[0]["started_at"] < records[0]["ended_at"]
    assert list((tmp_path / "spool").iterdir()) == []
