"""Admission: who the client is, what counts as activity, and that making room never starts a storm."""

from __future__ import annotations

import ipaddress
import threading
import time

import pytest
import websocket

from gateway.admission import CLOSE_EVICTED, Admission, Slot
from gateway.client_address import SIGNATURE, ProxyHeaderError, forwarded_client, parse_proxy_v2, trusted_networks
from gateway.config import GatewayConfig, LimitsConfig, RecognitionConfig, SourceLanguageConfig
from gateway.server import GatewayThread
from parley_common.protocols.usp import build_binary, new_request_id
from parley_common.protocols.wav import streaming_header
from tests.support.captions_scene import get_json, wait_until
from tests.support.sdk import recognize_until_stopped

USP = "/speech/translation/cognitiveservices/v1?from=en-US&to=es"
LIGHT = RecognitionConfig(languages={"en-US": SourceLanguageConfig(engine="pocketsphinx")}, processes=1)


def proxy_v2(source: str, command: int = 1) -> bytes:
    ip = ipaddress.ip_address(source)
    family = 0x11 if ip.version == 4 else 0x21
    addresses = ip.packed + ip.packed + (5555).to_bytes(2, "big") + (80).to_bytes(2, "big")
    return SIGNATURE + bytes([0x20 | command, family]) + len(addresses).to_bytes(2, "big") + addresses


# -- the meter: audio at a real-time rate, not any bytes -------------------------------------


def test_real_time_audio_is_streaming_and_a_trickle_of_bytes_is_idle():
    talker, trickler = Slot("a", None, 0.5, admitted_s=0.0), Slot("b", None, 0.5, admitted_s=0.0)
    for tenth in range(1, 101):  # 10 s: 100 ms of audio every 100 ms; 2 bytes (62 us) every second
        talker.heard_audio(0.1, now_s=tenth / 10)
        if tenth % 10 == 0:
            trickler.heard_audio(2 / 32000, now_s=tenth / 10)
    assert talker.idle_s(10.0) == 0.0
    assert trickler.idle_s(10.0) == pytest.approx(10.0)


def test_lumps_of_audio_count_only_if_they_average_the_rate():
    lumpy, steady = Slot("a", None, 0.5, admitted_s=0.0), Slot("b", None, 0.5, admitted_s=0.0)
    for second in range(1, 31):
        if second % 5 == 0:
            lumpy.heard_audio(1.0, now_s=second)  # 1 s of audio every 5 s: 20 % of real time
        steady.heard_audio(1.0, now_s=second)
    assert lumpy.idle_s(30.0) == pytest.approx(30.0)
    assert steady.idle_s(30.5) == pytest.approx(0.5)  # idle counts from its last audio, as it stops


def test_the_most_specific_network_quota_wins():
    limits = LimitsConfig(max_sessions_per_address=2, address_quotas={"10.0.0.0/8": 4, "10.1.2.3/32": 20})
    admission = Admission(limits)
    assert [admission.quota(a) for a in ("192.0.2.1", "10.9.9.9", "10.1.2.3")] == [2, 4, 20]


def test_a_bad_network_in_the_config_is_an_error_naming_it():
    with pytest.raises(ValueError, match="'10.0.0.300' is not an IP address"):
        LimitsConfig(trusted_proxies=("10.0.0.300",))


# -- who the client is -----------------------------------------------------------------------


def test_proxy_v2_headers_name_the_client_and_need_all_their_bytes():
    header = proxy_v2("203.0.113.7")
    assert parse_proxy_v2(header[:20]) is None
    parsed = parse_proxy_v2(header + b"GET / HTTP/1.1\r\n")
    assert (parsed.source, parsed.length) == ("203.0.113.7", len(header))
    assert parse_proxy_v2(proxy_v2("2001:db8::1")).source == "2001:db8::1"
    assert parse_proxy_v2(proxy_v2("203.0.113.7", command=0)).source is None  # the balancer's own check
    with pytest.raises(ProxyHeaderError):
        parse_proxy_v2(SIGNATURE + b"\x13\x11\x00\x0c" + bytes(12))  # version 1 in a v2 header


