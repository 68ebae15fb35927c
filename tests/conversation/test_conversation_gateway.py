"""Two parties, two languages, the real gateway: every utterance recognized in its seat's language
and translated the right way, one connection per language, through a gateway restart mid-scene."""

from __future__ import annotations

import dataclasses
import json
import queue
import urllib.request

import numpy as np
import pytest

from agent.audio.synth import speak
from agent.conversation.config import ConversationConfig, PartyConfig
from agent.conversation.uplinks import ConversationUplink, make_party_uplink
from agent.events import LinkStatus, SynthesizedSpeech
from agent.uplink.config import ReconnectConfig, UplinkConfig
from gateway.config import GatewayConfig
from gateway.server import GatewayThread
from tests.support.data import shared_data_dir
from tests.support.speech import english_samples, pooled_wer, word_error_rate
from tests.support.talker import Talker, finals_by_id, wait_for_finals

FAST_RECONNECT = ReconnectConfig(initial_backoff_ms=100, max_backoff_ms=1000, auth_backoff_ms=2000,
                                 ping_interval_s=1.0, ping_timeout_s=5.0, connect_timeout_s=2.0)
# Ten words in the first: one mangled word (Whisper's int8 kernels differ by CPU) cannot decide a test.
SPANISH = ("Buenos días a todos, la estación de tren está muy cerca.", "Muchas gracias por su ayuda.")
SPANISH_WER_BOUND = 0.5  # measured ~0.2 through Whisper base; recognized as English it is near 1
ANN_DEG, BEA_DEG = 60.0, 240.0
CONVERSATION = ConversationConfig(
    parties=(PartyConfig("Ann", "en-US", from_deg=0, to_deg=120), PartyConfig("Bea", "es-ES", from_deg=180, to_deg=300)),
    decide_after_ms=300)


@pytest.fixture(scope="module")
def speech():
    english = [pcm for _, pcm in english_samples(shared_data_dir(), limit=2)]
    return {"Ann": english, "Bea": [speak(text, voice="es") for text in SPANISH]}


def sessions(gateway) -> int:
    with urllib.request.urlopen(gateway.base_url.replace("ws://", "http://") + "/healthz", timeout=5) as response:
        return json.load(response)["sessions"]


@pytest.mark.slow
def test_two_seats_two_languages_through_a_gateway_restart(speech):
    first = GatewayThread(GatewayConfig(port=0)).start()
    port = first.port
    results: queue.Queue = queue.Queue(maxsize=2000)
    seat = {"deg": ANN_DEG}  # the front end's running estimate, as the pipeline thread would read it
    uplink = ConversationUplink(UplinkConfig(backend="gateway", url=first.base_url, reconnect=FAST_RECONNECT),
                                CONVERSATION, results, direction=lambda: seat["deg"])
    uplink.start()
    talker = Talker(uplink, speed=4.0)
    said: dict[int, str] = {}
    second = None
    try:
        def say(party: str, index: int, started_deg: float) -> None:
            seat["deg"] = ANN_DEG if party == "Ann" else BEA_DEG
            said[talker.say(speech[party][index], started_azimuth_deg=started_deg, ended_azimuth_deg=seat["deg"])] = party

        say("Ann", 0, started_deg=150.0)  # the first guess is nobody's seat; the settled direction corrects it
        say("Bea", 0, started_deg=BEA_DEG)
        events = wait_for_finals(results, set(said))
        assert sessions(first) == 2  # one connection per language
        first.close()
        say("Bea", 1, started_deg=BEA_DEG)  # spoken while the gateway is down: kept, each in its own outbox
        say("Ann", 1, started_deg=ANN_DEG)
        second = GatewayThread(GatewayConfig(port=port)).start()
        events += wait_for_finals(results, set(said), timeout_s=90.0)
        # each language's own connection came back (the gateway may since have closed idle ones)
        assert all(link.connects >= 2 for link in uplink.uplinks.values())
    finally:
        uplink.close()
        first.close()
        if second is not None:
            second.close()

    finals = finals_by_id(events)
    assert set(finals) == set(said)
    for utterance_id, party in said.items():
        [final] = finals[utterance_id]  # nothing lost, nothing doubled
        spoken, heard = ("en-US", "es") if party == "Ann" else ("es-ES", "en")
        assert (final.party, final.language) == (party, spoken), final
        assert set(final.translations) == {heard} and final.source_text and final.translations[heard], final
    bea = [finals[i][0].source_text for i, p in said.items() if p == "Bea"]
    assert pooled_wer(zip(SPANISH, bea)) <= SPANISH_WER_BOUND, bea  # recognized as Spanish, in order
    spoken_languages = {e.utterance_id: e.language for e in events if isinstance(e, SynthesizedSpeech)}
    assert spoken_languages == {i: ("es" if p == "Ann" else "en") for i, p in said.items()}
    links = [e for e in events if isinstance(e, LinkStatus)]
    assert links[-1].connected and any(not e.connected for e in links)
    assert uplink.router.corrected == 1 and uplink.router.dropped == 0
    assert {e.utterance_id for e in events if hasattr(e, "utterance_id")} <= set(said)  # nothing made up


