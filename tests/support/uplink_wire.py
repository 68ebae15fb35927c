"""The outbox with a real protocol session, driven by byte strings and a fake clock: no socket, no thread.

Service messages are written out by hand here (Azure's ``Name:value`` header lines, v1's JSON), not
with our encoder, so a session test checks our decoder against the wire, not against itself.
"""

from __future__ import annotations

import json

import numpy as np

from agent.events import FinalResult, SpeechChunk, SpeechEnded, SpeechStarted
from agent.uplink.config import UplinkConfig
from agent.uplink.credentials import AzureCredentials
from agent.uplink.outbox import Outbox
from agent.uplink.translator_v1 import TranslatorV1Session
from agent.uplink.usp_client import UspSession
from parley_common.frames import Frame
from parley_common.protocols.usp import parse_binary, parse_text
from parley_common.protocols.wav import HEADER_BYTES, WIRE_BYTES_PER_S

CHUNK_SAMPLES = 320
CHUNK_BYTES = 2 * CHUNK_SAMPLES
TAIL_BYTES = WIRE_BYTES_PER_S  # silence_tail_ms = 1000


class Clock:
    def __init__(self):
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


class Harness:
    """An outbox, its session, what it sent (``sent``) and what it emitted (``events``)."""

    def __init__(self, usp: bool, speech_expected: bool = False, max_audio_s: float = 60.0, spool=None,
                 window: int | None = None):
        self.clock, self.events, self.sent = Clock(), [], []
        if usp:
            self.session = UspSession(UplinkConfig(backend="azure", url="ws://127.0.0.1:1", to_languages=("es",),
                                                   speech_output=speech_expected), AzureCredentials(None, None))
        else:
            self.session = TranslatorV1Session(UplinkConfig(to_languages=("es",), silence_tail_ms=1000), None)
        if window is not None:
            self.session.max_in_flight = window
        self.outbox = Outbox(self.session, max_audio_s=max_audio_s, final_timeout_s=15.0, spoken_language="es",
                             emit=self.events.append, clock=self.clock, speech_expected=speech_expected, spool=spool)
        self.sent += self.outbox.connected()

    def send(self) -> list:
        out = self.outbox.transmit()
        self.sent += out
        return out

    def reconnect(self) -> None:
        self.sent += self.outbox.connected()

    def hear(self, message) -> list:
        replies = self.outbox.receive(message)
        self.sent += replies
        return replies

    # -- what was sent -----------------------------------------------------------------------

    def turns(self) -> list[str]:
        """USP: the request id of every speech.context, in order."""
        return [parse_text(m).request_id for m in self.sent if isinstance(m, str) and "speech.context" in m]

    def continuations(self) -> list[dict | None]:
        return [json.loads(parse_text(m).body).get("continuation") for m in self.sent
                if isinstance(m, str) and "speech.context" in m]

    def usp_audio_bytes(self, turn: str) -> int:
        return sum(len(parse_binary(m).body) for m in self.sent if isinstance(m, bytes) and turn in m[:200].decode(
            "ascii", "replace"))

    def v1_stream(self) -> bytes:
        return b"".join(m for m in self.sent if isinstance(m, bytes))

    def finals(self) -> list[FinalResult]:
        return [e for e in self.events if isinstance(e, FinalResult)]


def speak(outbox: Outbox, utterance_id: int, chunks: int = 5, end: bool = True) -> None:
    outbox.accept(SpeechStarted(utterance_id, utterance_id * 100_000, 10.0, 0.9))
    more(outbox, utterance_id, chunks, end)


def more(outbox: Outbox, utterance_id: int, chunks: int, end: bool = True) -> None:
    for k in range(chunks):
        samples = np.full((CHUNK_SAMPLES, 1), utterance_id, np.int16)
        outbox.accept(SpeechChunk(utterance_id, Frame(samples, k * CHUNK_SAMPLES, 16000)))
    if end:
        outbox.accept(SpeechEnded(utterance_id, 0, 100.0, "silence", 20.0, 0.9))


def v1_start(chunks_before: list[int]) -> int:
    """Where an utterance's speech starts in the v1 stream, after utterances of these many chunks."""
    return HEADER_BYTES + sum(n * CHUNK_BYTES + TAIL_BYTES for n in chunks_before)


def v1_result(final: bool, text: str, position: int | None = None, size: int | None = None) -> str:
    message = {"type": "final" if final else "partial", "id": "1", "recognition": text, "translation": text.upper()}
    if position is not None:
        message.update(audioTimeOffset=0, audioTimeSize=0, audioStreamPosition=position,
                       audioSizeBytes=size if size is not None else 0)
    return json.dumps(message)


def usp_text(path: str, turn: str, body: dict | None = None) -> str:
    """As Azure writes it: ``Name: value`` with a space, JSON body."""
    head = f"X-RequestId: {turn}\r\nPath: {path}\r\nContent-Type: application/json; charset=utf-8\r\n"
    return head + "\r\n" + (json.dumps(body) if body is not None else "")


def usp_phrase(turn: str, text: str, end_ticks: int = 10_000_000, status: str = "Success", **extra) -> str:
    body = {"RecognitionStatus": status, "Offset": 0, "Duration": end_ticks, **extra}
    if status == "Success":
        body.update(Text=text, Translation={"TranslationStatus": "Success",
                                             "Translations": [{"Language": "es", "Text": text.upper()}]})
    return usp_text("translation.phrase", turn, body)


def usp_hypothesis(turn: str, text: str) -> str:
    return usp_text("translation.hypothesis", turn, {"Text": text, "Offset": 0, "Duration": 1, "Translation": {
        "Translations": [{"Language": "es", "Text": text.upper()}]}})


def usp_synthesis(turn: str, wav: bytes) -> bytes:
    head = f"X-RequestId: {turn}\r\nPath: translation.synthesis\r\nContent-Type: audio/x-wav\r\n".encode()
    return len(head).to_bytes(2, "big") + head + wav
