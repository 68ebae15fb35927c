"""Real HAProxy (the shipped config/haproxy.cfg, TLS) in front of three real gateway processes.

Rooms behind the balancer all share one address at the gateways (here: loopback), so this is
where the per-address and activity rules of admission meet a real deployment. Then the failures:
a gateway killed mid-utterance and another drained, with real agents' uplinks as the clients.
"""

from __future__ import annotations

import json
import queue
import threading
import time

import numpy as np
import pytest
import websocket

from agent.events import FinalResult
from agent.uplink import make_uplink
from agent.uplink.config import ReconnectConfig, UplinkConfig
from bench.gateway_bench_client import send_realtime
from parley_common.protocols.wav import streaming_header
from tests.support.balancer import HAPROXY, Balancer, GatewayProcess, gateway_yaml
from tests.support.captions_scene import wait_until
from tests.support.data import shared_data_dir
from tests.support.speech import english_samples, word_errors
from tests.support.talker import Talker, finals_by_id, wait_for_finals

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed (Debian package haproxy; make deps)")]

V1 = "/speech/translate?api-version=1.0&from=en-US&to=es"
RECONNECT = ReconnectConfig(initial_backoff_ms=100, max_backoff_ms=1000, ping_interval_s=1.0, ping_timeout_s=5.0,
                            connect_timeout_s=3.0)
AGENTS = 4  # leastconn puts at least one on each gateway
POCKETSPHINX_WER_BOUND = 0.8  # a sanity bound: the right audio reached a recognizer, whichever gateway


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Three gateways (default session cap and per-address rule) behind the reference HAProxy."""
    directory = tmp_path_factory.mktemp("site")
    gateways = [GatewayProcess(directory, f"gw{i}", gateway_yaml(idle_timeout_s=120.0)) for i in (1, 2, 3)]
    balancer = None
    try:
        for gateway in gateways:
            gateway.start()
        for gateway in gateways:
            gateway.wait_ready()
        balancer = Balancer(directory, {g.name: g.port for g in gateways}).start()
        balancer.wait_up({g.name for g in gateways})
        yield balancer, gateways
    finally:
        if balancer:
            balancer.stop()
        for gateway in gateways:
            gateway.stop()


@pytest.fixture(scope="module")
def speech():
    return english_samples(shared_data_dir(), limit=3)


def _metric(gateway: GatewayProcess, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in gateway.metrics().splitlines()
               if line.startswith(name) and not line.startswith("#"))


def _stream_one_utterance(url: str, ca_file: str, pcm: np.ndarray, out: list, index: int) -> None:
    """A bare Translator v1 client at the real-time rate: its finals' texts, or the error."""
    try:
        ws = websocket.create_connection(url, timeout=60, sslopt={"ca_certs": ca_file})
        ws.send_binary(streaming_header())
        send_realtime(ws, np.concatenate([np.zeros(8000, np.int16), pcm, np.zeros(24000, np.int16)]))
        texts = []
        while not texts:
            message = ws.recv()
            if isinstance(message, str) and json.loads(message)["type"] == "final":
                texts.append(json.loads(message)["recognition"])
        ws.close()
        out[index] = texts
    except Exception as exc:  # reported by the test with the client's index
        out[index] = exc


