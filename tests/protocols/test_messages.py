"""Every wire message round-trips through its one class, and decoders take Azure's field variants."""

from __future__ import annotations

import json

import pytest

from parley_common.protocols.translator_v1 import MessageError, Timing, V1Result
from parley_common.protocols.usp import (
    AUDIO,
    AUDIO_END,
    AUDIO_START,
    HYPOTHESIS,
    PHRASE,
    RESPONSE,
    SPEECH_CONTEXT,
    SYNTHESIS,
    SYNTHESIS_END,
    new_request_id,
    parse_binary,
    parse_text,
)
from parley_common.protocols.usp_messages import (
    CLIENT_MESSAGES,
    FLAVOURS,
    SERVICE_MESSAGES,
    Audio,
    DetectedLanguage,
    Hypothesis,
    MessageError as UspMessageError,
    Phrase,
    SpeechConfig,
    SpeechContext,
    SpeechEndDetected,
    SpeechHypothesis,
    SpeechPhrase,
    SpeechStartDetected,
    SynthesisAudio,
    SynthesisEnd,
    SynthesisStart,
    Telemetry,
    TurnEnd,
    TurnStart,
    decode_message,
)
from parley_common.protocols.usp import UspMessage
from parley_common.protocols.wav import AudioBudget, WavHeaderError, pcm_after_header, streaming_header

TURN = new_request_id()
TRANSLATIONS = {"es": "hola mundo", "ca": "hola món"}


def text_message(encoded: str):
    message = parse_text(encoded)
    assert message.request_id == TURN
    return message


@pytest.mark.parametrize("flavour, path", [("v1", HYPOTHESIS), ("v2", RESPONSE)])
def test_hypothesis_round_trips(flavour, path):
    sent = Hypothesis("hello world", TRANSLATIONS, 6_000_000, 12_000_000, flavour=flavour)
    message = text_message(sent.encode(TURN))
    assert message.path == path
    assert decode_message(message, SERVICE_MESSAGES) == sent


@pytest.mark.parametrize("flavour, path", [("v1", PHRASE), ("v2", RESPONSE)])
@pytest.mark.parametrize("phrase", [
    Phrase("hello world", TRANSLATIONS, 1, 2),
    Phrase("hello", {}, 3, 4, translation_error="apertium failed"),
], ids=["translated", "translation-failed"])
def test_phrase_round_trips(flavour, path, phrase):
    phrase = Phrase(**{**phrase.__dict__, "flavour": flavour})
    message = text_message(phrase.encode(TURN))
    assert message.path == path
    assert decode_message(message, SERVICE_MESSAGES) == phrase


@pytest.mark.parametrize("flavour", ["v1", "v2"])
def test_no_match_is_a_final_without_text(flavour):
    message = text_message(Phrase("", {"es": ""}, 5, 0, flavour=flavour).encode(TURN))
    body = message.json()
    assert (body.get("RecognitionStatus") or body["SpeechPhrase"]["RecognitionStatus"]) == "NoMatch"
    decoded = decode_message(message, SERVICE_MESSAGES)
    assert isinstance(decoded, Phrase) and decoded.text == ""


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_identified_language_round_trips(flavour):
    spanish = DetectedLanguage("es-ES", "High")
    for result in (Phrase("Hola.", {"en": "Hello."}, 0, 10, language=spanish, flavour=flavour),
                   Hypothesis("Hola", {"en": "Hello"}, 0, 5, language=spanish, flavour=flavour)):
        message = text_message(result.encode(TURN))
        assert decode_message(message, SERVICE_MESSAGES) == result


def received(path: str, body: dict) -> UspMessage:
    return UspMessage(path, {"path": path, "x-requestid": TURN}, json.dumps(body))


def decode_result(path: str, body: dict):
    return decode_message(received(path, body), SERVICE_MESSAGES)


