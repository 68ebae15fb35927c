"""Wire capture: the official Speech SDK and the azure backend on the same audio, through a logging proxy
to the gateway, compared message by message and field by field, so a drift from the SDK fails here.

Documented differences (protocols.md B.5), allowed and nothing else:
- ``speech.config``: who we are (system/os values), ``audio.source.type`` (SDK ``File``, we
  ``Microphones``) and the SDK's empty ``audio.source.model``;
- ``telemetry``: on a connection's first turn the SDK sends two (connection/device metrics, then
  received messages with latency metrics); we send the received-messages one, without metrics,
  listing paths in arrival order (the SDK's order is its own);
- ``speech.context`` on the v1 path: we add ``phraseDetection`` with mode ``CONVERSATION`` (and the
  SDK's v2 ``onSuccess``/``onInterim`` actions). The SDK's v1 context is the same for recognize_once
  and continuous recognition, so a service may end such a turn after its first phrase (our gateway
  does, as single-shot must); naming the mode keeps a multi-phrase utterance in one turn;
- after the end of a file the SDK replays the audio its finals did not acknowledge in
  continuation turns until nothing is left; an utterance of ours is complete at its turn.end, so
  only the SDK's first turn is compared.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from agent.uplink.config import UplinkConfig
from parley_common.protocols.usp import USP_V1_PATH

from tests.support.data import shared_data_dir
from tests.support.sdk import recognize_until_stopped, say_through_uplink
from tests.support.speech import english_samples
from tests.support.usp_proxy import UspLoggingProxy
from tests.support.wavfiles import write_wav

speechsdk = pytest.importorskip("azure.cognitiveservices.speech")
VOICE = "es-ES-ElviraNeural"
HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def captures(tmp_path_factory, gateway):
    """(sdk proxy, agent proxy) after each sent the same utterance through the gateway."""
    pcm = english_samples(shared_data_dir(), limit=1)[0][1]
    path = tmp_path_factory.mktemp("wire") / "one.wav"
    write_wav(path, np.concatenate([np.zeros(4800, np.int16), pcm, np.zeros(8000, np.int16)]))
    with UspLoggingProxy(gateway.base_url) as sdk, UspLoggingProxy(gateway.base_url) as ours:
        config = speechsdk.translation.SpeechTranslationConfig(endpoint=sdk.base_url + USP_V1_PATH,
                                                               subscription="the-key")
        config.speech_recognition_language = "en-US"
        config.add_target_language("es")
        config.voice_name = VOICE
        recognize_until_stopped(speechsdk.translation.TranslationRecognizer(
            translation_config=config, audio_config=speechsdk.audio.AudioConfig(filename=str(path))))

        os.environ["PARLEY_WIRE_KEY"] = "the-key"
        say_through_uplink(UplinkConfig(backend="azure", url=ours.base_url + USP_V1_PATH, to_languages=("es",),
                                        voice=VOICE, key_env="PARLEY_WIRE_KEY"), pcm)
    return sdk, ours


def test_the_handshakes_match(captures):
    sdk, ours = (p.handshakes for p in captures)
    assert len(sdk) == len(ours) == 1
    assert ours[0]["path"] == sdk[0]["path"] == USP_V1_PATH
    assert ours[0]["query"] == sdk[0]["query"]
    for name in ("ocp-apim-subscription-key", "sec-websocket-protocol"):
        assert ours[0]["headers"][name] == sdk[0]["headers"][name]
    assert HEX32.match(ours[0]["headers"]["x-connectionid"]) and HEX32.match(sdk[0]["headers"]["x-connectionid"])
    assert set(ours[0]["headers"]) == set(sdk[0]["headers"])  # a User-Agent, and no Origin, as the SDK
    assert sdk[0]["headers"]["user-agent"].startswith("SpeechSDK-") and ours[0]["headers"]["user-agent"].startswith(
        "Parley/")


def kinds(messages) -> list[str]:
    """The message sequence with runs of PCM collapsed: what a client sends, in order."""
    out = []
    for message in messages:
        kind = message.path
        if kind == "audio":
            kind = "audio:header" if message.headers.get("content-type") else "audio:pcm" if message.body else "audio:end"
        if not (out and out[-1] == kind == "audio:pcm"):
            out.append(kind)
    return out


def first_turn(messages) -> list:
    contexts = [i for i, m in enumerate(messages) if m.path == "speech.context"]
    return messages[:contexts[1]] if len(contexts) > 1 else messages


def test_the_client_message_sequences_match(captures):
    sdk, ours = (first_turn(p.up()) for p in captures)
    expected = ["speech.config", "speech.context", "audio:header", "audio:pcm", "audio:end", "telemetry"]
    assert kinds(ours) == expected
    assert kinds(sdk) == expected + ["telemetry"]  # documented: two telemetry messages on a first turn


def by_path(messages, path: str) -> list:
    return [m for m in messages if m.path == path]


def test_each_message_has_the_sdks_headers_and_fields(captures):
    sdk, ours = (first_turn(p.up()) for p in captures)
    for path in ("speech.config", "speech.context", "audio", "telemetry"):
        assert {tuple(sorted(m.headers)) for m in by_path(ours, path)} <= \
            {tuple(sorted(m.headers)) for m in by_path(sdk, path)}, path
        assert {m.headers.get("content-type") for m in by_path(ours, path)} <= \
            {m.headers.get("content-type") for m in by_path(sdk, path)}, path

    sdk_config, our_config = (by_path(m, "speech.config")[0].json()["context"] for m in (sdk, ours))
    assert set(our_config) == set(sdk_config) == {"system", "os", "audio"}
    for section in ("system", "os"):
        assert set(our_config[section]) == set(sdk_config[section])
    sdk_source = {k: v for k, v in sdk_config["audio"]["source"].items() if k not in ("type", "model")}
    assert {k: v for k, v in our_config["audio"]["source"].items() if k != "type"} == sdk_source

    our_context = by_path(ours, "speech.context")[0].json()
    assert our_context.pop("phraseDetection") == {"mode": "CONVERSATION", "onSuccess": {"action": "Translate"},
                                                  "onInterim": {"action": "Translate"}}
    assert our_context == by_path(sdk, "speech.context")[0].json()

    for messages in (sdk, ours):  # one turn: every message of it carries the context's request id
        turn = by_path(messages, "speech.context")[0].request_id
        assert HEX32.match(turn)
        assert {m.request_id for m in messages if m.path != "speech.config"} == {turn}
        assert by_path(messages, "speech.config")[0].request_id is None
    sdk_audio, our_audio = by_path(sdk, "audio"), by_path(ours, "audio")
    assert our_audio[0].body == sdk_audio[0].body  # the same 44-byte RIFF header
    assert {m.headers["x-streamid"] for m in our_audio} == {m.headers["x-streamid"] for m in sdk_audio} == {"1"}
    assert {len(m.body) for m in our_audio[1:-2]} == {len(m.body) for m in sdk_audio[1:-2]} == {3200}
    assert our_audio[-1].body == sdk_audio[-1].body == b""


def test_telemetry_acknowledges_what_the_sdk_acknowledges(captures):
    sdk, ours = (first_turn(p.up()) for p in captures)
    sdk_received = next(m.json()["ReceivedMessages"] for m in by_path(sdk, "telemetry") if "ReceivedMessages" in m.json())
    our_received = by_path(ours, "telemetry")[0].json()["ReceivedMessages"]
    assert all(isinstance(m, dict) and len(m) == 1 for m in our_received + sdk_received)
    assert {path for m in our_received for path in m} == {path for m in sdk_received for path in m}
    for m in our_received:
        assert all(re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", t) for times in m.values() for t in times)
