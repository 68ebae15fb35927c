"""Nothing that waits on a recognizer worker runs on the gateway's event loop.

Closing a phrase still open (a client that starts a new turn mid-phrase, or goes away) waits for
its worker process, which may be busy with another session for seconds; on the loop that stalls
every session and its pings.
"""

from __future__ import annotations

import threading

import pytest
import websocket

from gateway.engines import pocketsphinx_asr, whisper_asr
from gateway.server import GatewayThread
from parley_common.protocols.usp import USP_V1_PATH, build_binary, build_text, new_request_id, parse_text
from parley_common.protocols.wav import streaming_header

from tests.support.data import shared_data_dir
from tests.support.speech import english_samples

pytestmark = pytest.mark.slow  # starts its own real gateway


def start_turn(ws, pcm: bytes) -> str:
    turn = new_request_id()
    ws.send(build_text("speech.context", turn, {"translation": {"targetLanguages": ["es"]}}))
    ws.send_binary(build_binary("audio", turn, streaming_header(), {"Content-Type": "audio/x-wav"}))
    for i in range(0, len(pcm), 3200):
        ws.send_binary(build_binary("audio", turn, pcm[i:i + 3200]))
    return turn


def wait_for(ws, path: str, turn: str) -> None:
    while True:
        opcode, data = ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_TEXT:
            message = parse_text(data.decode())
            if message.path == path and message.request_id == turn:
                return


def test_a_phrase_cut_by_a_new_turn_is_closed_off_the_event_loop(monkeypatch):
    closed_on: list[str] = []
    for stream_class in (pocketsphinx_asr.RecognitionStream, whisper_asr.WhisperStream):  # whichever engine serves en
        def recording_close(self, real_close=stream_class.close):
            closed_on.append(threading.current_thread().name)
            real_close(self)

        monkeypatch.setattr(stream_class, "close", recording_close)
    pcm = english_samples(shared_data_dir(), limit=1)[0][1].astype("<i2").tobytes()
    with GatewayThread() as gw:
        ws = websocket.create_connection(gw.base_url + USP_V1_PATH + "?from=en-US&to=es", timeout=30,
                                         subprotocols=["USP"])
        ws.send(build_text("speech.config", None, {"context": {}}))
        first = start_turn(ws, pcm[:len(pcm) // 2])  # mid-phrase: its stream is open
        wait_for(ws, "speech.startDetected", first)
        second = start_turn(ws, pcm)  # a new request id ends the first turn's phrase
        wait_for(ws, "turn.start", second)
        ws.send_binary(build_binary("audio", second, b""))
        wait_for(ws, "turn.end", second)
        ws.close()
    assert closed_on, "the cut phrase was never closed"
    assert all(name.startswith("engine") for name in closed_on), closed_on
