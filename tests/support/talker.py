"""Feeding utterances to an uplink the way the front end does, and collecting what comes back."""

from __future__ import annotations

import queue
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
    end = time.monotonic() + 2.0  # a little longer: duplicates and trailing audio must show up too
    while time.monotonic() < end:
        try:
            events.append(results.get(timeout=0.1))
        except queue.Empty:
            pass
    return events


def finals_by_id(events) -> dict[int, list[FinalResult]]:
    out: dict[int, list[FinalResult]] = {}
    for e in events:
        if isinstance(e, FinalResult):
            out.setdefault(e.utterance_id, []).append(e)
    return out


def speech_ids(events) -> set[int]:
    return {e.utterance_id for e in events if isinstance(e, SynthesizedSpeech)}
