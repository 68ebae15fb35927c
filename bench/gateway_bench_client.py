"""A bare Translator v1 client: the baseline the end-to-end bench compares the agent with, and the
real-time sender the gateway bench's sessions use."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import websocket

from parley_common.protocols.wav import streaming_header


def send_realtime(ws, audio: np.ndarray) -> float:
    """Send 16 kHz int16 audio in 20 ms chunks at the pace it was recorded; returns when it started."""
    pcm = audio.astype("<i2")
    start = time.monotonic()
    for i in range(0, len(pcm), 320):
        ws.send_binary(pcm[i:i + 320].tobytes())
        delay = start + (i + 320) / 16000 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return start


def stream_once(base_url: str, mono: np.ndarray, utterances: list[tuple[int, int]]) -> list[float]:
    """Stream ``mono`` in real time (20 ms chunks); ms from each utterance's end to the next final."""
    url = f"{base_url}/speech/translate?api-version=1.0&from=en-US&to=es&to=ca&features=partial"
    ws = websocket.create_connection(url, timeout=60)
    finals: list[float] = []

    def reader():
        while True:
            try:
                opcode, data = ws.recv_data()
            except Exception:
                return
            if opcode == websocket.ABNF.OPCODE_TEXT and json.loads(data)["type"] == "final":
                finals.append(time.monotonic())

    threading.Thread(target=reader, daemon=True).start()
    ws.send_binary(streaming_header())
    start = send_realtime(ws, np.concatenate([mono, np.zeros(16000, np.int16)]))
    deadline = time.monotonic() + 10
    while len(finals) < len(utterances) and time.monotonic() < deadline:
        time.sleep(0.05)
    ws.close()
    latencies, remaining = [], sorted(finals)
    for _, end in utterances:  # the first final after each utterance's end is its own (noise finals come between)
        end_at = start + end / 16000
        later = [f for f in remaining if f > end_at]
        if later:
            latencies.append(1000 * (later[0] - end_at))
            remaining = [f for f in remaining if f > later[0]]
    return latencies
