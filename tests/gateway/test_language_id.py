"""Language identification among candidate languages (USP v2 ``languageId``), as Azure offers it:
a raw protocol client and the official Speech SDK's auto-detect against the real gateway."""

from __future__ import annotations

import numpy as np
import pytest
import websocket

from agent.audio.synth import speak
from gateway.config import GatewayConfig, RecognitionConfig, SourceLanguageConfig
from gateway.engines.language_id import LanguageRule, choose_language
from gateway.server import GatewayThread
from parley_common.protocols.usp import build_binary, build_text, new_request_id
from parley_common.protocols.wav import streaming_header
from tests.gateway.test_bad_input import close_frame
from tests.gateway.test_usp import run_turn
from tests.support.sdk import auto_detect_recognizer, recognize_until_stopped
from tests.support.speech import word_error_rate
from tests.support.wavfiles import write_wav

speechsdk = pytest.importorskip("azure.cognitiveservices.speech")

SPANISH = "Buenos días. La estación de tren está muy cerca de aquí."
ENGLISH = "Good morning. Where is the train station?"
SILENCE = np.zeros(16000, np.int16)
# Measured 0.0-0.2 on each two-sentence phrase; recognized in the wrong language, WER is near 1.
RECOGNIZED_WER_BOUND = 0.5


@pytest.fixture(scope="module")
def spanish_then_english() -> np.ndarray:
    return np.concatenate([SILENCE, speak(SPANISH, voice="es"), SILENCE, speak(ENGLISH, voice="en-us"), SILENCE])


def test_each_phrase_is_recognized_and_translated_in_the_language_it_was_spoken_in(gateway, spanish_then_english):
    context = {"phraseDetection": {"mode": "CONVERSATION"},
               "languageId": {"languages": ["en-US", "es-ES"], "mode": "DetectContinuous",
                              "onSuccess": {"action": "Recognize"}, "onUnknown": {"action": "None"}},
               "translation": {"targetLanguages": ["en", "es"], "onPassthrough": {"action": "None"},
                               "onSuccess": {"action": "Synthesize"}},
               "synthesis": {"defaultVoices": {"en": "en-US-JennyNeural", "es": "es-ES-ElviraNeural"}}}
    messages = run_turn(f"{gateway.base_url}/stt/speech/universal/v2", spanish_then_english, context)
    finals = [m.json() for m in messages if m.path == "translation.response" and "SpeechPhrase" in m.json()]
    assert [f["SpeechPhrase"]["PrimaryLanguage"]["Language"] for f in finals] == ["es-ES", "en-US"]
    spanish, english = ({t["Language"]: t["Text"] for t in f["Translations"]} for f in finals)
    assert spanish["es"] == finals[0]["SpeechPhrase"]["DisplayText"]  # passthrough: the recognized text itself
    # each phrase recognized in its own language: WER over both sentences of each, with margin
    assert word_error_rate(SPANISH, spanish["es"]) <= RECOGNIZED_WER_BOUND, spanish
    assert word_error_rate(ENGLISH, english["en"]) <= RECOGNIZED_WER_BOUND and english["es"] != english["en"], english
    assert spanish["en"] and spanish["en"] != spanish["es"]
    # spoken: only the other language each time (onPassthrough None), one audio stream per phrase
    assert [m.json()["TranslationLanguage"] for m in messages if m.path == "audio.start"] == ["en", "es"]


def close_after_identification_request(gateway, candidates: list[str]) -> tuple[int, str]:
    """Open a v2 turn asking to identify among ``candidates`` (into Spanish); how the gateway closes."""
    ws = websocket.create_connection(f"{gateway.base_url}/stt/speech/universal/v2", timeout=30, subprotocols=["USP"])
    turn = new_request_id()
    ws.send(build_text("speech.context", turn, {"languageId": {"languages": candidates},
                                                 "translation": {"targetLanguages": ["es"]}}))
    ws.send_binary(build_binary("audio", turn, streaming_header(), {"Content-Type": "audio/x-wav"}))
    return close_frame(ws)


def test_a_candidate_without_a_recognizer_is_refused_by_name(gateway):
    code, reason = close_after_identification_request(gateway, ["en-US", "xx-YY"])
    assert code == 1007 and "xx-YY" in reason and "en-US" in reason


@pytest.mark.slow
def test_a_gateway_without_whisper_refuses_identification_by_name():
    light = GatewayConfig(port=0, recognition=RecognitionConfig(
        languages={"en-US": SourceLanguageConfig(engine="pocketsphinx")}))
    with GatewayThread(light) as gateway:
        code, reason = close_after_identification_request(gateway, ["en-US"])
    assert code == 1007 and "language identification needs a Whisper language" in reason


def test_the_official_sdk_auto_detects_the_source_language(gateway, spanish_then_english, tmp_path):
    path = tmp_path / "two-languages.wav"
    write_wav(path, spanish_then_english)
    recognized = recognize_until_stopped(
        auto_detect_recognizer(gateway.base_url, path, ["en-US", "es-ES"], ("en", "es")), timeout_s=90)
    translated = [r for r in recognized if r.reason == speechsdk.ResultReason.TranslatedSpeech]
    languages = [r.properties.get(speechsdk.PropertyId.SpeechServiceConnection_AutoDetectSourceLanguageResult)
                 for r in translated]
    assert languages == ["es-ES", "en-US"]
    assert word_error_rate(ENGLISH, translated[1].translations["en"]) <= RECOGNIZED_WER_BOUND  # passthrough


@pytest.mark.parametrize("probabilities, expected, audio_s, chosen", [
    ({"en-US": 0.97, "es-ES": 0.03}, None, 0.7, "en-US"),  # no seat: the detector decides
    ({"en-US": 0.97, "es-ES": 0.03}, "es-ES", 0.7, "es-ES"),  # "Sí.": too short to overrule the seat
    ({"en-US": 0.97, "es-ES": 0.03}, "es-ES", 2.0, "en-US"),  # sure, over enough audio: the seat was wrong
    ({"en-US": 0.80, "es-ES": 0.20}, "es-ES", 3.0, "es-ES"),  # not sure enough to overrule
    ({"en-US": 0.10, "es-ES": 0.90}, "es-ES", 0.2, "es-ES"),  # agreement
])
def test_an_expected_language_stands_unless_the_detector_is_sure_of_another(probabilities, expected, audio_s, chosen):
    assert choose_language(probabilities, expected, audio_s, LanguageRule(0.9, 1.0)).language == chosen