@pytest.mark.parametrize("route_by, misleading_deg", [("language", 150.0), ("both", BEA_DEG)],
                         ids=["language-from-no-seat", "both-from-the-wrong-seat"])
def test_identified_language_picks_the_party_on_one_connection(gateway, speech, route_by, misleading_deg):
    """Ann speaks English from outside every seat (language) or from Bea's seat (both: the seat
    predicts Spanish, and the gateway, sure of English over seconds of speech, overrules it; two
    sentences in one breath, so the phrase is long enough to overrule a seat whatever the recordings)."""
    conversation = dataclasses.replace(CONVERSATION, route_by=route_by)
    results: queue.Queue = queue.Queue(maxsize=2000)
    seat = {"deg": misleading_deg}
    uplink = ConversationUplink(UplinkConfig(backend="gateway", url=gateway.base_url, reconnect=FAST_RECONNECT),
                                conversation, results, direction=lambda: seat["deg"])
    uplink.start()
    talker = Talker(uplink, speed=4.0)
    try:
        long_english = np.concatenate(speech["Ann"])
        said = {talker.say(long_english, started_azimuth_deg=misleading_deg, ended_azimuth_deg=misleading_deg): "Ann"}
        seat["deg"] = BEA_DEG
        said[talker.say(speech["Bea"][0], started_azimuth_deg=BEA_DEG, ended_azimuth_deg=BEA_DEG)] = "Bea"
        events = wait_for_finals(results, set(said))
        assert list(uplink.uplinks) == [None] and uplink.uplinks[None].connects == 1  # one connection for both
    finally:
        uplink.close()
    finals = finals_by_id(events)
    for utterance_id, party in said.items():
        [final] = finals[utterance_id]
        spoken, heard = ("en-US", "es") if party == "Ann" else ("es-ES", "en")
        assert (final.party, final.language) == (party, spoken), final
        assert set(final.translations) == {heard} and final.translations[heard], final  # not the talker's own
    [bea] = [finals[i][0].source_text for i, p in said.items() if p == "Bea"]
    assert word_error_rate(SPANISH[0], bea) <= SPANISH_WER_BOUND, bea
    spoken_languages = {e.utterance_id: e.language for e in events if isinstance(e, SynthesizedSpeech)}
    assert spoken_languages == {i: ("es" if p == "Ann" else "en") for i, p in said.items()}  # never the talker's own
    assert uplink.router.dropped == 0


def test_a_kiosk_without_parties_hears_either_language(gateway, speech):
    """uplink.identify_languages alone: each visitor is answered in the other language, the result
    naming the language heard, and the own-language passthrough dropped."""
    results: queue.Queue = queue.Queue(maxsize=2000)
    config = UplinkConfig(backend="gateway", url=gateway.base_url, to_languages=("en", "es"),
                          identify_languages=("en-US", "es-ES"), reconnect=FAST_RECONNECT)
    uplink = make_party_uplink(config, ConversationConfig(), results, direction=lambda: None)
    uplink.start()
    talker = Talker(uplink, speed=4.0)
    try:
        said = {talker.say(speech["Bea"][0]): "es-ES", talker.say(speech["Ann"][1]): "en-US"}
        finals = finals_by_id(wait_for_finals(results, set(said)))
    finally:
        uplink.close()
    for utterance_id, language in said.items():
        [final] = finals[utterance_id]
        other = "en" if language == "es-ES" else "es"
        assert final.language == language and set(final.translations) == {other} and final.translations[other], final
