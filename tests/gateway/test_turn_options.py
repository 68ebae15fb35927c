"""Per-turn tuning from the query and speech.context, and the token issuer: pure units, no gateway."""

from __future__ import annotations

import json

import pytest

from gateway.tokens import TokenError, TokenIssuer
from gateway.turn_options import TurnOptionError, TurnOptions
from parley_common.protocols.usp import SPEECH_CONTEXT, UspMessage
from parley_common.protocols.usp_messages import SpeechContext


def context_of(body: dict) -> SpeechContext:
    return SpeechContext.decode(UspMessage(SPEECH_CONTEXT, {}, json.dumps(body)))

SDK_CONTEXT = {"phraseDetection": {"language": "en-US", "initialSilenceTimeout": 2000, "trailingSilenceTimeout": 3000,
                                   "mode": "INTERACTIVE",
                                   "INTERACTIVE": {"segmentation": {"segmentationSilenceTimeoutMs": 1500, "mode": "Custom"}}},
               "phraseOutput": {"format": "Detailed", "detailed": {"options": ["WordTimings", "WordConfidence"]}},
               "dgi": {"Groups": [{"Type": "Generic", "Items": [{"Text": "Whittemore"}, {"Text": " "}]}]},
               "languageId": {"languages": ["en-US", "es-ES"], "mode": "DetectAtAudioStart"}}  # SDK 1.53, as sent


def test_the_context_the_sdk_sends_sets_every_option():
    options = TurnOptions.from_query({}).with_context(context_of(SDK_CONTEXT))
    assert (options.initial_silence_ms, options.end_silence_ms, options.segmentation_silence_ms) == (2000, 3000, 1500)
    assert options.word_timings and options.phrases == ("Whittemore",) and options.identify_once
    assert options.initial_silence_samples(True, 16000) == 32000 and options.initial_silence_samples(False, 16000) is None
    assert options.tuning(True, None).endpoint_silence_ms == 3000  # single-shot: end silence
    assert options.tuning(False, None).endpoint_silence_ms == 1500  # continuous: segmentation silence


def test_query_options_and_defaults():
    options = TurnOptions.from_query({"initialSilenceTimeoutMs": ["0"], "wordLevelTimestamps": ["true"]})
    assert options.word_timings and options.initial_silence_samples(True, 16000) is None  # 0: never
    assert TurnOptions().initial_silence_samples(True, 16000) == 5 * 16000  # the service's default
    assert TurnOptions().tuning(True, None).endpoint_silence_ms is None  # the gateway's own
    context = context_of({"phraseDetection": {"initialSilenceTimeout": 900}})
    assert options.with_context(context).initial_silence_ms == 900  # the turn's context wins


@pytest.mark.parametrize("query, context, message", [
    ({"endSilenceTimeoutMs": ["soon"]}, None, "is not a number of milliseconds"),
    ({"segmentationSilenceTimeoutMs": ["50"]}, None, "use 100 to 5000 ms"),
    ({}, {"phraseDetection": {"CONVERSATION": {"segmentation": {"segmentationSilenceTimeoutMs": 9000}}}}, "use 100 to 5000 ms"),
])
def test_out_of_range_timeouts_are_refused_by_name(query, context, message):
    with pytest.raises(TurnOptionError, match=message):
        TurnOptions.from_query(query).with_context(context_of(context or {}))


def test_tokens_expire_and_are_bound_to_the_key():
    now = [1_000_000.0]
    issuer = TokenIssuer("key", clock=lambda: now[0])
    token = issuer.issue()
    issuer.check(token)
    now[0] += 599
    issuer.check(token)
    now[0] += 1
    with pytest.raises(TokenError, match="expired"):
        issuer.check(token)
    with pytest.raises(TokenError, match="signature"):
        TokenIssuer("other key", clock=lambda: 1_000_000.0).check(token)
    header, payload, signature = token.split(".")
    with pytest.raises(TokenError):
        issuer.check(f"{header}.{payload}x.{signature}")
