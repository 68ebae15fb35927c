"""The USP session with the outbox: turns, late finals, early turn.end, continuation, split TTS, error statuses.

Byte strings written as Azure writes them and a fake clock; no socket, no thread.
"""

from __future__ import annotations

import json

import pytest

from agent.events import FinalResult, PartialResult, SpeechEnded, SynthesizedSpeech, UplinkError
from agent.uplink.usp_client import MAX_TURN_RETRIES, THROTTLED_BACKOFF_S, TURN_RETRY_BACKOFF_S
from parley_common.protocols.usp import parse_text
from parley_common.protocols.wav import TICKS_PER_SAMPLE

from tests.support.uplink_wire import (
    CHUNK_BYTES,
    CHUNK_SAMPLES,
    Harness,
    more,
    speak,
    usp_hypothesis,
    usp_phrase,
    usp_synthesis,
    usp_text,
)


def texts(harness: Harness) -> list[tuple[int, str]]:
    return [(e.utterance_id, e.source_text) for e in harness.finals()]


def test_results_go_to_the_turn_they_name_and_turn_end_completes_with_telemetry():
    usp = Harness(usp=True, speech_expected=True)
    speak(usp.outbox, 1)
    speak(usp.outbox, 2)
    usp.send()
    assert len(usp.turns()) == 1  # one turn at a time: 2 waits for 1's turn.end
    turn1 = usp.turns()[0]
    usp.hear(usp_hypothesis(turn1, "hel"))
    usp.hear(usp_phrase(turn1, "hello"))
    replies = usp.hear(usp_text("turn.end", turn1))
    telemetry = parse_text(replies[0])
    assert telemetry.path == "telemetry" and telemetry.request_id == turn1
    assert [list(m) for m in json.loads(telemetry.body)["ReceivedMessages"]] == [
        ["translation.hypothesis"], ["translation.phrase"], ["turn.end"]]
    usp.send()
    turn2 = usp.turns()[1]
    usp.hear(usp_phrase(turn2, "world"))
    assert len(usp.outbox) == 1  # 2 waits for its turn.end: a turn may hold more phrases
    usp.hear(usp_phrase(turn2, "again"))
    usp.hear(usp_text("turn.end", turn2))
    assert [(type(e).__name__, e.utterance_id) for e in usp.events] == [
        ("PartialResult", 1), ("FinalResult", 1), ("FinalResult", 2)]
    assert usp.finals()[0].translations == {"es": "HELLO"} and usp.finals()[0].azimuth_deg == 20.0
    assert texts(usp) == [(1, "hello"), (2, "world again")] and len(usp.outbox) == 0
    assert usp.hear(usp_text("turn.end", "0" * 32)) == []  # not ours: nothing acknowledged


def test_audio_goes_in_100_ms_messages_and_a_zero_length_one_ends_the_turn():
    usp = Harness(usp=True)
    speak(usp.outbox, 1, chunks=12)  # 7 680 bytes: two full messages and 1 280 left
    usp.send()
    turn = usp.turns()[0]
    audio = [m for m in usp.sent if isinstance(m, bytes)]
    payloads = [len(m) - 2 - int.from_bytes(m[:2], "big") for m in audio]
    assert payloads[1:] == [3200, 3200, 1280, 0] and usp.usp_audio_bytes(turn) == payloads[0] + 12 * CHUNK_BYTES


def test_a_reconnect_replays_every_utterance_without_a_final_and_ignores_the_old_turns():
    usp = Harness(usp=True)
    speak(usp.outbox, 1)
    speak(usp.outbox, 2)
    usp.send()
    usp.hear(usp_phrase(usp.turns()[0], "one"))
    usp.hear(usp_text("turn.end", usp.turns()[0]))
    usp.send()
    old_turn = usp.turns()[1]
    usp.reconnect()  # the connection dropped: 2 is sent again from its first chunk, in a new turn
    usp.send()
    new_turn = usp.turns()[2]
    assert sum(isinstance(m, str) and m.startswith("Path:speech.config") for m in usp.sent) == 2  # one per connection
    assert usp.usp_audio_bytes(new_turn) == usp.usp_audio_bytes(old_turn)
    usp.hear(usp_phrase(old_turn, "stale"))  # a result for the old turn belongs to nobody
    usp.hear(usp_phrase(new_turn, "two"))
    usp.hear(usp_text("turn.end", new_turn))
    assert texts(usp) == [(1, "one"), (2, "two")]


