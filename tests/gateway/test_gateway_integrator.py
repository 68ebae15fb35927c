"""What an integrator meets around the audio (issue 22): tokens from /sts/v1.0/issueToken for the SDK
and the agent, expiry enforced; X-RequestId on answers; Translator v1 MP3 speech; deep JSON and
unsupported audio formats refused with 1007 naming the limit or the format."""

from __future__ import annotations

import os
import struct
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import websocket

from agent.uplink.config import UplinkConfig
from agent.uplink.credentials import azure_credentials
from gateway.config import GatewayConfig
from gateway.server import GatewayThread
from gateway.tokens import TokenIssuer
from parley_common.protocols.usp import USP_V1_PATH, build_binary, build_text, new_request_id
from parley_common.protocols.wav import streaming_header
from tests.gateway.test_bad_input import close_frame
from tests.support.data import shared_data_dir
from tests.support.sdk import say_through_uplink
from tests.support.speech import english_samples

pytestmark = pytest.mark.slow
speechsdk = pytest.importorskip("azure.cognitiveservices.speech")
KEY = "integrator-key-5678"


@pytest.fixture(scope="module")
def gateway():
    with GatewayThread(GatewayConfig(port=0, subscription_key=KEY)) as gw:
        yield gw


def http_url(gateway, path: str) -> str:
    return gateway.base_url.replace("ws://", "http://") + path


