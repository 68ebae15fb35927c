"""Wire capture, language identification: the official Speech SDK's auto-detect (candidate languages,
v2 endpoint) and the agent's ``identify_languages`` on the same audio, through a logging proxy to
the gateway. The languageId section and the targets must be the SDK's; documented differences:
we send ``onPassthrough: None`` (the talker's own language is never spoken back to them) and a voice
per target rather than one voice for all; the SDK's v2 ``phraseOutput`` (result types for its
own bookkeeping) we do not send."""

from __future__ import annotations

import os

import numpy as np
import pytest

from agent.events import FinalResult
from agent.uplink.config import UplinkConfig
from parley_common.protocols.usp import USP_V2_PATH
from tests.support.data import shared_data_dir
from tests.support.sdk import auto_detect_recognizer, recognize_until_stopped, say_through_uplink
from tests.support.speech import english_samples
from tests.support.usp_proxy import UspLoggingProxy
from tests.support.wavfiles import write_wav

speechsdk = pytest.importorskip("azure.cognitiveservices.speech")
CANDIDATES = ["en-US", "es-ES"]


def first_context(proxy) -> dict:
    return next(m for m in proxy.up() if m.path == "speech.context").json()


def test_the_agent_asks_for_language_identification_as_the_sdk_does(tmp_path, gateway):
    pcm = english_samples(shared_data_dir(), limit=1)[0][1]
    path = tmp_path / "one.wav"
    write_wav(path, np.concatenate([np.zeros(4800, np.int16), pcm, np.zeros(8000, np.int16)]))
    with UspLoggingProxy(gateway.base_url) as sdk, UspLoggingProxy(gateway.base_url) as ours:
        recognized = recognize_until_stopped(
            auto_detect_recognizer(sdk.base_url, path, CANDIDATES, ("en", "es"), key="the-key"))
        os.environ["PARLEY_WIRE_KEY"] = "the-key"
        [final] = [e for e in say_through_uplink(UplinkConfig(
            backend="gateway", url=ours.base_url, to_languages=("en", "es"), identify_languages=tuple(CANDIDATES),
            key_env="PARLEY_WIRE_KEY"), pcm) if isinstance(e, FinalResult)]

    assert ours.handshakes[0]["path"] == sdk.handshakes[0]["path"] == USP_V2_PATH
    sdk_context, our_context = first_context(sdk), first_context(ours)
    assert our_context["languageId"] == sdk_context["languageId"]
    assert our_context["languageId"]["languages"] == CANDIDATES
    assert our_context["translation"]["targetLanguages"] == sdk_context["translation"]["targetLanguages"]
    assert "language" not in our_context.get("phraseDetection", {})  # the service finds it
    assert our_context["translation"]["onPassthrough"] == {"action": "None"}
    assert set(our_context["synthesis"]["defaultVoices"]) == {"en", "es"}
    # and both heard the same language in the end
    sdk_language = recognized[0].properties.get(speechsdk.PropertyId.SpeechServiceConnection_AutoDetectSourceLanguageResult)
    assert sdk_language == final.language == "en-US"