def test_a_turn_the_service_ends_early_without_a_final_is_sent_again_after_a_back_off():
    usp = Harness(usp=True)
    speak(usp.outbox, 1, end=False)
    usp.send()
    usp.hear(usp_text("turn.end", usp.turns()[0]))
    usp.outbox.accept(SpeechEnded(1, 0, 100.0, "silence", None, 0.0))
    usp.send()
    assert len(usp.turns()) == 1  # not at once: that was the resend storm
    usp.clock.now_s += TURN_RETRY_BACKOFF_S
    usp.send()
    assert len(usp.turns()) == 2 and usp.continuations()[1] is None and not usp.events  # no final yet: from 0


def test_an_early_turn_end_after_a_final_continues_from_the_acknowledged_audio_and_keeps_the_final():
    usp = Harness(usp=True)
    speak(usp.outbox, 1, chunks=10, end=False)
    usp.send()
    usp.hear(usp_text("turn.start", usp.turns()[0], {"context": {"serviceTag": "tag-1"}}))
    usp.hear(usp_phrase(usp.turns()[0], "hello", end_ticks=(3 * CHUNK_SAMPLES + 100) * TICKS_PER_SAMPLE))
    usp.hear(usp_text("turn.end", usp.turns()[0]))
    more(usp.outbox, 1, chunks=2)
    usp.send()  # at once: the service made progress, as the SDK's continuation does
    offset_ticks = 3 * CHUNK_SAMPLES * TICKS_PER_SAMPLE  # from the chunk holding the acknowledged sample
    assert usp.continuations()[1] == {"previousServiceTag": "tag-1",
                                      "audio": {"streams": {"1": {"offset": str(offset_ticks)}}}}
    turn2 = usp.turns()[1]
    assert usp.usp_audio_bytes(turn2) - usp.usp_audio_bytes(usp.turns()[0]) == -3 * CHUNK_BYTES + 2 * CHUNK_BYTES
    usp.hear(usp_phrase(turn2, "world", end_ticks=2 * CHUNK_SAMPLES * TICKS_PER_SAMPLE))  # offsets restart
    usp.hear(usp_text("turn.end", turn2))
    assert [(f.source_text, f.translations) for f in usp.finals()] == [("hello world", {"es": "HELLO WORLD"})]
    assert len(usp.outbox) == 0


@pytest.mark.parametrize("status", ["TooManyRequests", "Error"])
def test_a_retryable_error_status_backs_off_doubling_and_gives_up_with_the_reason(status):
    usp = Harness(usp=True)
    speak(usp.outbox, 1)
    speak(usp.outbox, 2)
    delays = []
    for _ in range(MAX_TURN_RETRIES + 1):
        usp.send()
        turn = usp.turns()[-1]
        usp.hear(usp_phrase(turn, "", status=status, FailureReason="slow down"))
        usp.hear(usp_text("turn.end", turn))
        if 1 in usp.outbox:
            delays.append(usp.outbox._utterances[1].retry_at - usp.clock.now_s)
            usp.clock.now_s = usp.outbox._utterances[1].retry_at
    base = THROTTLED_BACKOFF_S if status == "TooManyRequests" else TURN_RETRY_BACKOFF_S
    assert delays == [base, 2 * base, 4 * base, 8 * base] and len(usp.turns()) == MAX_TURN_RETRIES + 1
    errors = [e.message for e in usp.events if isinstance(e, UplinkError)]
    assert len(errors) == MAX_TURN_RETRIES + 1 and all(f"the service answered {status} (slow down)" in m for m in errors)
    assert "utterance 1 dropped" in errors[-1] and 1 not in usp.outbox and not usp.finals()