def issue_token(gateway, key: str | None = KEY) -> str:
    request = urllib.request.Request(http_url(gateway, "/sts/v1.0/issueToken"), data=b"", method="POST",
                                     headers={"Ocp-Apim-Subscription-Key": key} if key else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["X-RequestId"]
        return response.read().decode()


def test_issue_token_wants_the_key(gateway):
    assert issue_token(gateway).count(".") == 2
    for key, status in ((None, 401), ("wrong", 401)):
        with pytest.raises(urllib.error.HTTPError) as refused:
            issue_token(gateway, key)
        assert refused.value.code == status


def sdk_single_shot(gateway, token: str, wav_file):
    samples = english_samples(shared_data_dir(), limit=1)
    path = wav_file("token.wav", np.concatenate([np.zeros(8000, np.int16), samples[0][1], np.zeros(16000, np.int16)]))
    config = speechsdk.SpeechConfig(host=gateway.base_url)
    config.authorization_token = token
    config.speech_recognition_language = "en-US"
    return speechsdk.SpeechRecognizer(speech_config=config,
                                      audio_config=speechsdk.audio.AudioConfig(filename=str(path))).recognize_once()


def test_the_sdk_authorization_token_works_and_an_expired_one_is_refused(gateway, wav_file):
    assert sdk_single_shot(gateway, issue_token(gateway), wav_file).reason == speechsdk.ResultReason.RecognizedSpeech
    expired = TokenIssuer(KEY, clock=lambda: time.time() - 700).issue()  # signed by the gateway's secret, 11 min ago
    result = sdk_single_shot(gateway, expired, wav_file)
    assert result.reason == speechsdk.ResultReason.Canceled
    assert result.cancellation_details.code == speechsdk.CancellationErrorCode.AuthenticationFailure
    forged = TokenIssuer("another-key").issue()
    assert sdk_single_shot(gateway, forged, wav_file).cancellation_details.code == \
        speechsdk.CancellationErrorCode.AuthenticationFailure


def test_the_agent_exchanges_its_key_for_a_token_and_is_served(gateway):
    os.environ["PARLEY_INTEGRATOR_KEY"] = KEY
    config = UplinkConfig(backend="azure", url=gateway.base_url + USP_V1_PATH, to_languages=("es",), use_token=True,
                          token_url=http_url(gateway, "/sts/v1.0/issueToken"), key_env="PARLEY_INTEGRATOR_KEY")
    kind, token = azure_credentials(config).current()
    assert kind == "token" and token.count(".") == 2
    events = say_through_uplink(config, english_samples(shared_data_dir(), limit=1)[0][1])
    assert any(getattr(e, "translations", None) for e in events), events


def test_a_gateway_backend_with_use_token_exchanges_its_key_at_the_gateway_itself(gateway):
    """No token_url: the gateway issues tokens on its own host (before, the token host was None and
    the first connect raised ValueError 'unknown url type')."""
    os.environ["PARLEY_INTEGRATOR_KEY"] = KEY
    config = UplinkConfig(backend="gateway", url=gateway.base_url, to_languages=("en", "es"),
                          identify_languages=("en-US", "es-ES"), use_token=True, key_env="PARLEY_INTEGRATOR_KEY")
    kind, token = azure_credentials(config).current()
    assert kind == "token" and token.count(".") == 2


def usp_connection(gateway):
    return websocket.create_connection(gateway.base_url + USP_V1_PATH + "?from=en-US&to=es", timeout=20,
                                       header=[f"Ocp-Apim-Subscription-Key: {KEY}"], subprotocols=["USP"])


def test_deeply_nested_json_is_refused_with_1007_not_a_traceback(gateway):
    ws = usp_connection(gateway)
    ws.send(build_text("speech.context", new_request_id(), None).rstrip("\r\n") + "\r\n\r\n" + "[" * 50000)
    code, reason = close_frame(ws)
    assert code == 1007 and "nests deeper" in reason


@pytest.mark.parametrize("tag, bits, channels, named", [(1, 16, 2, "2 channel(s)"), (3, 32, 1, "IEEE float")])
def test_unsupported_audio_is_refused_with_1007_naming_it(gateway, tag, bits, channels, named):
    wav = bytearray(streaming_header())
    struct.pack_into("<HHIIHH", wav, 20, tag, channels, 16000, 16000 * channels * bits // 8, channels * bits // 8, bits)
    ws = usp_connection(gateway)
    ws.send_binary(build_binary("audio", new_request_id(), bytes(wav), {"Content-Type": "audio/x-wav"}))
    code, reason = close_frame(ws)
    assert code == 1007 and named in reason


def test_usp_v1_without_from_needs_candidates_in_the_context(gateway):
    """SDK <= 1.42's auto-detect sends to= alone; without languageId in the context the turn is refused by name."""
    ws = websocket.create_connection(gateway.base_url + USP_V1_PATH + "?to=es", timeout=20,
                                     header=[f"Ocp-Apim-Subscription-Key: {KEY}"], subprotocols=["USP"])
    turn = new_request_id()
    ws.send(build_text("speech.context", turn, {"translation": {"targetLanguages": ["es"]}}))
    ws.send_binary(build_binary("audio", turn, streaming_header(), {"Content-Type": "audio/x-wav"}))
    code, reason = close_frame(ws)
    assert code == 1007 and "'from' is required" in reason


def test_translator_v1_speaks_mp3_when_asked(gateway):
    ws = websocket.create_connection(
        gateway.base_url + "/speech/translate?api-version=1.0&from=en-US&to=es&features=texttospeech&format=audio/mp3",
        timeout=60, header=[f"Ocp-Apim-Subscription-Key: {KEY}"])
    assert ws.getheaders().get("x-requestid")
    pcm = np.concatenate([np.zeros(8000, np.int16), english_samples(shared_data_dir(), limit=1)[0][1],
                          np.zeros(32000, np.int16)])
    ws.send_binary(streaming_header())
    for i in range(0, len(pcm), 3200):
        ws.send_binary(pcm[i:i + 3200].tobytes())
    audio = None
    while audio is None:
        opcode, data = ws.recv_data()
        if opcode == websocket.ABNF.OPCODE_BINARY:
            audio = data
    ws.close()
    assert audio[:3] == b"ID3" or (audio[0] == 0xFF and audio[1] & 0xE0 == 0xE0), audio[:8]  # an MPEG audio frame
    assert len(audio) > 2000
