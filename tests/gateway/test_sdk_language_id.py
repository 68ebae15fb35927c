"""Language identification as SDK apps ask for it (issue 22): SpeechRecognizer with
AutoDetectSourceLanguageConfig on the recognition paths, at-start and continuous, a candidate that
cannot reach a target, and the JavaScript SDK's fromHost auto-detect translation."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from agent.audio.synth import speak
from tests.support.sdk import recognize_until_stopped
from tests.support.wavfiles import write_wav

speechsdk = pytest.importorskip("azure.cognitiveservices.speech")
SPANISH = "Buenos días. La estación de tren está muy cerca de aquí."
ENGLISH = "Good morning. Where is the train station?"
JS_CLIENT = Path(__file__).parent.parent / "js" / "sdk_client.js"


@pytest.fixture(scope="module")
def spanish_then_english(tmp_path_factory) -> Path:
    silence = np.zeros(16000, np.int16)
    pcm = np.concatenate([silence, speak(SPANISH, voice="es"), silence, speak(ENGLISH, voice="en-us"), silence])
    return write_wav(tmp_path_factory.mktemp("lid") / "es-en.wav", pcm)


def detected(result) -> str:
    return result.properties.get(speechsdk.PropertyId.SpeechServiceConnection_AutoDetectSourceLanguageResult)


def speech_recognizer(gateway, path: Path, mode: str | None):
    config = speechsdk.SpeechConfig(host=gateway.base_url)
    if mode:
        config.set_property(speechsdk.PropertyId.SpeechServiceConnection_LanguageIdMode, mode)
    return speechsdk.SpeechRecognizer(
        speech_config=config, audio_config=speechsdk.audio.AudioConfig(filename=str(path)),
        auto_detect_source_language_config=speechsdk.languageconfig.AutoDetectSourceLanguageConfig(
            languages=["en-US", "es-ES"]))


@pytest.mark.parametrize("mode, languages", [("Continuous", ["es-ES", "en-US"]), (None, ["es-ES", "es-ES"])],
                         ids=["continuous", "at-start"])
def test_speech_recognizer_auto_detect_per_phrase_or_once(gateway, spanish_then_english, mode, languages):
    """Continuous: each phrase in its own language; at start (the SDK's default): the first verdict stands."""
    recognized = recognize_until_stopped(speech_recognizer(gateway, spanish_then_english, mode), timeout_s=90)
    heard = [r for r in recognized if r.reason == speechsdk.ResultReason.RecognizedSpeech]
    assert [detected(r) for r in heard] == languages
    if mode == "Continuous":
        assert "estación" in heard[0].text.lower() and "station" in heard[1].text.lower()


def test_a_candidate_that_cannot_reach_the_target_fails_its_phrase_not_the_session(gateway, spanish_then_english):
    """es -> ca is not installed, en -> ca is: the Spanish phrase comes back untranslated, the English one translated."""
    config = speechsdk.translation.SpeechTranslationConfig(host=gateway.base_url)
    config.add_target_language("ca")
    config.set_property(speechsdk.PropertyId.SpeechServiceConnection_LanguageIdMode, "Continuous")
    recognizer = speechsdk.translation.TranslationRecognizer(
        translation_config=config, audio_config=speechsdk.audio.AudioConfig(filename=str(spanish_then_english)),
        auto_detect_source_language_config=speechsdk.languageconfig.AutoDetectSourceLanguageConfig(
            languages=["en-US", "es-ES"]))
    finals = [r for r in recognize_until_stopped(recognizer, timeout_s=90)
              if r.reason in (speechsdk.ResultReason.RecognizedSpeech, speechsdk.ResultReason.TranslatedSpeech)]
    assert [r.reason for r in finals] == [speechsdk.ResultReason.RecognizedSpeech, speechsdk.ResultReason.TranslatedSpeech]
    assert [detected(r) for r in finals] == ["es-ES", "en-US"]
    assert finals[1].translations["ca"]


@pytest.mark.skipif(not shutil.which("node") or not (JS_CLIENT.parent / "node_modules").is_dir(),
                    reason="the JavaScript SDK is not installed: run `make deps`")
def test_js_sdk_from_host_auto_detect_translation(gateway, spanish_then_english):
    run = subprocess.run(["node", str(JS_CLIENT), "translate-auto", gateway.base_url, str(spanish_then_english)],
                         capture_output=True, text=True, timeout=200)
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert run.returncode == 0, (run.stdout[-2000:], run.stderr[-2000:])
    finals = [e for e in events if e["event"] == "recognized" and e["reason"] == "TranslatedSpeech"]
    assert [e["language"] for e in finals] == ["es-ES", "en-US"]
    assert "station" in finals[1]["en"].lower() and finals[0]["en"]