def test_decoders_take_azures_field_variants():
    v2_display = {"SpeechPhrase": {"RecognitionStatus": "Success", "Text": "raw", "DisplayText": "Shown."},
                  "Translations": [{"Language": "es", "DisplayText": "Mostrado."}]}
    assert decode_result(RESPONSE, v2_display) == Phrase("Shown.", {"es": "Mostrado."}, flavour="v2")
    v2_failed = {"SpeechPhrase": {"RecognitionStatus": "BadRequest", "FailureReason": "odd audio"}, "Translations": []}
    assert decode_result(RESPONSE, v2_failed) == Phrase("", {}, status="BadRequest", flavour="v2",
                                                        failure_reason="odd audio")
    v1_no_status = {"Text": "hi", "Translation": {"Translations": [{"Language": "de", "Text": "hallo"}]}}
    assert decode_result(PHRASE, v1_no_status) == Phrase("hi", {"de": "hallo"})
    v1_no_match = {"RecognitionStatus": "NoMatch", "Text": "noise", "Translation": {"Translations": [
        {"Language": "es", "Text": "ruido"}]}}
    assert decode_result(PHRASE, v1_no_match) == Phrase("", {}, status="NoMatch")
    odd_offset = {"SpeechHypothesis": {"DisplayText": "a", "Offset": "soon"}, "Translations": []}
    assert decode_result(RESPONSE, odd_offset) == Hypothesis("a", {}, 0, 0, flavour="v2")


@pytest.mark.parametrize("context", [
    SpeechContext(("es", "ca"), "es-ES-ElviraNeural", "3"),
    SpeechContext(("de",), None, "1", source="en-GB", mode="INTERACTIVE"),
    SpeechContext(("de",), "de-DE-KatjaNeural", "1", continuation=("0f" * 16, 17_000_000)),
    SpeechContext(("en", "es"), "es-ES-ElviraNeural", "1", mode="CONVERSATION", candidates=("en-US", "es-ES"),
                  voices=(("es", "es-ES-ElviraNeural"), ("en", "en-US-JennyNeural")), speak_passthrough=False),
    SpeechContext(("en", "es"), None, "1", candidates=("en-US", "es-ES"), expected_language="es-ES"),
])
def test_speech_context_round_trips(context):
    message = text_message(context.encode(TURN))
    assert message.path == SPEECH_CONTEXT and "content-type" not in message.headers
    assert decode_message(message, CLIENT_MESSAGES) == context


def test_speech_context_takes_the_old_sdks_translationcontext():
    assert SpeechContext.decode(received(SPEECH_CONTEXT, {"translationcontext": {"to": ["fr"]}})).targets == ("fr",)


@pytest.mark.parametrize("audio", [Audio(streaming_header(), "2", wav_header=True), Audio(b"\1\2" * 80, "2"),
                                   Audio(b"")])
def test_client_audio_round_trips(audio):
    message = parse_binary(audio.encode(TURN))
    assert message.path == AUDIO and message.request_id == TURN
    assert Audio.decode(message) == audio


@pytest.mark.parametrize("stream, audio_path, end_path", [(None, SYNTHESIS, SYNTHESIS_END), ("4", AUDIO, AUDIO_END)])
def test_synthesis_messages_round_trip(stream, audio_path, end_path):
    audio = SynthesisAudio(b"RIFF....WAVE", stream)
    message = parse_binary(audio.encode(TURN))
    assert message.path == audio_path and SynthesisAudio.decode(message) == audio
    for end in (SynthesisEnd(None, stream), SynthesisEnd("synthesis failed", stream)):
        message = text_message(end.encode(TURN))
        assert message.path == end_path and decode_message(message, SERVICE_MESSAGES) == end


def test_synthesis_start_round_trips():
    start = SynthesisStart("es", "7")
    message = text_message(start.encode(TURN))
    assert message.path == AUDIO_START and decode_message(message, SERVICE_MESSAGES) == start


