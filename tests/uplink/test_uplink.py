"""The uplink against the real gateway, and through faults: nothing lost, nothing doubled, no crash."""

from __future__ import annotations

import dataclasses
import threading
import logging
import math
import queue
import time

import pytest

from agent.events import FinalResult, LinkStatus, PartialResult, SynthesizedSpeech, UplinkError
from agent.uplink import Uplink, make_uplink
from agent.uplink.config import ReconnectConfig, UplinkConfig
from agent.uplink.translator_v1 import TranslatorV1Session
from gateway.config import GatewayConfig, LimitsConfig
from gateway.server import GatewayThread
from tests.support.data import shared_data_dir
from tests.support.proxy import FaultProxy
from tests.support.speech import english_samples
from tests.support.talker import ENDED_AZIMUTH_DEG, Talker, TokenService, collect, finals_by_id, speech_ids, wait_for_finals

FAST_RECONNECT = ReconnectConfig(initial_backoff_ms=100, max_backoff_ms=1000, auth_backoff_ms=2000,
                                 ping_interval_s=0.5, ping_timeout_s=1.0, connect_timeout_s=1.0)
# For tests that count connections but are not about half-open links: a gateway slowed by a loaded
# machine must not look half-open there.
LENIENT_PINGS = dataclasses.replace(FAST_RECONNECT, ping_timeout_s=5.0)


@pytest.fixture(scope="module")
def speech():
    return [pcm for _, pcm in english_samples(shared_data_dir(), limit=3)]


def config_for(backend: str, url: str, **changes) -> UplinkConfig:
    if backend == "azure":
        url += "/speech/translation/cognitiveservices/v1"
    return dataclasses.replace(UplinkConfig(backend=backend, url=url, reconnect=FAST_RECONNECT), **changes)


def start_uplink(config):
    results = queue.Queue(maxsize=1000)
    uplink = make_uplink(config, results)
    uplink.start()
    return uplink, results


def assert_exactly_one_final_each(events, ids):
    finals = finals_by_id(events)
    assert set(finals) == set(ids), f"finals for {sorted(finals)}, expected {sorted(ids)}"
    assert all(len(v) == 1 for v in finals.values()), {k: len(v) for k, v in finals.items()}
    order = [e.utterance_id for e in events if isinstance(e, FinalResult)]
    assert order == sorted(order)
    for final in (v[0] for v in finals.values()):
        assert final.source_text and set(final.translations) == {"es", "ca"}


@pytest.mark.parametrize("backend", ["gateway", "azure"])
def test_every_utterance_gets_one_final_partials_and_speech(gateway, speech, backend):
    uplink, results = start_uplink(config_for(backend, gateway.base_url))
    talker = Talker(uplink, speed=4.0)
    ids = [talker.say(pcm) for pcm in speech]
    events = wait_for_finals(results, set(ids))
    uplink.close()
    assert_exactly_one_final_each(events, ids)
    assert speech_ids(events) == set(ids)
    partial_ids = {e.utterance_id for e in events if isinstance(e, PartialResult)}
    assert partial_ids and partial_ids <= set(ids)
    first_partial = next(i for i, e in enumerate(events) if isinstance(e, PartialResult))
    first_final = next(i for i, e in enumerate(events) if isinstance(e, FinalResult))
    assert first_partial < first_final
    assert {e.azimuth_deg for e in events if isinstance(e, FinalResult)} == {ENDED_AZIMUTH_DEG}
    assert not uplink.thread_alive


@pytest.mark.parametrize("backend", ["gateway", "azure"])
def test_server_killed_mid_utterance_the_utterance_is_resent_whole(gateway, speech, backend):
    proxy = FaultProxy(gateway.port)
    uplink, results = start_uplink(config_for(backend, proxy.url))
    talker = Talker(uplink, speed=2.0)
    ids = [talker.say(speech[0])]
    ids.append(talker.say(speech[1], on_chunk=lambda k: k == 60 and proxy.cut()))
    events = wait_for_finals(results, set(ids))
    uplink.close()
    proxy.close()
    assert_exactly_one_final_each(events, ids)
    assert uplink.connects >= 2
    assert [e.connected for e in events if isinstance(e, LinkStatus)][:3] == [True, False, True]


def test_an_old_connection_is_renewed_between_utterances_without_going_offline_or_losing_speech(gateway, speech):
    renew_after_s = 10.0  # the smallest the config allows; a service's real cap is ~10 minutes
    reconnect = dataclasses.replace(LENIENT_PINGS, max_connection_s=renew_after_s)
    uplink, results = start_uplink(config_for("gateway", gateway.base_url, reconnect=reconnect))
    talker = Talker(uplink, speed=1.0)
    opened = time.monotonic()
    time.sleep(renew_after_s - 2.0)
    ids = [talker.say(speech[0])]  # renewal falls due while it is spoken: it must wait for its speech too
    events = wait_for_finals(results, set(ids), timeout_s=30)
    time.sleep(max(0.0, renew_after_s + 0.5 - (time.monotonic() - opened)))
    ids.append(talker.say(speech[1]))
    events += wait_for_finals(results, {ids[1]}, timeout_s=30)
    uplink.close()
    assert_exactly_one_final_each(events, ids)
    assert speech_ids(events) == set(ids)
    assert uplink.connects >= 2  # renewed (a slow final under load can make the second one old enough too)
    # A planned renewal is not an outage: the LEDs never show "offline" for it.
    assert False not in [e.connected for e in events if isinstance(e, LinkStatus)]


