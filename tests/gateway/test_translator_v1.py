"""The gateway's Translator Speech v1 endpoint with real engines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import websocket

from agent.audio.synth import read_wav_bytes
from parley_common.protocols.wav import streaming_header
from gateway.server import GatewayThread

sys.path.insert(0, str(Path(__file__).parent.parent))
from conftest import shared_data_dir  # noqa: E402
from speech_samples import english_samples, wer_bound, word_errors  # noqa: E402


@pytest.fixture(scope="module")
def gateway():
    with GatewayThread() as gw:
        yield gw


def v1_url(gw, to="es&to=ca", features="partial,texttospeech,timinginfo"):
    return f"{gw.base_url}/speech/translate?api-version=1.0&from=en-US&to={to}&features={features}"


def translate_stream(url: str, pcm: np.ndarray, header_alone: bool = True):
    """Send a WAV stream in 100 ms chunks plus 1.5 s of silence; collect messages until the last TTS."""
    ws = websocket.create_connection(url, timeout=30)
    audio = np.concatenate([pcm, np.zeros(24000, dtype=np.int16)]).astype("<i2").tobytes()
    if header_alone:
        ws.send_binary(streaming_header())
    else:
        audio = streaming_header() + audio
    for i in range(0, len(audio), 3200):
        ws.send_binary(audio[i:i + 3200])
    messages = []
    while True:
        opcode, data = ws.recv_data()
        messages.append(json.loads(data) if opcode == websocket.ABNF.OPCODE_TEXT else data)
        if isinstance(messages[-1], bytes):
            break
    ws.close()
    return messages


def test_partials_then_a_final_whose_recognition_and_translations_are_right(gateway):
    samples = english_samples(shared_data_dir(), limit=3)
    errors = words = 0
    for reference, pcm in samples:
        messages = translate_stream(v1_url(gateway), pcm)
        texts = [m for m in messages if isinstance(m, dict)]
        partials = [m for m in texts if m["type"] == "partial"]
        finals = [m for m in texts if m["type"] == "final"]
        assert partials and len(finals) == 1
        assert texts.index(partials[0]) < texts.index(finals[0])
        final = finals[0]
        e, n = word_errors(reference, final["recognition"])
        errors, words = errors + e, words + n
        translator = gateway.gateway.engines.translator
        assert final["translations"] == {lang: translator.translate(final["recognition"], "en", lang) for lang in ("es", "ca")}
        assert final["translation"] == final["translations"]["es"]
        assert 0 < final["audioTimeSize"] <= (len(pcm) + 16000) * 625
        samples_out, rate_hz = read_wav_bytes(messages[-1])
        assert rate_hz == 16000
        words_spoken = len(final["translation"].split())
        assert 0.15 * words_spoken < len(samples_out) / rate_hz < 1.5 * words_spoken + 1.0
    assert errors / words <= wer_bound(shared_data_dir()), f"word error rate {errors / words:.2f}"


def test_header_inside_the_first_audio_message_and_a_single_target(gateway):
    reference, pcm = english_samples(shared_data_dir(), limit=1)[0]
    messages = translate_stream(v1_url(gateway, to="es", features="texttospeech"), pcm, header_alone=False)
    finals = [m for m in messages if isinstance(m, dict)]
    assert [m["type"] for m in finals] == ["final"]  # no partials unless asked for
    assert "translations" not in finals[0] and finals[0]["translation"]
    assert "audioTimeOffset" not in finals[0]  # no timing unless asked for
