"""The gateway as a drop-in for the service, as the official Python Speech SDK sees it (issue 9)."""

from __future__ import annotations

import json
import threading
import time

import pytest


from tests.support.data import shared_data_dir
from tests.support.speech import wer_bound, word_errors

speechsdk = pytest.importorskip("azure.cognitiveservices.speech")
RECOGNITION = "/speech/recognition/{}/cognitiveservices/v1"


def translation_config(gateway, use_host: bool, source: str = "en-US"):
    if use_host:
        config = speechsdk.translation.SpeechTranslationConfig(host=gateway.base_url)
    else:
        config = speechsdk.translation.SpeechTranslationConfig(
            endpoint=f"{gateway.base_url}/speech/translation/cognitiveservices/v1")
    config.speech_recognition_language = source
    config.add_target_language("es")
    config.voice_name = "es-ES-ElviraNeural"
    return config


def file_audio(path) -> "speechsdk.audio.AudioConfig":
    return speechsdk.audio.AudioConfig(filename=str(path))


def assert_heard(reference: str, text: str) -> None:
    errors, words = word_errors(reference, text)
    assert errors / words <= wer_bound(shared_data_dir()), (reference, text)


@pytest.mark.parametrize("use_host", [False, True], ids=["endpoint-v1", "host-v2"])
def test_single_shot_is_one_phrase_with_its_end_detected(gateway, two_utterance_wav, use_host):
    path, references = two_utterance_wav
    recognizer = speechsdk.translation.TranslationRecognizer(
        translation_config=translation_config(gateway, use_host), audio_config=file_audio(path))
    recognized, synthesized, ends = [], [], []
    recognizer.recognized.connect(lambda e: recognized.append(e.result.text))
    recognizer.synthesizing.connect(lambda e: synthesized.append(len(e.result.audio)))
    recognizer.speech_end_detected.connect(lambda e: ends.append(e.offset))
    result = recognizer.recognize_once()
    assert result.reason == speechsdk.ResultReason.TranslatedSpeech
    assert_heard(references[0], result.text)
    time.sleep(3)  # anything the gateway sent after the first phrase would have arrived by now
    assert recognized == [result.text]
    assert len([n for n in synthesized if n > 0]) == 1
    assert ends == [result.offset + result.duration]


@pytest.mark.parametrize("mode", ["interactive", "conversation", "dictation"])
def test_speech_recognizer_single_shot_on_every_recognition_path(gateway, two_utterance_wav, mode):
    path, references = two_utterance_wav
    config = speechsdk.SpeechConfig(endpoint=gateway.base_url + RECOGNITION.format(mode))
    config.speech_recognition_language = "en-US"
    recognizer = speechsdk.SpeechRecognizer(speech_config=config, audio_config=file_audio(path))
    result = recognizer.recognize_once()
    assert result.reason == speechsdk.ResultReason.RecognizedSpeech
    assert_heard(references[0], result.text)
    body = json.loads(result.json)
    assert body["DisplayText"] == result.text and "NBest" not in body


def test_speech_recognizer_continuous_detailed_through_host(gateway, two_utterance_wav):
    path, references = two_utterance_wav
    config = speechsdk.SpeechConfig(host=gateway.base_url)
    config.speech_recognition_language = "en-US"
    config.output_format = speechsdk.OutputFormat.Detailed
    recognizer = speechsdk.SpeechRecognizer(speech_config=config, audio_config=file_audio(path))
    finals, partials, stopped = [], [], threading.Event()
    recognizer.recognized.connect(lambda e: finals.append(e.result))
    recognizer.recognizing.connect(lambda e: partials.append(e.result.text))
    recognizer.session_stopped.connect(lambda e: stopped.set())
    recognizer.start_continuous_recognition()
    assert stopped.wait(120)
    recognizer.stop_continuous_recognition()
    heard = [r for r in finals if r.reason == speechsdk.ResultReason.RecognizedSpeech]
    assert len(heard) == len(references) and partials
    for reference, result in zip(references, heard):
        assert_heard(reference, result.text)
        best = json.loads(result.json)["NBest"][0]
        assert best["Display"] == result.text and best["Lexical"] == best["Lexical"].lower()
        assert "," not in best["Lexical"] and "." not in best["Lexical"]


def test_a_400_reason_reaches_the_application(gateway, two_utterance_wav):
    path, _ = two_utterance_wav
    recognizer = speechsdk.translation.TranslationRecognizer(
        translation_config=translation_config(gateway, False, source="fr-FR"), audio_config=file_audio(path))
    result = recognizer.recognize_once()
    assert result.reason == speechsdk.ResultReason.Canceled
    details = result.cancellation_details
    assert details.code == speechsdk.CancellationErrorCode.BadRequest
    assert "unsupported source language 'fr-FR'; installed: en-US" in details.error_details
