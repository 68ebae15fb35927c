"""The official JavaScript Speech SDK (npm, installed by `make deps` into tests/js) against the gateway:
push-stream continuous TranslationRecognizer and SpeechRecognizer."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest


from tests.support.data import shared_data_dir
from tests.support.speech import wer_bound, word_errors

CLIENT = Path(__file__).parent.parent / "js" / "sdk_client.js"
if not shutil.which("node") or not (CLIENT.parent / "node_modules" / "microsoft-cognitiveservices-speech-sdk").is_dir():
    pytest.skip("the JavaScript SDK is not installed: run `make deps`", allow_module_level=True)


@pytest.mark.parametrize("kind, path, reason", [
    ("translate", "/speech/translation/cognitiveservices/v1", "TranslatedSpeech"),
    ("recognize", "/speech/recognition/conversation/cognitiveservices/v1", "RecognizedSpeech"),
])
def test_js_sdk_push_stream_continuous(gateway, two_utterance_wav, kind, path, reason):
    wav, references = two_utterance_wav
    run = subprocess.run(["node", str(CLIENT), kind, gateway.base_url + path, str(wav)],
                         capture_output=True, text=True, timeout=280)
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    assert run.returncode == 0, (run.stdout[-2000:], run.stderr[-2000:])
    finals = [e for e in events if e["event"] == "recognized" and e["reason"] == reason]
    assert len(finals) == len(references)
    for reference, final in zip(references, finals):
        errors, words = word_errors(reference, final["text"])
        assert errors / words <= wer_bound(shared_data_dir())
        assert kind != "translate" or final["es"]
    assert any(e["event"] == "recognizing" for e in events)
    assert [e["reason"] for e in events if e["event"] == "canceled"] == ["EndOfStream"]
