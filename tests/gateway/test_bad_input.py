"""Every kind of bad input is a clean refusal or close, and the gateway keeps serving others."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import websocket

from parley_common.protocols.usp import build_binary, build_text, new_request_id
from parley_common.protocols.wav import streaming_header
from gateway.config import GatewayConfig, LimitsConfig
from gateway.server import GatewayThread
from tests.support.data import shared_data_dir
from tests.support.speech import english_samples

KEY = "test-key-1234"
V1 = "/speech/translate?api-version=1.0&from=en-US&to=es"
USP = "/speech/translation/cognitiveservices/v1?from=en-US&to=es"


@pytest.fixture(scope="module")
def gateway():
    with GatewayThread(gateway_config()) as gw:
        yield gw


def gateway_config() -> GatewayConfig:
    return GatewayConfig(port=0, subscription_key=KEY, limits=LimitsConfig(max_sessions=3, max_message_bytes=65536))


def handshake_status(url: str, headers=()) -> tuple[int, str]:
    try:
        websocket.create_connection(url, timeout=10, header=list(headers)).close()
        return 101, ""
    except websocket.WebSocketBadStatusException as exc:
        return exc.status_code, (exc.resp_body or b"").decode()


def key_header():
    return [f"Ocp-Apim-Subscription-Key: {KEY}"]


def close_frame(ws) -> tuple[int, str]:
    """Read until the server closes; the close code and reason it sent."""
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:  # websocket-client has answered it already
            ws.shutdown()
            return int.from_bytes(data[:2], "big"), data[2:].decode()


def final_or_close(ws) -> str | tuple[int, str]:
    """"final" when a final result arrives first, else the close code and reason."""
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            ws.shutdown()
            return int.from_bytes(data[:2], "big"), data[2:].decode()
        if opcode == websocket.ABNF.OPCODE_TEXT and json.loads(data)["type"] == "final":
            return "final"


def close_code(ws) -> int:
    return close_frame(ws)[0]


def test_wrong_path_is_404_and_lists_the_endpoints(gateway):
    status, body = handshake_status(gateway.base_url + "/speech/translat", key_header())
    assert status == 404 and "/speech/translate" in body


def test_missing_and_wrong_keys_are_401_and_403(gateway):
    assert handshake_status(gateway.base_url + V1)[0] == 401
    assert handshake_status(gateway.base_url + V1, ["Ocp-Apim-Subscription-Key: nope"])[0] == 403
    assert handshake_status(gateway.base_url + V1, [f"Authorization: Bearer {KEY}"])[0] == 101
    assert handshake_status(gateway.base_url + V1 + f"&subscription-key={KEY}")[0] == 101


def test_unknown_language_is_400_naming_what_is_installed(gateway):
    status, body = handshake_status(gateway.base_url + "/speech/translate?api-version=1.0&from=en-US&to=xx",
                                    key_header())
    assert status == 400 and "xx" in body and "es" in body and "ca" in body
    status, body = handshake_status(gateway.base_url + "/speech/translate?api-version=1.0&from=fr-FR&to=es",
                                    key_header())
    assert status == 400 and "en-US" in body


def test_v1_bad_header_and_text_frames_close_with_1003(gateway):
    ws = websocket.create_connection(gateway.base_url + V1, header=key_header(), timeout=10)
    ws.send_binary(b"NOT A WAV HEADER" * 4)
    assert close_code(ws) == 1003
    ws = websocket.create_connection(gateway.base_url + V1, header=key_header(), timeout=10)
    ws.send("hello")
    assert close_code(ws) == 1003


def test_usp_garbage_framing_and_missing_ids_close_with_1007_and_1002(gateway):
    ws = websocket.create_connection(gateway.base_url + USP, header=key_header(), timeout=10)
    ws.send_binary(b"\xff\xff garbage")
    assert close_code(ws) == 1007
    ws = websocket.create_connection(gateway.base_url + USP, header=key_header(), timeout=10)
    ws.send("Path:speech.context\r\n\r\n{}")
    assert close_code(ws) == 1002
    ws = websocket.create_connection(gateway.base_url + USP, header=key_header(), timeout=10)
    turn = new_request_id()
    ws.send_binary(build_binary("audio", turn, b"RIFFbroken"))
    assert close_code(ws) == 1007


def test_oversized_message_closes_with_1009(gateway):
    ws = websocket.create_connection(gateway.base_url + V1, header=key_header(), timeout=10)
    ws.send_binary(streaming_header() + bytes(200_000))
    assert close_code(ws) == 1009


def test_session_limit_refuses_with_429_and_frees_up(gateway):
    held = [websocket.create_connection(gateway.base_url + V1, header=key_header(), timeout=10) for _ in range(3)]
    status, body = handshake_status(gateway.base_url + V1, key_header())
    assert status == 429 and "limit 3" in body
    for ws in held:
        ws.close()
    for _ in range(50):
        if json.loads(urllib.request.urlopen(gateway.base_url.replace("ws", "http") + "/healthz").read())["sessions"] == 0:
            break
        time.sleep(0.1)
    assert handshake_status(gateway.base_url + V1, key_header())[0] == 101


def test_a_client_vanishing_mid_utterance_does_not_disturb_the_next(gateway):
    reference, pcm = english_samples(shared_data_dir(), limit=1)[0]
    host, port = gateway.host, gateway.port
    ws = websocket.create_connection(gateway.base_url + V1 + "&features=partial", header=key_header(), timeout=10)
    ws.send_binary(streaming_header() + pcm[: len(pcm) // 2].astype("<i2").tobytes())
    ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    ws.sock.close()  # reset, no close handshake
    ws = websocket.create_connection(gateway.base_url + V1, header=key_header(), timeout=30)
    audio = streaming_header() + np.concatenate([pcm, np.zeros(24000, np.int16)]).astype("<i2").tobytes()
    for i in range(0, len(audio), 32000):
        ws.send_binary(audio[i:i + 32000])
    opcode, data = ws.recv_data()
    assert json.loads(data)["type"] == "final"
    ws.close()
    assert (host, port) == (gateway.host, gateway.port)


def test_a_dead_recognizer_costs_at_most_its_session_and_the_next_session_works():
    """Every recognizer worker killed mid-sentence. Whisper holds no state in a worker, so a worker
    found dead before a request is restarted and the session goes on to its final; one that dies
    under a request closes the session with 1011 for the client to reconnect and resend. Which of
    the two happens is a race with the kill; either way nothing hangs and the next session works.
    On a gateway of its own: this test kills every worker."""
    with GatewayThread(gateway_config()) as gateway:
        # two sentences in one breath: half of it is well past the first partial, recordings or espeak-ng
        pcm = np.concatenate([pcm for _, pcm in english_samples(shared_data_dir(), limit=2)])
        audio = streaming_header() + np.concatenate([pcm, np.zeros(24000, np.int16)]).astype("<i2").tobytes()
        half = len(streaming_header()) + len(pcm) // 2 * 2  # the talker is mid-sentence here
        ws = websocket.create_connection(gateway.base_url + V1 + "&features=partial", header=key_header(), timeout=30)
        for i in range(0, half, 32000):
            ws.send_binary(audio[i:min(i + 32000, half)])
        opcode, data = ws.recv_data()
        assert json.loads(data)["type"] == "partial"  # so a recognizer stream is open in a worker
        for pid in gateway.gateway.engines.recognizer.worker_pids:
            os.kill(pid, signal.SIGKILL)
        for i in range(half, len(audio), 32000):
            ws.send_binary(audio[i:i + 32000])
        outcome = final_or_close(ws)
        assert outcome == "final" or (outcome[0] == 1011 and "recognizer failed" in outcome[1]), outcome
        ws.close()
        ws = websocket.create_connection(gateway.base_url + V1, header=key_header(), timeout=30)
        for i in range(0, len(audio), 32000):
            ws.send_binary(audio[i:i + 32000])
        opcode, data = ws.recv_data()
        assert json.loads(data)["type"] == "final"
        ws.close()


def test_languages_and_health_endpoints(gateway):
    base = gateway.base_url.replace("ws://", "http://")
    doc = json.loads(urllib.request.urlopen(base + "/languages?api-version=1.0&scope=speech,text,tts").read())
    assert set(doc) == {"speech", "text", "tts"}
    assert "en-US" in doc["speech"] and {"es", "ca"} <= set(doc["text"])
    assert {v["language"] for v in doc["tts"].values()} >= {"es", "ca"}
    assert json.loads(urllib.request.urlopen(base + "/healthz").read())["status"] == "ok"
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(base + "/nothing-here")


def test_non_loopback_bind_without_a_key_is_refused():
    with pytest.raises(ValueError, match="not loopback"):
        GatewayConfig(host="0.0.0.0")


@pytest.mark.parametrize("query, reason", [
    ("/speech/translate?from=en-US&to=es", "'api-version' is required"),
    ("/speech/translate?api-version=2.0&from=en-US&to=es", "api-version '2.0'"),
    ("/speech/translate?api-version=1.0&to=es", "'from' is required"),
    ("/speech/translate?api-version=1.0&from=en-US&to=es&format=audio/ogg", "format 'audio/ogg' is not supported; use audio/wav or audio/mp3"),
    ("/speech/recognition/conversation/cognitiveservices/v1", "'language' is required"),
    ("/speech/recognition/conversation/cognitiveservices/v1?language=en-US&format=verbose", "format 'verbose'"),
])
def test_missing_or_unsupported_query_parameters_are_400_with_the_reason_in_the_status_line(gateway, query, reason):
    try:
        websocket.create_connection(gateway.base_url + query, timeout=10, header=key_header()).close()
        raise AssertionError("upgraded")
    except websocket.WebSocketBadStatusException as exc:
        assert exc.status_code == 400 and reason in exc.resp_body.decode() and reason in str(exc)


# All test clients share 127.0.0.1: the per-address cap is set out of the way of the global one.
LOCKOUT = LimitsConfig(max_sessions=8, max_sessions_per_address=16, idle_timeout_s=4.0, idle_yield_s=2.0)


def telemetry_only(ws, stop_s: float) -> tuple[int, str]:
    """Send telemetry every 0.5 s, as a client that never talks; the close it gets."""
    turn = new_request_id()
    deadline = time.monotonic() + stop_s
    ws.settimeout(0.5)
    while time.monotonic() < deadline:
        try:
            ws.send(build_text("telemetry", turn, {"Metrics": []}))
            opcode, data = ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return int.from_bytes(data[:2], "big"), data[2:].decode()
        except websocket.WebSocketTimeoutException:
            continue
        except (websocket.WebSocketConnectionClosedException, BrokenPipeError, ConnectionResetError):
            return 1006, ""
    return 0, "still open"


def test_idle_and_telemetry_only_clients_do_not_lock_out_a_real_one(two_utterance_wav):
    """8 clients hold every slot (4 silent, 4 telemetry-only); the Speech SDK is served within idle_yield_s."""
    speechsdk = pytest.importorskip("azure.cognitiveservices.speech")
    with GatewayThread(GatewayConfig(port=0, limits=LOCKOUT)) as gw:
        url = gw.base_url + "/speech/translation/cognitiveservices/v1?from=en-US&to=es"
        held = [websocket.create_connection(url, timeout=10) for _ in range(LOCKOUT.max_sessions)]
        try:
            websocket.create_connection(url, timeout=10)
            raise AssertionError("a ninth session was admitted while every session was fresh")
        except websocket.WebSocketBadStatusException as exc:
            assert exc.status_code == 429 and 1 <= int(exc.resp_headers["retry-after"]) <= LOCKOUT.idle_yield_s
        time.sleep(LOCKOUT.idle_yield_s)
        for ws in held[:4]:  # telemetry is not activity: these still give way
            ws.send(build_text("telemetry", new_request_id(), {"Metrics": []}))
        config = speechsdk.translation.SpeechTranslationConfig(endpoint=url.split("?")[0])
        config.speech_recognition_language = "en-US"
        config.add_target_language("es")
        recognizer = speechsdk.translation.TranslationRecognizer(
            translation_config=config, audio_config=speechsdk.audio.AudioConfig(filename=str(two_utterance_wav[0])))
        assert recognizer.recognize_once().reason == speechsdk.ResultReason.TranslatedSpeech
        for ws in held:
            ws.close()


def test_a_telemetry_only_session_is_closed_within_the_idle_bound():
    with GatewayThread(GatewayConfig(port=0, limits=LOCKOUT)) as gw:
        ws = websocket.create_connection(gw.base_url + USP, timeout=10)
        code, reason = telemetry_only(ws, LOCKOUT.idle_timeout_s + 20)
        assert code == 1000 and "no audio" in reason


def test_one_address_cannot_take_every_session():
    """Its newer sessions replace its idlest ones (often connections the client already gave up on)."""
    limits = LimitsConfig(max_sessions=8, max_sessions_per_address=2, idle_yield_s=60.0)
    with GatewayThread(GatewayConfig(port=0, limits=limits)) as gw:
        held = [websocket.create_connection(gw.base_url + USP, timeout=10) for _ in range(2)]
        held[0].send_binary(build_binary("audio", new_request_id(), streaming_header()))  # audio: not the idlest
        assert "turn.start" in held[0].recv()  # the gateway has taken that audio
        held.append(websocket.create_connection(gw.base_url + USP, timeout=10))
        assert close_frame(held[1]) == (1000, "replaced by a newer session from the same address")
        assert json.loads(_health(gw))["sessions"] == 2
        for ws in held:
            ws.close()


def _health(gw) -> bytes:
    return urllib.request.urlopen(gw.base_url.replace("ws://", "http://") + "/healthz", timeout=10).read()


def test_idle_recognizer_workers_are_replaced_and_the_next_session_is_served():
    reference, pcm = english_samples(shared_data_dir(), limit=1)[0]
    audio = streaming_header() + np.concatenate([pcm, np.zeros(24000, np.int16)]).astype("<i2").tobytes()
    limits = LimitsConfig(release_recognizers_after_s=1.0)
    with GatewayThread(GatewayConfig(port=0, limits=limits)) as gw:
        for generation in (0, 1):
            ws = websocket.create_connection(gw.base_url + "/speech/translate?api-version=1.0&from=en-US&to=es",
                                             timeout=60)
            ws.send_binary(audio)
            assert json.loads(ws.recv())["type"] == "final"
            assert gw.gateway.recognizer_generation == generation
            pids = gw.gateway.engines.recognizer.worker_pids
            ws.close()
            deadline = time.monotonic() + 120
            while gw.gateway.recognizer_generation == generation and time.monotonic() < deadline:
                time.sleep(0.2)
            assert gw.gateway.recognizer_generation == generation + 1
            assert not set(pids) & set(gw.gateway.engines.recognizer.worker_pids)
            while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
                time.sleep(0.2)  # the old workers are stopped right after the swap
            assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