def test_twenty_real_time_clients_from_one_address_are_all_served_and_none_evicted(site, speech):
    balancer, gateways = site
    outcomes: list = [None] * 20
    threads = [threading.Thread(target=_stream_one_utterance,
                                args=(balancer.url + V1, str(balancer.pem), speech[i % len(speech)][1], outcomes, i))
               for i in range(20)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    for thread in threads:
        thread.join(60)
    failed = {i: o for i, o in enumerate(outcomes) if not isinstance(o, list)}
    assert not failed, f"clients without a final: {failed}"
    errors = [word_errors(speech[i % len(speech)][0], " ".join(texts)) for i, texts in enumerate(outcomes)]
    assert sum(e for e, _ in errors) / sum(n for _, n in errors) < POCKETSPHINX_WER_BOUND
    for gateway in gateways:
        assert _metric(gateway, "parley_gateway_evictions_total") == 0
        assert _metric(gateway, "parley_gateway_refusals_total") == 0
    assert sorted(_metric(g, "parley_gateway_sessions_admitted_total") for g in gateways)[0] >= 5  # leastconn spread


def test_a_killed_and_a_drained_gateway_lose_no_utterance_and_cost_one_reconnect_each(site, speech, monkeypatch):
    balancer, gateways = site
    monkeypatch.setenv("WEBSOCKET_CLIENT_CA_BUNDLE", str(balancer.pem))  # the uplink's websocket-client trusts it
    killed, drained, survivor = gateways
    # final_timeout_s: on a loaded machine a final can take long; a resend would only add load
    config = UplinkConfig(backend="gateway", url=balancer.url, to_languages=("es",), speech_output=False,
                          partial_results=False, final_timeout_s=60.0, reconnect=RECONNECT)
    agents = []
    for _ in range(AGENTS):
        results = queue.Queue(maxsize=1000)
        uplink = make_uplink(config, results)
        uplink.start()
        agents.append((uplink, results, Talker(uplink, speed=1.0)))
    try:
        wait_until(lambda: all(u.connected for u, _, _ in agents), 15, "every agent connected")
        on_killed = _say_round(agents, speech[0][1], lambda: killed.health()[1].get("sessions", 0), killed.kill)
        on_drained = _say_round(agents, speech[1][1], lambda: drained.health()[1].get("sessions", 0), drained.drain)
        _say_round(agents, speech[2][1], None, None)  # after both failures: every room talks on the survivor
        deadline_s = time.monotonic() + 90
        events = [wait_for_finals(results, {1, 2, 3}, max(1.0, deadline_s - time.monotonic()))
                  for _, results, _ in agents]
        assert drained.health() == (503, {"status": "draining", "reason": "draining for maintenance: no new sessions",
                                          "sessions": 0, "max_sessions": 8})
        assert survivor.health()[1]["sessions"] == len(agents)  # every session moved to the live gateway
    finally:
        for uplink, _, _ in agents:
            uplink.close()
    for index, agent_events in enumerate(events):
        finals = finals_by_id(agent_events)
        assert {k: len(v) for k, v in finals.items()} == {1: 1, 2: 1, 3: 1}, \
            f"agent {index}: {finals}; gateways: {_state(gateways)}"
        assert all(isinstance(f[0], FinalResult) and f[0].source_text for f in finals.values())
    connects = [uplink.connects for uplink, _, _ in agents]
    assert on_killed >= 1 and on_drained >= 1, "the failures hit no session: the test proved nothing"
    print(f"sessions hit: killed {on_killed}, drained {on_drained}; connects per agent {connects}")
    assert sum(connects) <= len(agents) + on_killed + on_drained, f"connects per agent: {connects}"


def _say_round(agents, pcm: np.ndarray, sessions_on, fail) -> int:
    """Every agent says ``pcm`` at once in real time; ``fail()`` 1 s in (mid-utterance). How many
    sessions the failing gateway held when it failed."""
    threads = [threading.Thread(target=talker.say, args=(pcm,)) for _, _, talker in agents]
    for thread in threads:
        thread.start()
    held = 0
    if fail is not None:
        time.sleep(1.0)
        held = sessions_on()
        fail()
    for thread in threads:
        thread.join(30)
    return held


def _state(gateways) -> dict:
    """What the live gateways say of themselves, for a failure's message."""
    wanted = ("parley_gateway_sessions ", "parley_gateway_queue_depth", "parley_gateway_recognizer_busy_ratio",
              "parley_gateway_final_latency_seconds_count", "parley_gateway_closes_total")
    return {g.name: (g.health(), [line for line in g.metrics().splitlines() if line.startswith(wanted)])
            for g in gateways if g.process.poll() is None}