def test_half_open_connection_is_detected_within_the_ping_timeout(gateway, speech):
    proxy = FaultProxy(gateway.port)
    uplink, results = start_uplink(config_for("gateway", proxy.url))
    talker = Talker(uplink, speed=2.0)
    stalled_at = []

    def stall(k):
        if k == 40:
            proxy.stall_current()
            stalled_at.append(time.monotonic())

    ids = [talker.next_id]
    speaking = threading.Thread(target=talker.say, args=(speech[0],), kwargs={"on_chunk": stall})
    speaking.start()  # the results are read while it speaks, so the drop is seen when it happens
    down = None
    deadline = time.monotonic() + 10
    events = []
    while down is None and time.monotonic() < deadline:
        event = results.get(timeout=10)
        events.append(event)
        if isinstance(event, LinkStatus) and not event.connected:
            down = time.monotonic()
    speaking.join()
    events += wait_for_finals(results, set(ids))
    uplink.close()
    proxy.close()
    assert down is not None
    rc = FAST_RECONNECT
    assert down - stalled_at[0] <= rc.ping_interval_s + rc.ping_timeout_s + 1.0
    assert_exactly_one_final_each(events, ids)


@pytest.mark.slow
def test_server_down_for_five_seconds_then_back_loses_nothing_and_backs_off(speech):
    first = GatewayThread()
    first.start()
    port = first.port
    uplink, results = start_uplink(config_for("gateway", f"ws://127.0.0.1:{port}", reconnect=LENIENT_PINGS))
    talker = Talker(uplink, speed=4.0)
    ids = [talker.say(speech[0])]
    wait_for_finals(results, set(ids))
    first.close()
    down_at = time.monotonic()
    connects_before = uplink.connects
    ids += [talker.say(pcm) for pcm in speech[1:]]  # spoken while the server is down: queued
    time.sleep(max(0.0, 5.0 - (time.monotonic() - down_at)))
    attempts_while_down = uplink.connect_attempts
    second = GatewayThread(GatewayConfig(port=port))
    second.start()
    events = wait_for_finals(results, set(ids[1:]))
    uplink.close()
    second.close()
    assert uplink.connects == connects_before + 1
    assert_exactly_one_final_each(events, ids[1:])
    # 100 ms doubling to a 1 s cap with jitter: about 8-12 attempts in 5 s; neither a spin nor a give-up.
    assert 4 <= attempts_while_down <= 30


@pytest.mark.slow
def test_wrong_key_is_reported_once_and_not_hammered(speech, monkeypatch):
    with GatewayThread(GatewayConfig(port=0, subscription_key="right")) as gw:
        monkeypatch.setenv("PARLEY_TEST_KEY", "wrong")
        uplink, results = start_uplink(config_for("gateway", gw.base_url, key_env="PARLEY_TEST_KEY"))
        time.sleep(3.0)
        uplink.close()
    events = []
    while not results.empty():
        events.append(results.get_nowait())
    errors = [e for e in events if isinstance(e, UplinkError)]
    assert len(errors) == 1 and errors[0].fatal
    assert "HTTP 403" in errors[0].message
    assert uplink.connect_attempts <= 3  # auth_backoff_ms = 2 s


@pytest.mark.parametrize("backend", ["gateway", "azure"])
def test_garbage_from_the_server_costs_one_reconnect(gateway, speech, backend):
    proxy = FaultProxy(gateway.port)
    uplink, results = start_uplink(config_for(backend, proxy.url))
    talker = Talker(uplink, speed=2.0)
    ids = [talker.say(speech[0], on_chunk=lambda k: k == 50 and proxy.inject_garbage())]
    events = wait_for_finals(results, set(ids))
    uplink.close()
    proxy.close()
    assert_exactly_one_final_each(events, ids)
    assert uplink.connects >= 2


def test_outage_queue_is_bounded_and_drops_the_oldest_with_a_warning(speech):
    config = config_for("gateway", "ws://127.0.0.1:9", outbox_max_audio_s=5.0)
    uplink, results = start_uplink(config)
    talker = Talker(uplink, speed=50.0)
    ids = [talker.say(pcm) for pcm in speech * 2]
    time.sleep(0.5)
    uplink.close()
    events = []
    while not results.empty():
        events.append(results.get_nowait())
    dropped = [e for e in events if isinstance(e, UplinkError) and "dropped" in e.message]
    assert dropped and uplink.dropped_utterances == len(dropped)
    assert f"utterance {ids[0]} dropped" in dropped[0].message


