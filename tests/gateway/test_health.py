"""/healthz for a balancer, drain for maintenance, /metrics for the operator: against a real gateway."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import numpy as np
import pytest
import websocket

from bench.gateway_bench_client import send_realtime
from gateway.config import GatewayConfig, LimitsConfig, RecognitionConfig, SourceLanguageConfig
from gateway.server import GatewayThread
from parley_common.protocols.wav import streaming_header
from tests.gateway.test_bad_input import close_frame
from tests.support.captions_scene import get_json
from tests.support.data import shared_data_dir
from tests.support.speech import english_samples

pytestmark = pytest.mark.slow

V1 = "/speech/translate?api-version=1.0&from=en-US&to=es"
LIGHT = RecognitionConfig(languages={"en-US": SourceLanguageConfig(engine="pocketsphinx")}, processes=1)


def test_healthz_is_ready_then_full_at_the_cap_and_metrics_count_the_refusal():
    limits = LimitsConfig(max_sessions=2, idle_yield_s=60.0)
    with GatewayThread(GatewayConfig(port=0, recognition=LIGHT, limits=limits)) as gw:
        http = gw.base_url.replace("ws://", "http://")
        assert get_json(http + "/healthz") == (200, {"status": "ready", "sessions": 0, "max_sessions": 2})
        held = [websocket.create_connection(gw.base_url + V1, timeout=10) for _ in range(2)]
        status, health = get_json(http + "/healthz")
        assert status == 503 and health["status"] == "full" and "none idle long enough" in health["reason"]
        with pytest.raises(websocket.WebSocketBadStatusException):
            websocket.create_connection(gw.base_url + V1, timeout=10)
        metrics = urllib.request.urlopen(http + "/metrics", timeout=10).read().decode()
        assert 'parley_gateway_refusals_total{reason="session_cap",status="429"} 1.0' in metrics
        assert "parley_gateway_sessions 2.0" in metrics and "parley_gateway_ready 0.0" in metrics
        for ws in held:
            ws.close()


def test_drain_finishes_the_phrase_in_progress_then_closes_with_1001_and_refuses_newcomers():
    reference, pcm = english_samples(shared_data_dir(), limit=1)[0]
    with GatewayThread(GatewayConfig(port=0, recognition=LIGHT)) as gw:
        http = gw.base_url.replace("ws://", "http://")
        idle = websocket.create_connection(gw.base_url + V1, timeout=10)
        talker = websocket.create_connection(gw.base_url + V1, timeout=30)
        talker.send_binary(streaming_header())
        audio = np.concatenate([np.zeros(8000, np.int16), pcm, np.zeros(24000, np.int16)])
        sender = threading.Thread(target=_send_quietly, args=(talker, audio))
        sender.start()
        deadline_s = time.monotonic() + 10
        while not any(getattr(s.session, "phrase_open", False) for s in gw.gateway.admission.slots):
            assert time.monotonic() < deadline_s, "no phrase started"
            time.sleep(0.02)
        gw.drain()  # mid-phrase
        assert close_frame(idle)[0] == 1001  # nothing to finish: closed at once
        status, health = get_json(http + "/healthz")
        assert status == 503 and health["status"] == "draining"
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(gw.base_url + V1, timeout=10)
        assert refused.value.status_code == 503
        final = json.loads(talker.recv())  # the phrase in progress still gets its final ...
        assert final["type"] == "final" and final["recognition"]
        assert close_frame(talker)[0] == 1001  # ... and then the session goes
        sender.join(10)
        closes = 'parley_gateway_closes_total{code="1001",name="going away"} 2.0'
        deadline_s = time.monotonic() + 5  # counted once each connection has closed
        while closes not in (metrics := urllib.request.urlopen(http + "/metrics", timeout=10).read().decode()):
            assert time.monotonic() < deadline_s, metrics
            time.sleep(0.1)
        assert "parley_gateway_final_latency_seconds_count 1.0" in metrics


def _send_quietly(ws, audio) -> None:
    try:
        send_realtime(ws, audio)
    except (websocket.WebSocketException, OSError):
        pass  # closed by the drain after its final
