"""The outbox with the Translator v1 session: what is owed, timeouts, the spool, and v1's placing by bytes.

Byte strings and a fake clock; no socket, no thread. USP's turns are in ``test_usp_session.py``.
"""

from __future__ import annotations

import pytest

from agent.events import FinalResult, PartialResult, SpeechEnded, SynthesizedSpeech, UplinkError
from agent.uplink.spool import Spool
from agent.uplink.translator_v1 import V1_SETTLE_S
from parley_common.protocols.wav import HEADER_BYTES, WIRE_BYTES_PER_S

from tests.support.uplink_wire import (
    CHUNK_BYTES,
    TAIL_BYTES,
    Harness,
    more,
    speak,
    usp_phrase,
    usp_text,
    v1_result,
    v1_start,
)

FIRST = HEADER_BYTES  # where the first utterance's speech starts


def texts(harness: Harness) -> list[tuple[int, str]]:
    return [(e.utterance_id, e.source_text) for e in harness.finals()]


def test_the_v1_stream_is_the_header_each_utterance_whole_and_its_silence_tail():
    v1 = Harness(usp=False)
    speak(v1.outbox, 1, chunks=3)
    speak(v1.outbox, 2, chunks=2)
    v1.send()
    stream = v1.v1_stream()
    assert stream[:4] == b"RIFF" and len(stream) == HEADER_BYTES + 5 * CHUNK_BYTES + 2 * TAIL_BYTES
    assert stream[v1_start([3]):v1_start([3]) + CHUNK_BYTES] == bytes([2, 0]) * (CHUNK_BYTES // 2)


@pytest.mark.parametrize("pre_roll_ms", [20, 150, 280])
def test_v1_a_phrase_starting_in_the_pre_roll_belongs_to_the_utterance_after_a_noise_only_one(pre_roll_ms):
    """Noise-only utterance 1 gets no final; utterance 2's phrase starts in 1's silence tail (the
    gateway's 300 ms pre-roll). It is 2's, and 1 gets its empty final, heard in full."""
    v1 = Harness(usp=False)
    speak(v1.outbox, 1)
    speak(v1.outbox, 2, chunks=50)
    v1.send()
    early = pre_roll_ms * WIRE_BYTES_PER_S // 1000
    start, size = v1_start([5]) - early, 50 * CHUNK_BYTES + early
    v1.hear(v1_result(False, "hel", start, size // 2))
    v1.hear(v1_result(True, "hello", start, size))
    assert [(e.utterance_id, e.source_text) for e in v1.events if isinstance(e, PartialResult)] == [(2, "hel")]
    assert texts(v1) == [(1, ""), (2, "hello")] and len(v1.outbox) == 0


def test_v1_a_result_that_fits_no_utterance_is_shown_not_attached_by_arrival_order():
    v1 = Harness(usp=False)
    speak(v1.outbox, 1)
    v1.send()
    v1.hear(v1_result(True, "from nowhere", v1_start([5]) + 5 * WIRE_BYTES_PER_S, 3200))
    v1.hear(v1_result(True, "no timing"))
    assert not [e for e in v1.finals() if e.source_text]
    assert [e.message for e in v1.events if isinstance(e, UplinkError)] == [
        "the service recognized 'from nowhere' outside any utterance sent",
        "the service recognized 'no timing' outside any utterance sent"]


def test_v1_timing_info_places_by_the_speech_bytes_sent_and_ignores_speech_outside():
    v1 = Harness(usp=False)
    speak(v1.outbox, 1)
    speak(v1.outbox, 2)
    v1.send()
    v1.hear(v1_result(False, "two", v1_start([5]) + 10, 100))
    v1.hear(v1_result(False, "pre-roll", FIRST - 9600, 9600 + 3200))
    v1.hear(v1_result(False, "before", FIRST - WIRE_BYTES_PER_S - 2))  # no size: taken as 1 s long
    v1.hear(v1_result(False, "tail", FIRST + 5 * CHUNK_BYTES + 100, 3200))  # the silence after 1's speech
    assert [(e.utterance_id, e.source_text) for e in v1.events] == [(2, "two"), (1, "pre-roll")]


def test_v1_pieces_before_the_end_are_joined_and_the_first_final_after_it_completes():
    v1 = Harness(usp=False, speech_expected=True)
    speak(v1.outbox, 1, end=False)
    v1.send()
    v1.hear(v1_result(True, "hello", FIRST, 1000))  # the service ended a phrase early: a piece
    v1.hear(v1_result(False, "big", FIRST + 1000, 1000))
    assert not v1.finals() and v1.events[-1] == PartialResult(1, "hello big", {"es": "HELLO BIG"})
    v1.outbox.accept(SpeechEnded(1, 0, 100.0, "silence", None, 0.0))
    v1.send()
    v1.hear(v1_result(True, "big world", FIRST + 1000, 2000))
    v1.hear(b"RIFF-1")  # v1 audio follows the final it belongs to
    assert v1.finals() == [FinalResult(1, "hello big world", {"es": "HELLO BIG WORLD"}, 10.0, 100_000, 100.0)]
    assert isinstance(v1.events[-1], SynthesizedSpeech) and v1.events[-1].utterance_id == 1
    assert len(v1.outbox) == 0


def test_v1_pieces_complete_after_the_settle_time_without_another_final():
    v1 = Harness(usp=False)
    speak(v1.outbox, 1, end=False)
    v1.send()
    v1.hear(v1_result(True, "early", FIRST, 1000))
    v1.outbox.accept(SpeechEnded(1, 0, 100.0, "silence", None, 0.0))
    v1.send()
    v1.clock.now_s += V1_SETTLE_S - 0.1
    v1.outbox.check_timeouts()
    assert not v1.finals()
    v1.clock.now_s += 0.2
    v1.outbox.check_timeouts()
    assert texts(v1) == [(1, "early")]


def test_a_timeout_asks_for_a_resend_accepts_a_late_final_and_never_writes_an_empty_final():
    v1 = Harness(usp=False)
    speak(v1.outbox, 1)
    v1.send()
    v1.clock.now_s += 14.9
    assert v1.outbox.check_timeouts() == [] and not v1.events
    v1.clock.now_s += 0.2
    assert v1.outbox.check_timeouts() == [1]  # the connection owner reconnects and sends it again
    assert not v1.finals() and 1 in v1.outbox
    v1.hear(v1_result(True, "late but here", FIRST, 3200))  # before the resend: still accepted
    assert texts(v1) == [(1, "late but here")]


def test_an_utterance_unanswered_three_times_is_dropped_with_a_warning_not_written_empty():
    v1 = Harness(usp=False)
    speak(v1.outbox, 1)
    for _ in range(3):
        v1.reconnect()
        v1.send()
        v1.clock.now_s += 15.1
        stalled = v1.outbox.check_timeouts()
    assert stalled == [] and not v1.finals() and 1 not in v1.outbox
    assert [e.message for e in v1.events] == ["utterance 1 dropped: no result from the service within 3 x 15 s"]


def test_a_service_that_is_behind_but_answering_is_waited_for_not_sent_the_utterance_again():
    v1 = Harness(usp=False)
    speak(v1.outbox, 1)
    speak(v1.outbox, 2)
    v1.send()
    v1.clock.now_s += 10.0
    v1.hear(v1_result(True, "one", FIRST, 3200))
    v1.clock.now_s += 5.1
    assert v1.outbox.check_timeouts() == []  # 2 is late, but the service answered 5 s ago: it is busy
    v1.clock.now_s += 10.0
    v1.hear(v1_result(True, "two, late", v1_start([5]), 3200))
    assert texts(v1) == [(1, "one"), (2, "two, late")] and len(v1.outbox) == 0


def test_a_backlog_goes_out_at_the_pace_of_the_window_and_each_timeout_starts_at_its_send():
    v1 = Harness(usp=False)
    for utterance_id in range(1, 6):
        speak(v1.outbox, utterance_id)
    v1.send()
    assert len(v1.v1_stream()) == v1_start([5, 5])  # two in flight
    for utterance_id in range(1, 6):
        v1.clock.now_s += 6.0  # the service takes 6 s per utterance: all sent at once, the third would time out
        assert v1.outbox.check_timeouts() == []
        v1.hear(v1_result(True, f"said {utterance_id}", v1_start([5] * (utterance_id - 1)) + 10, 3000))
        v1.send()
    assert [text for _, text in texts(v1)] == [f"said {i}" for i in range(1, 6)] and len(v1.outbox) == 0


def test_v1_an_utterance_is_done_only_when_its_speech_arrived_and_speech_goes_to_no_one_else():
    v1 = Harness(usp=False, speech_expected=True, window=1)
    speak(v1.outbox, 1)
    speak(v1.outbox, 2)
    v1.send()
    v1.hear(v1_result(True, "one", FIRST, 3200))
    assert v1.outbox.in_flight == 1 and not v1.send()  # its speech is still owed: 2 waits
    v1.hear(b"RIFF-1")
    assert 1 not in v1.outbox and v1.outbox.in_flight == 0
    v1.hear(b"RIFF-?")  # a second speech for one final belongs to nobody
    v1.send()
    v1.hear(v1_result(True, "noise far away", v1_start([5, 5]) + 10_000, 3200))  # outside utterance 2
    v1.hear(b"RIFF-noise")
    speech = [(e.utterance_id, e.wav_bytes) for e in v1.events if isinstance(e, SynthesizedSpeech)]
    assert speech == [(1, b"RIFF-1")]
    assert v1.events[1].spoken_end_monotonic_s == 100.0  # its age counts from when the talker stopped
    # Utterance 2 was heard in full (a final came from past its end) with nothing in it: an empty final now.
    assert texts(v1) == [(1, "one"), (2, "")]


def test_v1_a_final_whose_speech_never_comes_is_done_after_the_timeout():
    v1 = Harness(usp=False, speech_expected=True)
    speak(v1.outbox, 1)
    v1.send()
    v1.hear(v1_result(True, "one", FIRST, 3200))
    v1.clock.now_s += 15.1
    v1.outbox.check_timeouts()
    assert len(v1.outbox) == 0 and len(v1.finals()) == 1


def test_a_reconnect_completes_finals_whose_speech_was_lost_instead_of_sending_them_again():
    v1 = Harness(usp=False, speech_expected=True)
    speak(v1.outbox, 1)
    v1.send()
    v1.hear(v1_result(True, "one", FIRST, 3200))
    v1.reconnect()
    assert not v1.send() and len(v1.outbox) == 0 and len(v1.finals()) == 1


def test_a_reconnect_sends_every_utterance_without_a_final_again_whole_and_places_by_the_new_stream():
    v1 = Harness(usp=False)
    speak(v1.outbox, 1)
    speak(v1.outbox, 2)
    v1.send()
    v1.hear(v1_result(True, "one", FIRST, 3200))
    v1.reconnect()
    assert len(v1.send()) == 1 + 5 + 1  # header, 2's five chunks, its tail
    v1.hear(v1_result(True, "two", FIRST, 3200))  # the new stream starts again at the header
    assert texts(v1) == [(1, "one"), (2, "two")]


def test_the_spool_keeps_what_is_owed_across_a_crash_and_ids_never_collide(tmp_path):
    usp = Harness(usp=True, spool=Spool(tmp_path))
    speak(usp.outbox, 1)
    speak(usp.outbox, 2)
    speak(usp.outbox, 3, end=False)  # the process dies while 3 is being spoken
    usp.send()
    usp.hear(usp_phrase(usp.turns()[0], "one"))
    usp.hear(usp_text("turn.end", usp.turns()[0]))
    assert (tmp_path / "0000000001.utt").exists(), "kept until the results side has the final stored"
    usp.outbox._spool.remove(1)  # what Uplink.acknowledge does once the transcript has it
    with open(tmp_path / "0000000003.utt", "ab") as torn:
        torn.write(b"A\x00\x00\x10")  # a power cut tore the last record
    (tmp_path / "0000000009.utt").write_bytes(b"garbage")

    again = Spool(tmp_path)  # the restart
    assert again.next_utterance_id() == 10
    restored = Harness(usp=True, spool=again)
    restored.outbox.restore(again.load())
    assert restored.outbox._utterances[3].ended.reason == "restart"
    assert restored.outbox._utterances[2].chunks == usp.outbox._utterances[2].chunks
    for utterance_id in (2, 3):
        restored.send()
        turn = restored.turns()[-1]
        restored.hear(usp_phrase(turn, f"said {utterance_id}"))
        restored.hear(usp_text("turn.end", turn))
    assert [text for _, text in texts(restored)] == ["said 2", "said 3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0000000002.utt", "0000000003.utt"]
    for utterance_id in (2, 3):
        again.remove(utterance_id)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_oldest_utterance_is_dropped_beyond_the_audio_budget():
    v1 = Harness(usp=False, max_audio_s=0.15)  # 5 chunks of 20 ms = 0.1 s each
    for utterance_id in (1, 2, 3):
        speak(v1.outbox, utterance_id)
    assert [e.message for e in v1.events] == ["utterance 1 dropped: more than 0 s of speech waiting"]
    assert 1 not in v1.outbox and v1.outbox.dropped_utterances == 1


def test_an_overflowed_utterance_is_dropped_whole_once():
    v1 = Harness(usp=False)
    v1.outbox.overflowed(1)
    speak(v1.outbox, 1)
    speak(v1.outbox, 2)
    v1.send()
    assert [e for e in v1.events if isinstance(e, UplinkError)] == [
        UplinkError("utterance 1 dropped: the uplink queue overflowed")]
    assert v1.outbox.dropped_utterances == 1 and len(v1.v1_stream()) == v1_start([5])


@pytest.mark.parametrize("attempts, dropped", [(1, False), (2, True)])
def test_a_fatal_close_drops_the_utterance_only_on_its_second_refusal(attempts, dropped):
    v1 = Harness(usp=False)
    speak(v1.outbox, 1)
    for _ in range(attempts):
        v1.reconnect()
        v1.send()
    v1.outbox.rejected("close 1007: bad audio")
    assert (1 not in v1.outbox) is dropped
    assert [e.message for e in v1.events if isinstance(e, UplinkError)] == (
        ["utterance 1 dropped: the service rejected it twice (close 1007: bad audio)"] if dropped else [])


def test_an_utterance_still_being_spoken_is_sent_as_it_comes():
    v1 = Harness(usp=False)
    speak(v1.outbox, 1, chunks=2, end=False)
    assert len(v1.send()) == 3  # header and two chunks
    more(v1.outbox, 1, chunks=1)
    assert [len(m) for m in v1.send()] == [CHUNK_BYTES, TAIL_BYTES]
