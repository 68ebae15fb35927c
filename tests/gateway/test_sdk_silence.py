"""Silence as an app on the official Python Speech SDK meets it (issue 22): recognize_once ends with
NoMatch/InitialSilenceTimeout when the configured (or the service's default) time passes without
speech, pushed in real time as from a live microphone; segmentation silence joins phrases."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from tests.support.data import shared_data_dir
from tests.support.sdk import recognize_until_stopped
from tests.support.speech import wer_bound, word_errors

speechsdk = pytest.importorskip("azure.cognitiveservices.speech")
CHUNK_S = 0.1


def live_silence(seconds: float):
    """A push stream fed silence in real time by a thread, as a quiet room's microphone would."""
    stream = speechsdk.audio.PushAudioInputStream()
    stop = threading.Event()

    def feed():
        chunk = np.zeros(int(16000 * CHUNK_S), dtype=np.int16).tobytes()
        start = time.monotonic()
        for n in range(int(seconds / CHUNK_S)):
            if stop.wait(max(0.0, start + n * CHUNK_S - time.monotonic())):
                break
            stream.write(chunk)
        stream.close()

    threading.Thread(target=feed, daemon=True).start()
    return speechsdk.audio.AudioConfig(stream=stream), stop


def timed_once(recognizer) -> tuple[object, float]:
    start = time.monotonic()
    result = recognizer.recognize_once_async().get()
    return result, time.monotonic() - start


@pytest.mark.parametrize("kind, timeout_ms", [("speech", 2000), ("speech", None), ("translation", 1500)])
def test_recognize_once_on_silence_ends_with_initial_silence_timeout(gateway, kind, timeout_ms):
    audio, stop = live_silence(10.0)
    if kind == "speech":
        config = speechsdk.SpeechConfig(host=gateway.base_url)
    else:
        config = speechsdk.translation.SpeechTranslationConfig(
            endpoint=f"{gateway.base_url}/speech/translation/cognitiveservices/v1")
        config.add_target_language("es")
    config.speech_recognition_language = "en-US"
    if timeout_ms is not None:
        config.set_property(speechsdk.PropertyId.SpeechServiceConnection_InitialSilenceTimeoutMs, str(timeout_ms))
    recognizer = (speechsdk.SpeechRecognizer(speech_config=config, audio_config=audio) if kind == "speech" else
                  speechsdk.translation.TranslationRecognizer(translation_config=config, audio_config=audio))
    try:
        result, elapsed_s = timed_once(recognizer)
    finally:
        stop.set()
    assert result.reason == speechsdk.ResultReason.NoMatch, result
    assert result.no_match_details.reason == speechsdk.NoMatchReason.InitialSilenceTimeout
    expected_s = (timeout_ms or 5000) / 1000  # 5 s: the service's single-shot default
    assert abs(elapsed_s - expected_s) <= 0.5, elapsed_s


def test_segmentation_silence_from_the_property_joins_phrases(gateway, two_utterance_wav):
    """Two utterances 1 s apart: one phrase when segmentation silence is 2 s (the default 600 ms gives two)."""
    path, references = two_utterance_wav
    config = speechsdk.SpeechConfig(host=gateway.base_url)
    config.speech_recognition_language = "en-US"
    config.set_property(speechsdk.PropertyId.Speech_SegmentationSilenceTimeoutMs, "2000")
    recognizer = speechsdk.SpeechRecognizer(speech_config=config,
                                            audio_config=speechsdk.audio.AudioConfig(filename=str(path)))
    finals = recognize_until_stopped(recognizer, timeout_s=90)
    heard = [r.text for r in finals if r.reason == speechsdk.ResultReason.RecognizedSpeech]
    assert len(heard) == 1, heard
    errors, words = word_errors(" ".join(references), heard[0])
    assert errors / words <= wer_bound(shared_data_dir())


def test_recognize_once_without_speech_on_the_conversation_path_gets_its_no_match(gateway, wav_file):
    """A turn that hears nothing ends with its NoMatch final when the audio ends, not a 60 s ServiceTimeout."""
    path = wav_file("quiet.wav", np.zeros(3 * 16000, dtype=np.int16))
    config = speechsdk.SpeechConfig(endpoint=gateway.base_url + "/speech/recognition/conversation/cognitiveservices/v1")
    config.speech_recognition_language = "en-US"
    recognizer = speechsdk.SpeechRecognizer(speech_config=config,
                                            audio_config=speechsdk.audio.AudioConfig(filename=str(path)))
    result, elapsed_s = timed_once(recognizer)
    assert result.reason == speechsdk.ResultReason.NoMatch
    assert elapsed_s < 10