def test_x_forwarded_for_is_read_right_to_left_and_only_from_a_trusted_peer():
    trusted = trusted_networks(["10.0.0.0/24"])
    assert forwarded_client("10.0.0.2", "6.6.6.6, 198.51.100.4, 10.0.0.1", trusted) == "198.51.100.4"
    assert forwarded_client("192.0.2.9", "198.51.100.4", trusted) == "192.0.2.9"


@pytest.mark.slow
def test_a_trusted_proxy_names_the_client_and_anyone_else_sending_proxy_is_cut():
    limits = LimitsConfig(trusted_proxies=("127.0.0.1",), max_sessions_per_address=1)
    with GatewayThread(GatewayConfig(port=0, recognition=LIGHT, limits=limits)) as gw:
        url = gw.base_url + USP
        # two rooms behind one balancer: one session each under their own addresses
        rooms = [websocket.create_connection(url, timeout=10, socket=_proxied_socket(gw, a))
                 for a in ("198.51.100.1", "198.51.100.2")]
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(url, timeout=10, socket=_proxied_socket(gw, "198.51.100.1"))
        assert refused.value.status_code == 429 and "198.51.100.1 holds its quota of 1" in str(refused.value)
        for ws in rooms:
            ws.close()
    with GatewayThread(GatewayConfig(port=0, recognition=LIGHT)) as gw:  # 127.0.0.1 not trusted here
        with pytest.raises((websocket.WebSocketException, ConnectionError)):
            websocket.create_connection(gw.base_url + USP, timeout=5, socket=_proxied_socket(gw, "198.51.100.1"))


def _proxied_socket(gw, source: str):
    import socket
    sock = socket.create_connection((gw.host, gw.port), timeout=10)
    sock.sendall(proxy_v2(source))
    return sock


# -- making room -----------------------------------------------------------------------------

TRICKLE = LimitsConfig(max_sessions=8, idle_yield_s=2.0, idle_timeout_s=30.0)


def _trickle(ws, stop: threading.Event) -> None:
    turn = new_request_id()
    try:
        ws.send_binary(build_binary("audio", turn, streaming_header()))
        while not stop.wait(1.0):
            ws.send_binary(build_binary("audio", turn, b"\x00\x00"))  # 2 bytes a second
    except (websocket.WebSocketException, OSError):
        pass  # evicted


@pytest.mark.slow
def test_eight_trickling_sessions_keep_a_real_client_out_no_longer_than_idle_yield_s():
    with GatewayThread(GatewayConfig(port=0, recognition=LIGHT, limits=TRICKLE)) as gw:
        url, stop = gw.base_url + USP, threading.Event()
        held = [websocket.create_connection(url, timeout=10) for _ in range(TRICKLE.max_sessions)]
        threads = [threading.Thread(target=_trickle, args=(ws, stop), daemon=True) for ws in held]
        for thread in threads:
            thread.start()
        started_s = time.monotonic()
        try:
            while True:
                try:
                    client = websocket.create_connection(url, timeout=10)
                    break
                except websocket.WebSocketBadStatusException as exc:
                    assert exc.status_code == 429
                    time.sleep(int(exc.resp_headers["retry-after"]))
            waited_s = time.monotonic() - started_s
            assert waited_s <= TRICKLE.idle_yield_s + 1.5, f"a real client waited {waited_s:.1f} s"
            client.close()
            assert gw.gateway.metrics.evicted.labels("idle session gave way to a new client")._value.get() == 1
        finally:
            stop.set()
            for ws in held:
                ws.close()


