"""The azure backend against a scripted USP service that answers as Azure does (not the gateway).

Slow answers across the pause, early turn ends, error statuses, split synthesis, the v2 endpoint,
a 401 on a token, and the details the SDK gets right (stream ids, telemetry, 100 ms audio).
"""

from __future__ import annotations

import queue

import pytest

from agent.events import FinalResult, SynthesizedSpeech, UplinkError
from agent.uplink import make_uplink
from agent.uplink.config import ReconnectConfig, UplinkConfig
from parley_common.protocols.usp import USP_V1_PATH, USP_V2_PATH
from parley_common.protocols.wav import TICKS_PER_SAMPLE, WIRE_BYTES_PER_SAMPLE

from tests.support.data import shared_data_dir
from tests.support.talker import FRAME, Talker, TokenService, collect, finals_by_id, wait_for_finals
from tests.support.scripted_usp import Script, ScriptedUsp
from tests.support.sdk import recognize_until_stopped
from tests.support.speech import english_samples
from tests.support.wavfiles import write_wav

RECONNECT = ReconnectConfig(initial_backoff_ms=100, max_backoff_ms=1000, auth_backoff_ms=20000,
                            ping_interval_s=1.0, ping_timeout_s=4.0, connect_timeout_s=2.0)
CHUNK_BYTES = FRAME * WIRE_BYTES_PER_SAMPLE


@pytest.fixture(scope="module")
def speech():
    return [pcm for _, pcm in english_samples(shared_data_dir(), limit=3)]


def start(url: str, **settings):
    config = UplinkConfig(**{"backend": "azure", "url": url, "to_languages": ("es",), "reconnect": RECONNECT, **settings})
    results = queue.Queue(maxsize=1000)
    uplink = make_uplink(config, results)
    uplink.start()
    return uplink, results


def test_a_slow_answer_never_overlaps_the_next_turn(speech):
    with ScriptedUsp(Script(answer_delay_s=1.0)) as service:
        uplink, results = start(service.url(USP_V1_PATH))
        talker = Talker(uplink, speed=4.0)
        ids = [talker.say(pcm) for pcm in speech]
        events = wait_for_finals(results, set(ids))
        uplink.close()
    turns = service.received("speech.context")
    assert len(turns) == len(ids)
    for previous, turn in zip(turns, turns[1:]):
        ended = next(t for t, way, path, rid in service.events if way == "tx" and path == "turn.end" and rid == previous)
        opened = next(t for t, way, path, rid in service.events if way == "rx" and rid == turn)
        assert ended < opened, "a new X-RequestId before the previous turn.end"
    finals = finals_by_id(events)
    assert [finals[i][0].source_text for i in ids] == ["phrase 1", "phrase 2", "phrase 3"]
    assert [finals[i][0].translations for i in ids] == [{"es": f"frase {n}"} for n in (1, 2, 3)]


def test_throttling_backs_off_and_is_reported_instead_of_a_resend_storm(speech):
    script = Script(early_end_after_bytes=1, early_status="TooManyRequests", early_turns=1000, status="TooManyRequests")
    with ScriptedUsp(script) as service:
        uplink, results = start(service.url(USP_V1_PATH))
        Talker(uplink, speed=8.0).say(speech[0])
        events = collect(results, 3.5)
        uplink.close()
    opened = [t for t, way, path, _ in service.events if way == "rx" and path == "speech.context"]
    assert 2 <= len(opened) <= 3, f"{len(opened)} turns in 3.5 s"  # back-off 1 s, then 2 s
    assert all(b - a >= 0.9 for a, b in zip(opened, opened[1:]))
    errors = [e.message for e in events if isinstance(e, UplinkError)]
    assert errors and all("TooManyRequests" in m for m in errors)
    assert not [e for e in events if isinstance(e, FinalResult)]


