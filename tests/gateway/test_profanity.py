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


@pytest.mark.parametrize("option", [None, "Raw"])
def test_translations_are_filtered_in_their_own_language(gateway, wav_file, option):
    """The English list carried into Spanish and Catalan: "hell" -> "infierno"/"infern" masked too, and an
    English word the translator leaves as it is ("damn")."""
    path = wav_file("rude-es.wav", np.concatenate([np.zeros(8000, np.int16), speak("What the hell, damn it."),
                                                   np.zeros(24000, np.int16)]))
    config = speechsdk.translation.SpeechTranslationConfig(
        endpoint=gateway.base_url + "/speech/translation/cognitiveservices/v1")
    config.speech_recognition_language = "en-US"
    for target in ("es", "ca"):
        config.add_target_language(target)
    if option:
        config.set_profanity(getattr(speechsdk.ProfanityOption, option))
    result = speechsdk.translation.TranslationRecognizer(
        translation_config=config, audio_config=speechsdk.audio.AudioConfig(filename=str(path))).recognize_once()
    spanish, catalan = result.translations["es"].lower(), result.translations["ca"].lower()
    rude = ("infierno" in spanish, "infern" in catalan, "damn" in spanish + catalan)
    assert rude == ((True, True, True) if option == "Raw" else (False, False, False)), (spanish, catalan)


def test_detailed_words_carry_the_profanity_option_too(gateway, rude_wav):
    config = speechsdk.SpeechConfig(host=gateway.base_url)
    config.speech_recognition_language = "en-US"
    config.output_format = speechsdk.OutputFormat.Detailed
    config.request_word_level_timestamps()
    result = speechsdk.SpeechRecognizer(speech_config=config,
                                        audio_config=speechsdk.audio.AudioConfig(filename=str(rude_wav[0]))).recognize_once()
    best = json.loads(result.json)["NBest"][0]
    words = [w["Word"] for w in best["Words"]]
    assert "bullshit" not in words and "damn" not in words and "****" in words, words
    assert " ".join(words) == best["MaskedITN"]