@pytest.mark.slow
def test_an_evicted_sdk_session_is_told_too_many_requests_and_does_not_reconnect():
    speechsdk = pytest.importorskip("azure.cognitiveservices.speech")
    limits = LimitsConfig(max_sessions=1, idle_yield_s=1.0)
    with GatewayThread(GatewayConfig(port=0, recognition=LIGHT, limits=limits)) as gw:
        config = speechsdk.translation.SpeechTranslationConfig(endpoint=gw.base_url + USP.split("?")[0])
        config.speech_recognition_language = "en-US"
        config.add_target_language("es")
        stream = speechsdk.audio.PushAudioInputStream()  # a recognizer that is started but hears nothing
        recognizer = speechsdk.translation.TranslationRecognizer(
            translation_config=config, audio_config=speechsdk.audio.AudioConfig(stream=stream))
        canceled = []
        recognizer.canceled.connect(lambda e: canceled.append(e.cancellation_details.code))
        recognizer.start_continuous_recognition()
        wait_until(lambda: gw.gateway.admission.sessions == 1, 10, "the SDK's session")
        time.sleep(limits.idle_yield_s + 0.5)
        newcomer = websocket.create_connection(gw.base_url + USP, timeout=10)
        wait_until(lambda: canceled, 10, "the SDK's canceled event")
        time.sleep(1.0)
        assert canceled == [speechsdk.CancellationErrorCode.TooManyRequests]
        assert gw.gateway.metrics.admitted._value.get() == 2  # no silent reconnect to evict the newcomer
        assert gw.gateway.metrics.closed.labels(str(CLOSE_EVICTED), "evicted (too many requests)")._value.get() == 1
        newcomer.close()
        recognizer.stop_continuous_recognition_async()


@pytest.mark.slow
@pytest.mark.parametrize("quota", [None, 4])
def test_five_sdk_recognizers_from_one_address_without_a_storm(two_utterance_wav, quota):
    """No quota: all five get their results on one connection each. A quota of 4: the fifth is told
    TooManyRequests after the SDK's few retries, and none of the four is disturbed."""
    speechsdk = pytest.importorskip("azure.cognitiveservices.speech")
    wav, references = two_utterance_wav
    limits = LimitsConfig(max_sessions=8, max_sessions_per_address=quota)
    with GatewayThread(GatewayConfig(port=0, recognition=LIGHT, limits=limits)) as gw:
        outcomes = [None] * 5

        def recognize(index: int) -> None:
            config = speechsdk.translation.SpeechTranslationConfig(endpoint=gw.base_url + USP.split("?")[0])
            config.speech_recognition_language = "en-US"
            config.add_target_language("es")
            recognizer = speechsdk.translation.TranslationRecognizer(
                translation_config=config, audio_config=speechsdk.audio.AudioConfig(filename=str(wav)))
            canceled = []
            recognizer.canceled.connect(lambda e: canceled.append(e.cancellation_details.code))
            texts = [r.text for r in recognize_until_stopped(recognizer, 40) if r.text]
            outcomes[index] = (texts, canceled)

        threads = [threading.Thread(target=recognize, args=(i,)) for i in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        served = [texts for texts, canceled in outcomes if len(texts) == len(references)]
        refused = [canceled for texts, canceled in outcomes if not texts]
        assert len(served) == (5 if quota is None else 4), outcomes
        assert gw.gateway.metrics.admitted._value.get() == len(served)  # one connection each, no reconnects
        assert not any(gw.gateway.metrics.evicted.labels(r)._value.get() for r in _EVICTION_REASONS)
        if quota is not None:
            assert refused == [[speechsdk.CancellationErrorCode.TooManyRequests]]
            health_url = gw.base_url.replace("ws://", "http://") + "/healthz"  # every session closes
            wait_until(lambda: get_json(health_url) == (200, {"status": "ready", "sessions": 0, "max_sessions": 8}),
                       10, "no session left")


_EVICTION_REASONS = ("idle session gave way to a new client", "idle session gave way to a newer one from the same address")