@pytest.mark.parametrize("sent, path", [
    (TurnStart("0f" * 16), "turn.start"), (TurnEnd(), "turn.end"), (SpeechStartDetected(12_000), "speech.startDetected"),
    (SpeechEndDetected(34_000), "speech.endDetected"), (SpeechHypothesis("hel", 1, 2), "speech.hypothesis"),
    (SpeechPhrase("Hello there.", 3, 4, detailed=True), "speech.phrase"),
])
def test_turn_speech_and_speech_only_messages_round_trip_through_the_dispatcher(sent, path):
    message = text_message(sent.encode(TURN))
    assert message.path == path and decode_message(message, SERVICE_MESSAGES) == sent


def test_client_informational_messages_round_trip_and_must_be_json_objects():
    config = SpeechConfig({"context": {"system": {"name": "Parley"}}})
    assert decode_message(parse_text(config.encode()), CLIENT_MESSAGES) == config
    telemetry = Telemetry({"ReceivedMessages": [], "Metrics": []})
    assert decode_message(text_message(telemetry.encode(TURN)), CLIENT_MESSAGES) == telemetry
    with pytest.raises(UspMessageError, match="speech.config: the body is not a JSON object"):
        decode_message(UspMessage("speech.config", {}, "[1, 2]"), CLIENT_MESSAGES)
    with pytest.raises(UspMessageError, match="turn.start: the body is not JSON"):
        decode_message(UspMessage("turn.start", {}, "{oops"), SERVICE_MESSAGES)


def test_the_dispatcher_knows_each_side_and_passes_over_unknown_paths():
    audio = parse_binary(Audio(b"\1\2", "1").encode(TURN))
    assert isinstance(decode_message(audio, CLIENT_MESSAGES), Audio)  # "audio" from a client is its speech,
    assert isinstance(decode_message(audio, SERVICE_MESSAGES), SynthesisAudio)  # from a service synthesis
    assert decode_message(UspMessage("audio.metadata", {}, "{}"), SERVICE_MESSAGES) is None
    assert decode_message(UspMessage("speech.event", {}, "{}"), CLIENT_MESSAGES) is None


@pytest.mark.parametrize("result", [
    V1Result(False, "1.12", "hello", {"es": "hola"}),
    V1Result(True, "1", "hello world", TRANSLATIONS, Timing.of_samples(16000, 40000)),
])
def test_translator_v1_result_round_trips(result):
    assert V1Result.decode(result.encode(), "es") == result


def test_translator_v1_result_fields_are_the_documented_ones():
    data = json.loads(V1Result(True, "2", "hi", {"es": "hola"}, Timing.of_samples(16000, 32000)).encode())
    assert data == {"type": "final", "id": "2", "recognition": "hi", "translation": "hola",
                    "audioTimeOffset": 10_000_000, "audioTimeSize": 10_000_000,
                    "audioStreamPosition": 44 + 32000, "audioSizeBytes": 32000}


def test_translator_v1_decoder_files_a_single_translation_under_the_first_target_and_rejects_garbage():
    assert V1Result.decode('{"type": "partial", "recognition": "a", "translation": "b"}', "ca").translations == {
        "ca": "b"}
    for bad in ("not json", "[1]", '{"no": "type"}', '{"type": "other"}'):
        with pytest.raises(MessageError):
            V1Result.decode(bad, "es")


def test_audio_intake_checks_the_header_format_and_budget():
    assert pcm_after_header(streaming_header() + b"\0\1") == b"\0\1"
    with pytest.raises(WavHeaderError, match="^bad audio header: "):
        pcm_after_header(b"RIFFjunk")
    with pytest.raises(WavHeaderError, match="16 kHz mono"):
        pcm_after_header(streaming_header(sample_rate_hz=8000))
    budget = AudioBudget(max_audio_s=1.0)
    assert budget.take(bytes(32000)) and not budget.take(b"\0")
