"""Detailed output as the official Python SDK asks for it (issue 22): NBest with a confidence, ITN and
Lexical forms that differ where numbers are said, and word timings inside the phrase; NBest on
translation results too."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from agent.audio.synth import speak
from tests.support.data import shared_data_dir
from tests.support.sdk import recognize_until_stopped
from tests.support.speech import english_samples

speechsdk = pytest.importorskip("azure.cognitiveservices.speech")
NUMBER_SENTENCE = "for the twentieth time that evening the two men shook hands"


@pytest.fixture(scope="module")
def numbers_wav(wav_file):
    """The recording that says "twentieth" (CMU ARCTIC a0003) when shared, else espeak-ng saying it, and another."""
    recorded = dict(english_samples(shared_data_dir(), limit=7))
    pcm = recorded.get(NUMBER_SENTENCE)
    if pcm is None:
        pcm = speak("For the twentieth time that evening, the two men shook hands.")
    gap = np.zeros(16000, dtype=np.int16)
    other = english_samples(shared_data_dir(), limit=1)[0][1]
    return wav_file("numbers.wav", np.concatenate([gap, pcm, gap, other, gap]))


def test_nbest_has_confidence_itn_lexical_and_monotonic_words(gateway, numbers_wav):
    config = speechsdk.SpeechConfig(host=gateway.base_url)
    config.speech_recognition_language = "en-US"
    config.output_format = speechsdk.OutputFormat.Detailed
    config.request_word_level_timestamps()
    finals = [r for r in recognize_until_stopped(speechsdk.SpeechRecognizer(
        speech_config=config, audio_config=speechsdk.audio.AudioConfig(filename=str(numbers_wav))))
        if r.reason == speechsdk.ResultReason.RecognizedSpeech]
    assert len(finals) == 2
    for result in finals:
        best = json.loads(result.json)["NBest"][0]
        assert 0.0 < best["Confidence"] <= 1.0
        assert not re.search(r"\d", best["Lexical"]) and best["ITN"] == best["ITN"].lower()
        if re.search(r"\d", best["Display"]):  # "20th": ITN keeps the digits, Lexical says the word
            assert best["ITN"] != best["Lexical"]
        words = best["Words"]
        assert len(words) >= 3
        offsets = [w["Offset"] for w in words]
        assert offsets == sorted(offsets)
        start, end = result.offset, result.offset + result.duration
        assert all(start <= w["Offset"] and w["Offset"] + w["Duration"] <= end for w in words)
        assert " ".join(w["Word"] for w in words).split() == best["ITN"].split()
    assert "twentieth" in json.loads(finals[0].json)["NBest"][0]["Lexical"]


def test_translation_results_carry_nbest_when_detailed(gateway, numbers_wav):
    config = speechsdk.translation.SpeechTranslationConfig(
        endpoint=f"{gateway.base_url}/speech/translation/cognitiveservices/v1")
    config.speech_recognition_language = "en-US"
    config.add_target_language("es")
    config.output_format = speechsdk.OutputFormat.Detailed
    result = speechsdk.translation.TranslationRecognizer(
        translation_config=config, audio_config=speechsdk.audio.AudioConfig(filename=str(numbers_wav))).recognize_once()
    assert result.reason == speechsdk.ResultReason.TranslatedSpeech
    best = json.loads(result.json)["NBest"][0]
    assert best["Display"] == result.text and 0.0 < best["Confidence"] <= 1.0 and result.translations["es"]