@pytest.mark.slow
def test_azure_token_is_exchanged_and_sent_as_bearer(speech, monkeypatch):
    monkeypatch.setenv("PARLEY_TEST_KEY", "the-key")
    with TokenService() as tokens, GatewayThread(GatewayConfig(port=0, subscription_key="token-1")) as gw:
        config = config_for("azure", gw.base_url, key_env="PARLEY_TEST_KEY", use_token=True, token_url=tokens.url)
        uplink, results = start_uplink(config)
        ids = [Talker(uplink, speed=4.0).say(speech[0])]
        events = wait_for_finals(results, set(ids))
        uplink.close()
    assert tokens.keys == ["the-key"]
    assert_exactly_one_final_each(events, ids)


def test_the_first_failed_connect_at_boot_is_offline():
    proxy = FaultProxy(9)
    proxy.mode = "refuse"
    uplink, results = start_uplink(config_for("gateway", proxy.url))
    events = collect(results, 1.5)
    uplink.close()
    proxy.close()
    assert [e.connected for e in events if isinstance(e, LinkStatus)] == [False]  # once, not per attempt
    assert uplink.connect_attempts >= 2


@pytest.mark.slow
def test_the_services_idle_close_is_not_an_outage_and_speech_reconnects(speech):
    limits = LimitsConfig(idle_timeout_s=1.0)
    with GatewayThread(GatewayConfig(port=0, limits=limits)) as gw:
        uplink, results = start_uplink(config_for("gateway", gw.base_url, reconnect=LENIENT_PINGS))
        talker = Talker(uplink, speed=4.0)
        ids = [talker.say(speech[0])]
        events = wait_for_finals(results, set(ids))
        events += collect(results, 3.0)  # the gateway closes the quiet link after 1 s
        assert not uplink.connected and uplink.connects == 1  # no reconnect loop while the room is quiet
        ids.append(talker.say(speech[1]))
        events += wait_for_finals(results, {ids[1]})
        uplink.close()
    assert_exactly_one_final_each(events, ids)
    assert uplink.connects == 2
    assert [e.connected for e in events if isinstance(e, LinkStatus)] == [True]


def test_a_reset_during_a_send_recovers_without_an_error_in_the_log(gateway, speech, caplog):
    proxy = FaultProxy(gateway.port)
    config = config_for("gateway", proxy.url, reconnect=LENIENT_PINGS)

    class ResetBeforeChunk40(TranslatorV1Session):
        """The real session; the connection is reset just before its 40th chunk goes out."""

        chunks = 0

        def audio(self, utterance, pcm):
            self.chunks += 1
            if self.chunks == 40:
                proxy.reset()
                time.sleep(0.2)  # the RST is in: this send fails
            return super().audio(utterance, pcm)

    results = queue.Queue(maxsize=1000)
    uplink = Uplink(config, results, ResetBeforeChunk40(config, None))
    uplink.start()
    ids = [Talker(uplink, speed=2.0).say(speech[0])]
    events = wait_for_finals(results, set(ids))
    uplink.close()
    proxy.close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert any("send failed" in r.getMessage() for r in caplog.records)
    assert_exactly_one_final_each(events, ids)
    assert uplink.connects == 2


def test_a_backlog_after_an_outage_is_sent_at_the_services_pace_and_every_utterance_gets_its_text(
        gateway, speech):
    """Speech piles up while the service is away; at reconnect it goes out a window at a time, so
    every timeout (started at each send) is met, each spoken translation goes to its own utterance,
    and every utterance is either finalised with text or explicitly dropped by the outbox cap."""
    proxy = FaultProxy(gateway.port)
    proxy.mode = "refuse"
    uplink, results = start_uplink(config_for("gateway", proxy.url, final_timeout_s=8.0, outbox_max_audio_s=35.0,
                                              reconnect=LENIENT_PINGS))
    talker = Talker(uplink, speed=50.0)
    copies = math.ceil(45 * 16000 / sum(len(pcm) for pcm in speech))  # about 45 s of speech: the oldest go
    ids = [talker.say(pcm) for pcm in speech * copies]
    dropped = {int(e.message.split()[1]) for e in collect(results, 0.5) if isinstance(e, UplinkError)}
    assert dropped and dropped == set(ids[:len(dropped)])
    kept = ids[len(dropped):]
    proxy.mode = "forward"
    events = wait_for_finals(results, set(kept), timeout_s=180)
    uplink.close()
    proxy.close()
    assert_exactly_one_final_each(events, kept)
    assert not [e for e in events if isinstance(e, UplinkError)]
    order = [(type(e).__name__, e.utterance_id) for e in events if isinstance(e, (FinalResult, SynthesizedSpeech))]
    assert order == [(kind, i) for i in kept for kind in ("FinalResult", "SynthesizedSpeech")]
    spoken = [e for e in events if isinstance(e, SynthesizedSpeech)]
    assert all(e.spoken_end_monotonic_s <= e.received_monotonic_s for e in spoken)
