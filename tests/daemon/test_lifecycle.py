"""One lifecycle verb: ``close()`` is idempotent, Agent is a context manager, a failed start releases what it claimed."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

import agent.daemon
from agent.config.schema import load_agent_config
from agent.daemon import Agent
from agent.demo import write_multichannel_wav
from agent.outputs.leds import MockLeds


def config_text(wav_path, tmp_path) -> str:
    return f"""
array: {{profile: respeaker-4mic-hat}}
capture: {{source: wav, wav: {{path: "{wav_path}", realtime: false}}}}
uplink: {{backend: gateway, url: "ws://127.0.0.1:9"}}
outputs:
  speaker: {{backend: none}}
  transcript: {{path: "{tmp_path / 'transcript.jsonl'}"}}
  leds: {{backend: log}}
"""


@pytest.fixture
def leds(monkeypatch):
    """The LED backend the agent claims, kept so the test can see it released."""
    backend = MockLeds(12)
    monkeypatch.setattr(agent.daemon, "make_led_backend", lambda config, pins: backend)
    return backend


def test_a_part_that_fails_to_open_releases_what_was_claimed_before_it(tmp_path, leds):
    config = load_agent_config(None, config_text(tmp_path / "missing.wav", tmp_path))
    with pytest.raises(Exception, match="missing.wav"):
        Agent(config)
    assert leds.closed


def test_close_is_idempotent_and_the_context_manager_closes(tmp_path, leds):
    wav_path = tmp_path / "quiet.wav"
    write_multichannel_wav(wav_path, np.zeros((16000, 4), np.int16), 16000)
    with Agent(load_agent_config(None, config_text(wav_path, tmp_path))) as running:
        assert running.wait_until_drained(timeout_s=60)
    assert leds.closed and leds.frames[-1][1] == [(0.0, 0.0, 0.0)] * 12
    frames = len(leds.frames)
    running.close()
    running.uplink.close()
    assert len(leds.frames) == frames  # nothing is shown on a closed backend
    assert not running.uplink.thread_alive


def test_a_bug_in_the_pipeline_stops_the_agent_for_a_restart_instead_of_leaving_a_deaf_box(tmp_path, leds, monkeypatch,
                                                                                           caplog):
    """The thread that hears is gone after an exception it did not expect: the daemon must exit with
    a failure (systemd restarts it), showing the error on the LEDs first, not keep running deaf."""
    wav_path = tmp_path / "quiet.wav"
    write_multichannel_wav(wav_path, np.zeros((16000 * 30, 4), np.int16), 16000)
    config = load_agent_config(None, config_text(wav_path, tmp_path).replace("realtime: false", "realtime: true"))
    calls = {"frames": 0}
    real_process = agent.daemon.FrontEnd.process

    def process_until_the_bug(self, frame, **kwargs):
        calls["frames"] += 1
        if calls["frames"] == 30:
            raise RuntimeError("a bug in the front end")
        return real_process(self, frame, **kwargs)

    monkeypatch.setattr(agent.daemon.FrontEnd, "process", process_until_the_bug)
    states: list[str] = []
    monkeypatch.setattr(agent.daemon.LedDriver, "show_state", lambda self, state: states.append(state))
    failsafe = threading.Timer(15.0, os.kill, (os.getpid(), signal.SIGTERM))  # the old daemon never returns
    failsafe.start()
    started_s = time.monotonic()
    try:
        status = agent.daemon.run_daemon(config)
    finally:
        failsafe.cancel()
    assert status == agent.daemon.EXIT_INTERNAL_ERROR
    assert time.monotonic() - started_s < 10.0
    assert "error" in states
    assert calls["frames"] == 30  # nothing was processed after the bug
    message = next(r.getMessage() for r in caplog.records if r.levelname == "CRITICAL")
    assert "pipeline thread: RuntimeError: a bug in the front end" in message
    assert "test_lifecycle.py" in message and "Traceback" not in caplog.text