def test_an_early_turn_end_continues_from_the_acknowledged_audio_and_keeps_the_first_phrase(speech):
    with ScriptedUsp(Script(early_end_after_bytes=32000)) as service:
        uplink, results = start(service.url(USP_V1_PATH))
        ids = [Talker(uplink, speed=4.0).say(speech[0])]
        events = wait_for_finals(results, set(ids))
        uplink.close()
    first, second = (service.turns[rid] for rid in service.received("speech.context"))
    acked = len(first.pcm) // WIRE_BYTES_PER_SAMPLE * TICKS_PER_SAMPLE // TICKS_PER_SAMPLE * WIRE_BYTES_PER_SAMPLE
    resumed_at = acked - acked % CHUNK_BYTES  # the chunk holding the acknowledged sample
    overlap = len(first.pcm) - resumed_at
    assert 0 < resumed_at <= acked and second.pcm[:overlap] == first.pcm[resumed_at:]
    assert second.stream_id == "2"  # a new turn on the same connection: the next stream id
    assert service.contexts[second.request_id]["continuation"] == {
        "previousServiceTag": first.service_tag,
        "audio": {"streams": {"1": {"offset": str(resumed_at // WIRE_BYTES_PER_SAMPLE * TICKS_PER_SAMPLE)}}}}
    assert service.contexts[second.request_id]["audio"] == {"streams": {"1": None}}  # the SDK keeps "1" here
    assert [f.source_text for f in finals_by_id(events)[ids[0]]] == ["phrase 1 phrase 2"]


@pytest.mark.parametrize("script, turns", [(Script(status="BadRequest"), 5), (Script(close_code=1007), 1)])
def test_bad_request_and_a_1007_close_end_in_an_error_with_its_reason_after_as_many_turns_as_the_sdk(
        speech, tmp_path, script, turns):
    """SDK 1.53 replays a BadRequest turn 4 times, then cancels; it cancels at once on a 1007 close."""
    speechsdk = pytest.importorskip("azure.cognitiveservices.speech")
    write_wav(tmp_path / "one.wav", speech[0])
    with ScriptedUsp(script) as service:
        config = speechsdk.translation.SpeechTranslationConfig(endpoint=service.url(USP_V1_PATH), subscription="k")
        config.speech_recognition_language = "en-US"
        config.add_target_language("es")
        recognizer = speechsdk.translation.TranslationRecognizer(
            translation_config=config, audio_config=speechsdk.audio.AudioConfig(filename=str(tmp_path / "one.wav")))
        recognize_until_stopped(recognizer)
        sdk_turns = len(service.received("speech.context"))
    with ScriptedUsp(script) as service:
        uplink, results = start(service.url(USP_V1_PATH))
        Talker(uplink, speed=8.0).say(speech[0])
        events = collect(results, 5.0)
        uplink.close()
    assert len(service.received("speech.context")) == sdk_turns == turns
    errors = [e for e in events if isinstance(e, UplinkError)]
    assert errors and all(e.fatal for e in errors[-1:])  # LEDs: error
    assert ("BadRequest" if turns > 1 else "1007") in errors[-1].message
    assert not [e for e in events if isinstance(e, FinalResult)]


def test_a_busy_close_mid_utterance_costs_one_quick_reconnect_not_the_fatal_backoff(speech):
    """4429 (Azure throttling; a gateway making room from an idle session) is retried with the
    ordinary backoff: the utterance is replayed and answered well before auth_backoff_ms (20 s)."""
    with ScriptedUsp(Script(close_code=4429, closes=1)) as service:
        uplink, results = start(service.url(USP_V1_PATH))
        ids = [Talker(uplink, speed=8.0).say(speech[0])]
        events = wait_for_finals(results, set(ids), timeout_s=10.0)
        uplink.close()
    assert len(service.handshakes) == 2 and finals_by_id(events)[ids[0]]
    assert not [e for e in events if isinstance(e, UplinkError) and e.fatal]


@pytest.mark.parametrize("path", [USP_V1_PATH, USP_V2_PATH])
def test_split_synthesis_is_played_whole_on_v1_and_v2(speech, path):
    with ScriptedUsp(Script(synthesis_pieces=3)) as service:
        uplink, results = start(service.url(path), voice="es-ES-ElviraNeural")
        ids = [Talker(uplink, speed=4.0).say(speech[0])]
        events = wait_for_finals(results, set(ids))
        uplink.close()
    spoken = [e for e in events if isinstance(e, SynthesizedSpeech)]
    assert [(e.utterance_id, e.language, e.wav_bytes) for e in spoken] == [(ids[0], "es", service.wavs_sent[0])]
    assert finals_by_id(events)[ids[0]][0].source_text == "phrase 1"


def test_v2_sends_no_query_and_puts_the_languages_in_speech_context(speech):
    with ScriptedUsp() as service:
        uplink, results = start(service.url(USP_V2_PATH + "?cid=model-1"), voice="es-ES-ElviraNeural")
        ids = [Talker(uplink, speed=4.0).say(speech[0])]
        wait_for_finals(results, set(ids))
        uplink.close()
    assert service.handshakes[0]["path"] == USP_V2_PATH and service.handshakes[0]["query"] == {"cid": ["model-1"]}
    context = service.contexts[service.received("speech.context")[0]]
    assert context["phraseDetection"] == {"mode": "CONVERSATION", "language": "en-US", "onSuccess": {
        "action": "Translate"}, "onInterim": {"action": "Translate"}}
    assert context["translation"] == {"targetLanguages": ["es"], "output": {"includePassThroughResults": True},
                                      "onSuccess": {"action": "Synthesize"}, "onPassthrough": {"action": "Synthesize"}}
    assert context["synthesis"] == {"synthesizedLanguages": ["es"], "defaultVoices": {"es": "es-ES-ElviraNeural"}}


def test_stream_ids_restart_per_connection_audio_goes_in_100_ms_and_turns_are_acknowledged(speech):
    with ScriptedUsp() as service:
        uplink, results = start(service.url(USP_V1_PATH), to_languages=("ja",))
        talker = Talker(uplink, speed=4.0)
        ids = [talker.say(speech[0]), talker.say(speech[1])]
        wait_for_finals(results, set(ids))
        service.drop_connections()
        ids.append(talker.say(speech[2]))
        wait_for_finals(results, {ids[-1]})
        uplink.close()
    turns = [service.turns[rid] for rid in service.received("speech.context")]
    # the third utterance may have begun on the dropped connection before the drop was seen
    assert [(t.connection, t.stream_id) for t in turns[:2]] == [(1, "1"), (1, "2")]
    assert (turns[-1].connection, turns[-1].stream_id) == (2, "1")
    turns = turns[:2] + turns[-1:]  # the turns that were not cut
    for turn in turns:
        header, *pcm, end = turn.audio_sizes
        assert header == 44 and end == 0 and set(pcm[:-1]) == {3200} and 0 < pcm[-1] <= 3200
    acknowledged = dict(service.telemetry)
    assert set(acknowledged) == {t.request_id for t in turns}
    paths = [next(iter(m)) for m in acknowledged[turns[0].request_id]["ReceivedMessages"]]
    assert paths == ["turn.start", "translation.phrase", "speech.endDetected", "turn.end"]
    assert all(len(times) == 1 and times[0].endswith("Z") for m in acknowledged[turns[0].request_id]["ReceivedMessages"]
               for times in m.values())
    # ja has no voice configured and no Azure default here: none is invented
    assert all("voice" not in h["query"] and "features" not in h["query"] for h in service.handshakes)
    assert "synthesis" not in service.contexts[turns[0].request_id]


def test_a_refused_token_is_refreshed_once_then_the_key_is_used(speech, monkeypatch):
    monkeypatch.setenv("PARLEY_TEST_KEY", "the-key")
    with TokenService() as tokens, ScriptedUsp(Script(reject_bearer=True)) as service:
        uplink, results = start(service.url(USP_V1_PATH), key_env="PARLEY_TEST_KEY", use_token=True,
                                token_url=tokens.url)
        ids = [Talker(uplink, speed=4.0).say(speech[0])]
        events = wait_for_finals(results, set(ids), timeout_s=15)
        uplink.close()
    presented = [h["headers"].get("authorization") or h["headers"].get("ocp-apim-subscription-key")
                 for h in service.handshakes]
    assert presented == ["Bearer token-1", "Bearer token-2", "the-key"]
    assert tokens.keys == ["the-key", "the-key"]
    assert not [e for e in events if isinstance(e, UplinkError)]  # nothing to report: the key worked
    assert finals_by_id(events)[ids[0]][0].source_text == "phrase 1"


def test_the_v2_endpoint_end_to_end_against_the_gateway(speech, gateway):
    """The real thing behind v2: languages from speech.context, translation.response, audio.start/audio/audio.end."""
    uplink, results = start(gateway.base_url + USP_V2_PATH, to_languages=("es", "ca"))
    talker = Talker(uplink, speed=4.0)
    ids = [talker.say(pcm) for pcm in speech[:2]]
    events = wait_for_finals(results, set(ids))
    uplink.close()
    finals = finals_by_id(events)
    assert set(finals) == set(ids) and all(len(f) == 1 for f in finals.values())
    assert all(f[0].source_text and set(f[0].translations) == {"es", "ca"} for f in finals.values())
    spoken = [e for e in events if isinstance(e, SynthesizedSpeech)]
    assert {e.utterance_id for e in spoken} == set(ids) and {e.language for e in spoken} == {"es"}
    assert all(e.wav_bytes[:4] == b"RIFF" for e in spoken)
