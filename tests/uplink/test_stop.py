"""Stopping the agent never waits on a capture read that is blocked (a stalled pipe, a hung disk)."""

from __future__ import annotations

import os
import struct
import threading
import time

from agent.config.schema import load_agent_config
from agent.daemon import Agent


def wav_header(channels: int, rate_hz: int, frames: int) -> bytes:
    data_bytes = frames * channels * 2
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVEfmt " +
            struct.pack("<IHHIIHH", 16, 1, channels, rate_hz, rate_hz * channels * 2, channels * 2, 16) +
            b"data" + struct.pack("<I", data_bytes))


def test_stop_returns_within_its_budget_while_the_wav_reader_is_blocked(tmp_path):
    fifo = tmp_path / "capture.wav"
    os.mkfifo(fifo)
    release = threading.Event()

    def writer():  # one second of audio, then the pipe stalls with the writer still there
        with open(fifo, "wb") as pipe:
            pipe.write(wav_header(4, 16000, 16000 * 60) + bytes(16000 * 4 * 2))
            pipe.flush()
            release.wait(30)

    threading.Thread(target=writer, daemon=True).start()
    config = tmp_path / "agent.yaml"
    config.write_text(f"""
array: {{profile: respeaker-4mic-hat}}
capture: {{source: wav, wav: {{path: "{fifo}", realtime: false}}}}
uplink: {{backend: gateway, url: "ws://127.0.0.1:9"}}
outputs: {{speaker: {{backend: none}}, leds: {{backend: none}}}}
""")
    agent = Agent(load_agent_config(config))
    agent.start()
    deadline = time.monotonic() + 10
    while agent.counters.frames < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # every frame read: the next read blocks on the pipe
    started = time.monotonic()
    agent.close(timeout_s=2.0)
    elapsed_s = time.monotonic() - started
    release.set()
    assert agent.counters.frames >= 50
    assert elapsed_s < 3.0
