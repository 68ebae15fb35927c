"""The official Speech SDK (azure-cognitiveservices-speech) as a client in tests, and the agent's
uplink on the same audio: the two sides of every wire comparison."""

from __future__ import annotations

import queue
import threading

import numpy as np

from agent.uplink import make_uplink
from tests.support.talker import Talker, wait_for_finals


def auto_detect_recognizer(host: str, wav_path, candidates: list[str], targets: tuple[str, ...], key: str | None = None):
    """A TranslationRecognizer on ``host`` (the v2 path) that identifies the language among ``candidates``
    continuously, as an app built on the SDK's AutoDetectSourceLanguageConfig does."""
    import azure.cognitiveservices.speech as speechsdk

    config = speechsdk.translation.SpeechTranslationConfig(host=host, subscription=key)
    for target in targets:
        config.add_target_language(target)
    config.set_property(speechsdk.PropertyId.SpeechServiceConnection_LanguageIdMode, "Continuous")
    return speechsdk.translation.TranslationRecognizer(
        translation_config=config, audio_config=speechsdk.audio.AudioConfig(filename=str(wav_path)),
        auto_detect_source_language_config=speechsdk.languageconfig.AutoDetectSourceLanguageConfig(
            languages=candidates))


def recognize_until_stopped(recognizer, timeout_s: float = 60.0) -> list:
    """Continuous recognition of the whole file: the recognized results, once the session stopped or was
    cancelled (which fails the test if it has not within ``timeout_s``)."""
    recognized, stopped = [], threading.Event()
    recognizer.recognized.connect(lambda e: recognized.append(e.result))
    recognizer.session_stopped.connect(lambda e: stopped.set())
    recognizer.canceled.connect(lambda e: stopped.set())
    recognizer.start_continuous_recognition()
    assert stopped.wait(timeout_s), "the SDK's session did not stop"
    recognizer.stop_continuous_recognition()
    return recognized


def say_through_uplink(config, pcm: np.ndarray) -> list:
    """One utterance through a real uplink built from ``config``: every event until its final."""
    results = queue.Queue(maxsize=1000)
    uplink = make_uplink(config, results)
    uplink.start()
    try:
        utterance = Talker(uplink, speed=4.0).say(pcm)
        return wait_for_finals(results, {utterance})
    finally:
        uplink.close()
