"""Profanity options of both protocols, on spoken words (espeak-ng), with the official SDK on USP."""

from __future__ import annotations

import json

import numpy as np
import pytest
import websocket

from agent.audio.synth import speak
from parley_common.protocols.wav import streaming_header

speechsdk = pytest.importorskip("azure.cognitiveservices.speech")
V1 = "/speech/translate?api-version=1.0&from=en-US&to=es"


@pytest.fixture(scope="module")
def rude_wav(wav_file):
    pcm = np.concatenate([np.zeros(8000, np.int16), speak("This is bullshit, damn it."), np.zeros(24000, np.int16)])
    return wav_file("rude.wav", pcm), pcm


@pytest.mark.parametrize("options, expected", [
    ("", "This is ********, **** it."),  # Translator's default: Marked with asterisks
    ("&ProfanityAction=Marked&ProfanityMarker=Tag", "This is <profanity>bullshit</profanity>, <profanity>damn</profanity> it."),
    ("&ProfanityAction=Deleted", "This is, it."),
])
def test_translator_v1_profanity_actions(gateway, rude_wav, options, expected):
    ws = websocket.create_connection(gateway.base_url + V1 + options, timeout=60)
    ws.send_binary(streaming_header() + rude_wav[1].astype("<i2").tobytes())
    final = json.loads(ws.recv())
    ws.close()
    assert final["recognition"] == expected
    assert "bullshit" not in final["translation"].replace("<profanity>bullshit", "")


@pytest.mark.parametrize("option, expected", [(None, "This is ********, **** it."),
                                              ("Raw", "This is bullshit, damn it."),
                                              ("Removed", "This is, it.")])
def test_usp_profanity_through_the_sdk(gateway, rude_wav, option, expected):
    config = speechsdk.SpeechConfig(endpoint=gateway.base_url + "/speech/recognition/interactive/cognitiveservices/v1")
    config.speech_recognition_language = "en-US"
    if option:
        config.set_profanity(getattr(speechsdk.ProfanityOption, option))
    recognizer = speechsdk.SpeechRecognizer(speech_config=config,
                                            audio_config=speechsdk.audio.AudioConfig(filename=str(rude_wav[0])))
    assert recognizer.recognize_once().text == expected


@pytest.mark.parametrize("query", [V1 + "&ProfanityAction=Shout", V1 + "&ProfanityMarker=Bold",
                                   "/speech/translation/cognitiveservices/v1?from=en-US&to=es&profanity=loud"])
def test_unknown_profanity_options_are_400(gateway, query):
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(gateway.base_url + query, timeout=10)
    assert refused.value.status_code == 400 and "rofanity" in refused.value.resp_body.decode()
