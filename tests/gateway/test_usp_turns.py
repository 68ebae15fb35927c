"""USP turn bookkeeping and message validation, with a raw client; a fuzz test over headers, bodies and WAV headers.

The fuzz runs FUZZ_EXAMPLES cases per test (default small for CI); ``PARLEY_FUZZ_EXAMPLES=2000``
runs many more on demand.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import websocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parley_common.protocols.usp import build_binary, build_text, new_request_id, parse_binary, parse_text
from parley_common.protocols.wav import TICKS_PER_SAMPLE, WavHeaderError, pcm_after_header, streaming_header

from tests.support.data import shared_data_dir
from tests.support.speech import english_samples

FUZZ_EXAMPLES = int(os.environ.get("PARLEY_FUZZ_EXAMPLES", "40"))
V1 = "/speech/translation/cognitiveservices/v1?from=en-US&to=es"
V2 = "/stt/speech/universal/v2"
CLEAN_CLOSES = {1000, 1002, 1003, 1007, 1009}  # never 1011: bad input is the client's error, with a reason


@pytest.fixture
def connect(gateway):
    """Connections that are closed when the test ends, so none holds a session slot."""
    opened = []

    def open_one(path: str = V1):
        opened.append(websocket.create_connection(gateway.base_url + path, timeout=30, subprotocols=["USP"]))
        return opened[-1]

    yield open_one
    for ws in opened:
        ws.close()


def read(ws):
    opcode, data = ws.recv_data(control_frame=True)
    if opcode == websocket.ABNF.OPCODE_CLOSE:
        return ("close", int.from_bytes(data[:2], "big"), data[2:].decode())
    return parse_text(data.decode()) if opcode == websocket.ABNF.OPCODE_TEXT else parse_binary(data)


def read_until(ws, path: str) -> list:
    messages = []
    while True:
        message = read(ws)
        messages.append(message)
        if isinstance(message, tuple):
            return messages
        if message.path == path:
            return messages


def close_of(ws) -> tuple[int, str]:
    while True:
        message = read(ws)
        if isinstance(message, tuple):
            return message[1], message[2]


def send_turn(ws, turn: str, pcm: np.ndarray, context: dict | None = None, end: bool = True) -> None:
    ws.send(build_text("speech.context", turn, context or {"translation": {"targetLanguages": ["es"]}}))
    ws.send_binary(build_binary("audio", turn, streaming_header(), {"Content-Type": "audio/x-wav"}))
    for i in range(0, len(pcm), 3200):
        ws.send_binary(build_binary("audio", turn, pcm[i:i + 3200].astype("<i2").tobytes()))
    if end:
        ws.send_binary(build_binary("audio", turn, b""))


@pytest.fixture(scope="module")
def utterance():
    return english_samples(shared_data_dir(), limit=1)[0][1]


def test_reusing_a_finished_turns_request_id_closes_with_1002(connect, utterance):
    ws = connect()
    turn = new_request_id()
    send_turn(ws, turn, utterance[:8000])
    assert read_until(ws, "turn.end")[-1].path == "turn.end"
    ws.send(build_text("telemetry", turn, {"Metrics": []}))  # the SDK sends this after turn.end: fine
    ws.send(build_text("speech.context", turn, {}))
    code, reason = close_of(ws)
    assert code == 1002 and turn in reason


def test_interleaved_turns_end_the_abandoned_one_and_refuse_going_back(connect, utterance):
    ws = connect()
    a, b = new_request_id(), new_request_id()
    send_turn(ws, a, utterance[:8000], end=False)
    send_turn(ws, b, utterance[:8000], end=False)
    ends = [m.request_id for m in read_until(ws, "turn.start") + read_until(ws, "turn.end")
            if not isinstance(m, tuple) and m.path == "turn.end"]
    assert ends == [a]  # A got its turn.end when B began
    ws.send_binary(build_binary("audio", a, utterance[:3200].astype("<i2").tobytes()))
    code, reason = close_of(ws)
    assert code == 1002 and "finished turn" in reason


def test_v2_without_targets_is_speech_to_text(connect, utterance):
    ws = connect(V2)
    turn = new_request_id()
    pcm = np.concatenate([np.zeros(8000, np.int16), utterance, np.zeros(16000, np.int16)])
    send_turn(ws, turn, pcm, {"phraseDetection": {"mode": "CONVERSATION", "language": "en-US"},
                              "phraseOutput": {"format": "Detailed"}})
    messages = read_until(ws, "turn.end")
    paths = [m.path for m in messages]
    assert "speech.hypothesis" in paths and not any(p.startswith("translation") for p in paths)
    phrase = messages[paths.index("speech.phrase")].json()
    assert phrase["RecognitionStatus"] == "Success" and phrase["NBest"][0]["Display"] == phrase["DisplayText"]
    # continuous: no end per phrase (the SDK would take it for the end of the turn), one at the end
    # of the client's audio, just before turn.end
    assert paths.count("speech.endDetected") == 1 and paths[-2] == "speech.endDetected"
    assert messages[-2].json()["Offset"] == len(pcm) * TICKS_PER_SAMPLE >= phrase["Offset"] + phrase["Duration"]


@pytest.mark.parametrize("body, field", [
    ("[1, 2]", "body"),
    ('{"phraseDetection": "fast"}', "phraseDetection"),
    ('{"translation": {"targetLanguages": [1, 2]}}', "translation.targetLanguages.0"),
    ('{"synthesis": {"defaultVoices": ["es-ES-ElviraNeural"]}}', "synthesis.defaultVoices"),
    ('{"phraseDetection": {"mode": 3}}', "phraseDetection.mode"),
    ("{not json", "not JSON"),
])
def test_type_confused_speech_context_closes_with_1007_naming_the_field(connect, body, field):
    ws = connect(V2)
    ws.send(build_text("speech.context", new_request_id(), body, content_type=None))
    code, reason = close_of(ws)
    assert code == 1007 and field in reason


def test_a_null_translation_section_is_absent_not_an_error(connect, utterance):
    ws = connect()
    turn = new_request_id()
    send_turn(ws, turn, utterance[:8000], {"translation": None})
    assert read_until(ws, "turn.end")[-1].path == "turn.end"


def _fuzz_settings():
    return settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


_json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=3), max_leaves=8)
_sections = st.dictionaries(
    st.sampled_from(["phraseDetection", "translation", "translationcontext", "synthesis", "audio", "phraseOutput"]),
    _json_values | st.dictionaries(st.sampled_from(["mode", "language", "targetLanguages", "to", "defaultVoices",
                                                    "streams", "format"]), _json_values, max_size=3), max_size=4)
_headers = st.dictionaries(
    st.sampled_from(["Path", "X-RequestId", "X-StreamId", "Content-Type", "X-Timestamp"]) | st.text(
        st.characters(min_codepoint=33, max_codepoint=126, exclude_characters=":"), min_size=1, max_size=10),
    st.sampled_from(["speech.context", "audio", "telemetry", "speech.config", "", new_request_id(), "x" * 32])
    | st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40), max_size=4)


def _assert_still_sane(ws) -> None:
    """After one fuzzed message: either a clean close with a reason, or the connection still works."""
    ws.send(build_text("speech.config", None, {"context": {}}))
    ws.settimeout(0.3)
    try:
        message = read(ws)
    except websocket.WebSocketTimeoutException:
        return  # nothing to say: the message was accepted
    finally:
        ws.settimeout(30)
    if isinstance(message, tuple):
        assert message[1] in CLEAN_CLOSES and (message[1] == 1000 or message[2]), message


@_fuzz_settings()
@given(headers=_headers, body=_sections.map(json.dumps) | st.text(max_size=60), binary=st.booleans())
def test_fuzzed_usp_messages_get_a_clean_answer(gateway, headers, body, binary):
    ws = websocket.create_connection(gateway.base_url + V2, timeout=30, subprotocols=["USP"])
    try:
        lines = "".join(f"{k}:{v}\r\n" for k, v in headers.items())
        if binary:
            block = lines.encode()
            ws.send_binary(len(block).to_bytes(2, "big") + block + body.encode())
        else:
            ws.send(lines + "\r\n" + body)
        _assert_still_sane(ws)
    except (websocket.WebSocketConnectionClosedException, BrokenPipeError, ConnectionResetError):
        pass  # closed after a close frame we did not get to read: still not a crash
    finally:
        ws.close()
    assert json.loads(_health(gateway))["status"] == "ready"


@_fuzz_settings()
@given(header=st.binary(max_size=80) | st.builds(lambda h, i, b: h[:i] + b + h[i + len(b):], st.just(streaming_header()),
                                                 st.integers(0, 43), st.binary(min_size=1, max_size=6)))
def test_fuzzed_wav_headers_are_pcm_or_a_reason(header):
    try:
        pcm_after_header(header)
    except WavHeaderError as exc:
        assert str(exc).startswith("bad audio header") or "16 kHz" in str(exc)


def _health(gateway) -> bytes:
    import urllib.request
    return urllib.request.urlopen(gateway.base_url.replace("ws://", "http://") + "/healthz", timeout=10).read()
