"""The gateway's Azure USP endpoints: raw protocol checks and the official Speech SDK as a client."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import websocket

from parley_common.protocols.usp import build_binary, build_text, new_request_id, parse_binary, parse_text
from parley_common.protocols.wav import streaming_header
from tests.support.data import shared_data_dir
from tests.support.speech import english_samples

speechsdk = pytest.importorskip("azure.cognitiveservices.speech")


def run_turn(url: str, pcm: np.ndarray, context: dict) -> list:
    ws = websocket.create_connection(url, timeout=30, subprotocols=["USP"])
    turn = new_request_id()
    ws.send(build_text("speech.config", None, {"context": {}}))
    ws.send(build_text("speech.context", turn, context))
    ws.send_binary(build_binary("audio", turn, streaming_header(), {"Content-Type": "audio/x-wav"}))
    for i in range(0, len(pcm), 1600):
        ws.send_binary(build_binary("audio", turn, pcm[i:i + 1600].astype("<i2").tobytes()))
    ws.send_binary(build_binary("audio", turn, b""))
    messages = []
    while True:
        opcode, data = ws.recv_data()
        message = parse_text(data.decode()) if opcode == websocket.ABNF.OPCODE_TEXT else parse_binary(data)
        messages.append(message)
        if message.path == "turn.end":
            break
    ws.close()
    assert all(m.request_id == turn for m in messages)
    return messages


def test_v1_flavour_message_sequence_offsets_and_synthesis(gateway):
    _, pcm = english_samples(shared_data_dir(), limit=1)[0]
    pcm = np.concatenate([np.zeros(8000, np.int16), pcm])
    url = f"{gateway.base_url}/speech/translation/cognitiveservices/v1?from=en-US&to=es&to=ca&features=texttospeech&voice=es-ES-ElviraNeural"
    messages = run_turn(url, pcm, {"translation": {"targetLanguages": ["es", "ca"]}})
    paths = [m.path for m in messages]
    assert paths[0] == "turn.start" and paths[1] == "speech.startDetected" and paths[-1] == "turn.end"
    assert "translation.hypothesis" in paths
    phrase = messages[paths.index("translation.phrase")].json()
    end_detected = messages[paths.index("translation.phrase") - 1]  # where the service sends it, per phrase
    assert end_detected.path == "speech.endDetected"
    assert end_detected.json()["Offset"] == phrase["Offset"] + phrase["Duration"] > 0
    assert phrase["RecognitionStatus"] == "Success"
    assert {t["Language"] for t in phrase["Translation"]["Translations"]} == {"es", "ca"}
    assert 0 < phrase["Offset"] < 8000 * 625  # ticks from the turn's first sample; speech began at 0.5 s
    assert phrase["Offset"] + phrase["Duration"] <= len(pcm) * 625
    synthesis = messages[paths.index("translation.synthesis")]
    assert synthesis.body[:4] == b"RIFF"
    assert messages[paths.index("translation.synthesis.end")].json() == {"SynthesisStatus": "Success"}
    assert paths.index("translation.phrase") < paths.index("translation.synthesis")


def test_v2_flavour_takes_languages_from_the_context_and_streams_tts_with_stream_ids(gateway):
    _, pcm = english_samples(shared_data_dir(), limit=1)[0]
    context = {"phraseDetection": {"mode": "CONVERSATION", "language": "en-US"},
               "translation": {"targetLanguages": ["ca"]},
               "synthesis": {"defaultVoices": {"ca": "ca-ES-JoanaNeural"}}}
    messages = run_turn(f"{gateway.base_url}/stt/speech/universal/v2", pcm, context)
    responses = [m.json() for m in messages if m.path == "translation.response"]
    assert any("SpeechHypothesis" in r for r in responses)
    final = next(r for r in responses if "SpeechPhrase" in r)
    assert final["SpeechPhrase"]["RecognitionStatus"] == "Success"
    assert [t["Language"] for t in final["Translations"]] == ["ca"]
    start = next(m for m in messages if m.path == "audio.start")
    audio = next(m for m in messages if m.path == "audio")
    assert start.json() == {"TranslationLanguage": "ca"}
    assert start.headers["x-streamid"] == audio.headers["x-streamid"]
    assert audio.body[:4] == b"RIFF"


def sdk_config(gateway, use_host: bool):
    if use_host:
        config = speechsdk.translation.SpeechTranslationConfig(host=gateway.base_url)
    else:
        config = speechsdk.translation.SpeechTranslationConfig(
            endpoint=f"{gateway.base_url}/speech/translation/cognitiveservices/v1")
    config.speech_recognition_language = "en-US"
    config.add_target_language("es")
    config.add_target_language("ca")
    config.voice_name = "es-ES-ElviraNeural"
    return config


def collect(recognizer):
    events = {"recognizing": [], "recognized": [], "synthesizing": [], "canceled": []}
    recognizer.recognizing.connect(lambda e: events["recognizing"].append(e.result.text))
    recognizer.recognized.connect(lambda e: events["recognized"].append(
        (e.result.reason, e.result.text, dict(e.result.translations))))
    recognizer.synthesizing.connect(lambda e: events["synthesizing"].append(len(e.result.audio)))
    recognizer.canceled.connect(lambda e: events["canceled"].append(e.result.cancellation_details.reason))
    return events


@pytest.mark.parametrize("use_host", [False, True], ids=["endpoint-v1", "host-v2"])
def test_official_sdk_recognize_once(gateway, two_utterance_wav, use_host):
    path, _ = two_utterance_wav
    recognizer = speechsdk.translation.TranslationRecognizer(
        translation_config=sdk_config(gateway, use_host), audio_config=speechsdk.audio.AudioConfig(filename=str(path)))
    events = collect(recognizer)
    result = recognizer.recognize_once()
    assert result.reason == speechsdk.ResultReason.TranslatedSpeech
    assert result.text and set(result.translations) == {"es", "ca"}
    assert events["recognizing"]
    deadline = time.monotonic() + 5
    while not any(n > 0 for n in events["synthesizing"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert any(n > 0 for n in events["synthesizing"])


@pytest.mark.parametrize("use_host", [False, True], ids=["endpoint-v1", "host-v2"])
def test_official_sdk_continuous_recognition_over_several_utterances(gateway, two_utterance_wav, use_host):
    path, references = two_utterance_wav
    recognizer = speechsdk.translation.TranslationRecognizer(
        translation_config=sdk_config(gateway, use_host), audio_config=speechsdk.audio.AudioConfig(filename=str(path)))
    events = collect(recognizer)
    stopped = threading.Event()
    recognizer.session_stopped.connect(lambda e: stopped.set())
    recognizer.start_continuous_recognition()
    assert stopped.wait(60)
    recognizer.stop_continuous_recognition()
    translated = [r for r in events["recognized"] if r[0] == speechsdk.ResultReason.TranslatedSpeech]
    assert len(translated) == len(references)
    assert all(set(r[2]) == {"es", "ca"} and r[2]["es"] for r in translated)
    assert len([n for n in events["synthesizing"] if n > 0]) == len(references)
    assert len(events["recognizing"]) >= len(references)
    assert events["canceled"] == [speechsdk.CancellationReason.EndOfStream]