def test_an_utterance_out_of_retries_keeps_the_finals_already_in_as_its_final():
    usp = Harness(usp=True)
    speak(usp.outbox, 1, chunks=10)
    usp.send()
    usp.hear(usp_phrase(usp.turns()[0], "one", end_ticks=2 * CHUNK_SAMPLES * TICKS_PER_SAMPLE))
    for _ in range(MAX_TURN_RETRIES + 1):
        usp.hear(usp_phrase(usp.turns()[-1], "", status="BadRequest"))
        usp.hear(usp_text("turn.end", usp.turns()[-1]))
        if 1 in usp.outbox:
            usp.clock.now_s = usp.outbox._utterances[1].retry_at
            usp.send()
    assert len(usp.turns()) == MAX_TURN_RETRIES + 1 and texts(usp) == [(1, "one")]
    assert "utterance 1 cut short: the service answered BadRequest, 4 retries" in usp.events[-2].message


def test_split_synthesis_is_joined_and_a_failed_one_is_reported():
    usp = Harness(usp=True, speech_expected=True)
    speak(usp.outbox, 1)
    usp.send()
    turn = usp.turns()[0]
    usp.hear(usp_phrase(turn, "hello"))
    for piece in (b"RIFF", b"-one", b"-two"):
        usp.hear(usp_synthesis(turn, piece))
    usp.hear(usp_text("translation.synthesis.end", turn, {"SynthesisStatus": "Success"}))
    usp.hear(usp_synthesis(turn, b"RIFF"))
    usp.hear(usp_text("translation.synthesis.end", turn, {"SynthesisStatus": "Error", "FailureReason": "boom"}))
    usp.hear(usp_text("turn.end", turn))
    speech = [e for e in usp.events if isinstance(e, SynthesizedSpeech)]
    assert [(e.utterance_id, e.wav_bytes, e.language) for e in speech] == [(1, b"RIFF-one-two", "es")]
    assert UplinkError("speech synthesis failed: boom") in usp.events and texts(usp) == [(1, "hello")]


def test_a_turn_that_ends_without_a_phrase_is_an_empty_final_because_the_service_said_so():
    usp = Harness(usp=True)
    speak(usp.outbox, 1)
    usp.send()
    usp.hear(usp_text("turn.end", usp.turns()[0]))
    assert usp.finals() == [FinalResult(1, "", {}, 20.0, 100_000, 100.0)] and len(usp.outbox) == 0


def test_a_late_final_is_accepted_after_a_timeout_and_one_without_turn_end_completes_at_the_next():
    usp = Harness(usp=True)
    speak(usp.outbox, 1)
    usp.send()
    usp.clock.now_s += 15.1
    assert usp.outbox.check_timeouts() == [1] and not usp.finals()
    usp.hear(usp_phrase(usp.turns()[0], "late but here"))  # before the resend: still accepted
    usp.clock.now_s += 15.1
    usp.outbox.check_timeouts()
    assert texts(usp) == [(1, "late but here")] and len(usp.outbox) == 0
    usp.hear(usp_text("turn.end", usp.turns()[0]))
    assert len(usp.finals()) == 1  # no second final


def test_partials_name_the_turns_utterance_and_garbage_is_a_protocol_error():
    from agent.uplink.protocol import ProtocolError

    usp = Harness(usp=True)
    speak(usp.outbox, 1)
    usp.send()
    usp.hear(usp_hypothesis(usp.turns()[0], "hel"))
    assert usp.events == [PartialResult(1, "hel", {"es": "HEL"})]
    for garbage in ("no headers at all", b"\x00", usp_text("translation.phrase", usp.turns()[0])[:-2] + "[1]"):
        with pytest.raises(ProtocolError):
            usp.hear(garbage)
