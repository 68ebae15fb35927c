"""Feeding utterances to an uplink the way the front end does, and collecting what comes back."""

from __future__ import annotations

import http.server
import queue
import threading
import time

import numpy as np

from parley_common.frames import Frame
from agent.events import FinalResult, SpeechChunk, SpeechEnded, SpeechStarted, SynthesizedSpeech

FRAME = 320
STARTED_AZIMUTH_DEG = 45.0  # the early estimate a SpeechStarted carries
ENDED_AZIMUTH_DEG = 50.0  # the whole-utterance estimate a SpeechEnded carries


class Talker:
    """Speaks utterances into an uplink at ``speed`` x real time, with sample-accurate events."""

    def __init__(self, uplink, speed: float = 2.0):
        self.uplink = uplink
        self.speed = speed
        self.next_id = 1
        self.position = 0

    def say(self, pcm: np.ndarray, on_chunk=None, started_azimuth_deg: float = STARTED_AZIMUTH_DEG,
            ended_azimuth_deg: float = ENDED_AZIMUTH_DEG) -> int:
        utterance_id = self.next_id
        self.next_id += 1
        audio = np.concatenate([np.zeros(4800, np.int16), pcm, np.zeros(8000, np.int16)])
        start = self.position
        self.uplink.send(SpeechStarted(utterance_id, start, started_azimuth_deg, 0.8))
        for k, i in enumerate(range(0, len(audio) - FRAME + 1, FRAME)):
            self.uplink.send(SpeechChunk(utterance_id, Frame(audio[i:i + FRAME, None].copy(), start + i, 16000)))
            if on_chunk:
                on_chunk(k)
            time.sleep(FRAME / 16000 / self.speed)
        self.position += len(audio)
        self.uplink.send(SpeechEnded(utterance_id, self.position, 1000 * len(audio) / 16000, "silence",
                                     ended_azimuth_deg, 0.9))
        return utterance_id


def wait_for_finals(results: queue.Queue, expected_ids: set[int], timeout_s: float = 60.0):
    """Every event until a final for each expected id arrived (or the timeout)."""
    events, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            events.append(results.get(timeout=0.1))
        except queue.Empty:
            pass
        finals = {e.utterance_id for e in events if isinstance(e, FinalResult)}
        if expected_ids <= finals:
            break
    return events + collect(results, 2.0)  # a little longer: duplicates and trailing audio must show up too


def collect(results: queue.Queue, seconds: float) -> list:
    """Every event that arrives within ``seconds``."""
    events, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            events.append(results.get(timeout=0.05))
        except queue.Empty:
            pass
    return events


class TokenService:
    """An Azure token exchange on loopback: ``token-N`` for the N-th POST; records the keys it was given."""

    def __init__(self):
        keys = self.keys = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                keys.append(self.headers["Ocp-Apim-Subscription-Key"])
                body = f"token-{len(keys)}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/sts/v1.0/issueToken"

    def __enter__(self) -> "TokenService":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()


def finals_by_id(events) -> dict[int, list[FinalResult]]:
    out: dict[int, list[FinalResult]] = {}
    for e in events:
        if isinstance(e, FinalResult):
            out.setdefault(e.utterance_id, []).append(e)
    return out


def speech_ids(events) -> set[int]:
    return {e.utterance_id for e in events if isinstance(e, SynthesizedSpeech)}
