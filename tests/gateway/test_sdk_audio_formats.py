"""Telephone audio through the official Python SDK (issue 22): 8 kHz PCM and 8 kHz µ-law push streams
are recognized about as well as the 16 kHz original, over several sentences; A-law shares the path
(tests/gateway/test_audio_formats.py checks its table)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soxr

from gateway.audio_formats import _alaw_table, _mulaw_table
from tests.support.data import shared_data_dir
from tests.support.sdk import recognize_until_stopped
from tests.support.speech import english_samples, wer_bound, word_errors

speechsdk = pytest.importorskip("azure.cognitiveservices.speech")
# espeak-ng's voice (when the shared recordings are absent) loses more in the telephone band
WER_MARGIN = 0.1 if shared_data_dir() else 0.2


@pytest.fixture(scope="module")
def sentences():
    samples = english_samples(shared_data_dir(), limit=4)
    gap = np.zeros(16000, dtype=np.int16)
    return [reference for reference, _ in samples], np.concatenate([gap] + [x for _, pcm in samples for x in (pcm, gap)])


def g711_encode(pcm: np.ndarray, table: np.ndarray) -> bytes:
    """Each sample as the code whose level is nearest: what a G.711 encoder does."""
    order = np.argsort(table)
    levels = table[order].astype(np.int32)
    index = np.clip(np.searchsorted(levels, pcm.astype(np.int32)), 1, len(levels) - 1)
    nearer_below = (pcm - levels[index - 1]) < (levels[index] - pcm)
    return order[np.where(nearer_below, index - 1, index)].astype(np.uint8).tobytes()


def as_sent(pcm16k: np.ndarray, kind: str):
    """(the SDK's stream format, the bytes an app would push) for ``kind``."""
    if kind == "pcm16k":
        return speechsdk.audio.AudioStreamFormat(samples_per_second=16000), pcm16k.tobytes()
    narrow = soxr.resample(pcm16k, 16000, 8000).astype(np.int16)
    if kind == "pcm8k":
        return speechsdk.audio.AudioStreamFormat(samples_per_second=8000, bits_per_sample=16, channels=1), narrow.tobytes()
    table, tag = ((_mulaw_table(), speechsdk.audio.AudioStreamWaveFormat.MULAW) if kind == "mulaw" else
                  (_alaw_table(), speechsdk.audio.AudioStreamWaveFormat.ALAW))
    return (speechsdk.audio.AudioStreamFormat(samples_per_second=8000, bits_per_sample=8, channels=1,
                                              wave_stream_format=tag), g711_encode(narrow, table))


def recognized_text(gateway, kind: str, pcm16k: np.ndarray) -> str:
    stream_format, data = as_sent(pcm16k, kind)
    stream = speechsdk.audio.PushAudioInputStream(stream_format=stream_format)
    stream.write(data)
    stream.close()
    config = speechsdk.SpeechConfig(host=gateway.base_url)
    config.speech_recognition_language = "en-US"
    recognizer = speechsdk.SpeechRecognizer(speech_config=config, audio_config=speechsdk.audio.AudioConfig(stream=stream))
    return " ".join(r.text for r in recognize_until_stopped(recognizer, timeout_s=120))


def test_telephone_formats_are_recognized_within_margin_of_16_khz(gateway, sentences):
    references, pcm = sentences
    reference = " ".join(references)
    rates = {}
    for kind in ("pcm16k", "pcm8k", "mulaw"):
        errors, words = word_errors(reference, recognized_text(gateway, kind, pcm))
        rates[kind] = errors / words
    print("WER by format:", rates)
    assert rates["pcm16k"] <= 0.5, rates
    for kind in ("pcm8k", "mulaw"):
        assert rates[kind] <= rates["pcm16k"] + WER_MARGIN, rates


JS_CLIENT = Path(__file__).parent.parent / "js" / "sdk_client.js"


@pytest.mark.skipif(not shutil.which("node") or not (JS_CLIENT.parent / "node_modules").is_dir(),
                    reason="the JavaScript SDK is not installed: run `make deps`")
@pytest.mark.parametrize("kind, tag", [("mulaw", 7), ("alaw", 6)])
def test_js_sdk_telephone_push_streams_are_recognized(gateway, two_utterance_wav, tmp_path, kind, tag):
    """The JS SDK's getWaveFormat(8000, 8, 1, AudioFormatTag.MuLaw / ALaw): the header carries tag 7 / 6."""
    wav, references = two_utterance_wav
    pcm = np.frombuffer(wav.read_bytes()[44:], dtype="<i2")
    _format, data = as_sent(pcm, kind)
    path = tmp_path / f"{kind}.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " +
                     struct.pack("<IHHIIHH", 16, tag, 1, 8000, 8000, 1, 8) + b"data" + struct.pack("<I", len(data)) + data)
    run = subprocess.run(["node", str(JS_CLIENT), "recognize",
                          gateway.base_url + "/speech/recognition/conversation/cognitiveservices/v1", str(path)],
                         capture_output=True, text=True, timeout=200)
    assert run.returncode == 0, (run.stdout[-2000:], run.stderr[-2000:])
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    heard = " ".join(e["text"] for e in events if e["event"] == "recognized" and e["reason"] == "RecognizedSpeech")
    errors, words = word_errors(" ".join(references), heard)
    assert errors / words <= wer_bound(shared_data_dir()), heard
