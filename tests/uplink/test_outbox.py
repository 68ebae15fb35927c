"""The outbox and result attribution on their own: a fake clock, no socket, no thread."""

from __future__ import annotations

import numpy as np
import pytest

from parley_common.frames import Frame
from agent.events import FinalResult, PartialResult, SpeechChunk, SpeechEnded, SpeechStarted, SynthesizedSpeech, UplinkError
from agent.uplink.outbox import MAX_TURN_RETRIES, THROTTLED_BACKOFF_S, TURN_RETRY_BACKOFF_S, V1_SETTLE_S, Outbox
from agent.uplink.protocol import Opened, ServiceAudio, ServiceFailure, ServiceResult, TurnEnded
from agent.uplink.spool import Spool
from parley_common.protocols.wav import HEADER_BYTES, TICKS_PER_SAMPLE, WIRE_BYTES_PER_S

CHUNK_SAMPLES = 320


class Clock:
    def __init__(self):
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


class Wire:
    """Sends the way the connection owner does: in order, stopping at an utterance still open."""

    def __init__(self, outbox: Outbox, turns: bool):
        self.outbox, self.turns = outbox, turns
        self.position = HEADER_BYTES
        self.sent: list[tuple[int, int]] = []  # (utterance id, chunks) per end
        self.begun_at: list[tuple[int, int]] = []  # (utterance id, first chunk) per begin

    def send(self) -> None:
        for utterance in self.outbox.unsent():
            if not utterance.begun:
                opened = Opened(turn=f"turn-{utterance.id}-{utterance.attempts + 1}") if self.turns else \
                    Opened(stream_position=self.position)
                self.outbox.opened(utterance, opened)
                self.begun_at.append((utterance.id, utterance.sent_chunks))
            while utterance.sent_chunks < len(utterance.chunks):
                self.position += len(utterance.chunks[utterance.sent_chunks])
                utterance.sent_chunks += 1
            if utterance.ended is None:
                return
            self.sent.append((utterance.id, utterance.sent_chunks))
            self.position += WIRE_BYTES_PER_S  # the silence tail
            self.outbox.end_sent(utterance)


def make(turns: bool, **kw):
    events, clock = [], Clock()
    outbox = Outbox(turns=turns, max_audio_s=kw.get("max_audio_s", 60.0), final_timeout_s=15.0,
                    spoken_language="es", emit=events.append, clock=clock, window=kw.get("window", 4),
                    speech_expected=kw.get("speech_expected", False))
    return outbox, Wire(outbox, turns), events, clock


def speak(outbox: Outbox, utterance_id: int, chunks: int = 5, end: bool = True) -> None:
    outbox.accept(SpeechStarted(utterance_id, utterance_id * 100_000, 10.0, 0.9))
    for k in range(chunks):
        samples = np.full((CHUNK_SAMPLES, 1), utterance_id, np.int16)
        outbox.accept(SpeechChunk(utterance_id, Frame(samples, k * CHUNK_SAMPLES, 16000)))
    if end:
        outbox.accept(SpeechEnded(utterance_id, 0, 100.0, "silence", 20.0, 0.9))


def speak_more(outbox: Outbox, utterance_id: int, chunks: int) -> None:
    for k in range(chunks):
        outbox.accept(SpeechChunk(utterance_id, Frame(np.zeros((CHUNK_SAMPLES, 1), np.int16), 0, 16000)))
    outbox.accept(SpeechEnded(utterance_id, 0, 100.0, "silence", 20.0, 0.9))


def finals(events):
    return [e for e in events if isinstance(e, FinalResult)]


def result(final: bool, text: str, turn=None, position=None, size=None):
    return ServiceResult(final, text, {"es": text.upper()}, turn, position, stream_size_bytes=size)


def test_usp_results_go_to_the_turn_they_name_and_turn_end_completes():
    outbox, wire, events, _ = make(turns=True)
    speak(outbox, 1)
    speak(outbox, 2)
    wire.send()
    turn1, turn2 = "turn-1-1", "turn-2-1"
    outbox.receive(result(False, "world", turn2))
    outbox.receive(result(True, "hello", turn1))
    assert outbox.receive(TurnEnded(turn1)) is True
    outbox.receive(ServiceAudio(b"RIFF-2", None, turn2))
    outbox.receive(result(True, "world", turn2))
    assert len(outbox) == 1  # 2 waits for its turn.end: a turn may hold more phrases
    outbox.receive(result(True, "again", turn2))
    assert outbox.receive(TurnEnded(turn2)) and len(outbox) == 0
    assert [(type(e).__name__, e.utterance_id) for e in events] == [
        ("PartialResult", 2), ("FinalResult", 1), ("SynthesizedSpeech", 2), ("FinalResult", 2)]
    assert finals(events)[0].translations == {"es": "HELLO"} and finals(events)[0].azimuth_deg == 20.0
    assert finals(events)[1].source_text == "world again"
    assert events[2].language == "es"
    assert outbox.receive(TurnEnded("unknown")) is False


def test_a_reconnect_replays_every_utterance_without_a_final_whole_and_in_order():
    outbox, wire, events, _ = make(turns=True)
    speak(outbox, 1)
    speak(outbox, 2)
    speak(outbox, 3, end=False)
    wire.send()
    outbox.receive(result(True, "one", "turn-1-1"))
    outbox.receive(TurnEnded("turn-1-1"))
    outbox.connected()  # the connection dropped: 2 and 3 are sent again from their first chunk
    outbox.accept(SpeechEnded(3, 0, 100.0, "silence", None, 0.0))
    wire.send()
    assert wire.sent == [(1, 5), (2, 5), (2, 5), (3, 5)]
    outbox.receive(result(True, "stale", "turn-2-1"))  # a result for the old turn belongs to nobody
    outbox.receive(result(True, "two", "turn-2-2"))
    outbox.receive(TurnEnded("turn-2-2"))
    assert [(e.utterance_id, e.source_text) for e in finals(events)] == [(1, "one"), (2, "two")]
    assert finals(events)[1].azimuth_deg == 20.0
    assert outbox._utterances[3].attempts == 2 and outbox._utterances[3].turn == "turn-3-2"


def test_a_turn_the_service_ends_early_without_a_final_is_sent_again_after_a_back_off():
    outbox, wire, events, clock = make(turns=True)
    speak(outbox, 1, end=False)
    wire.send()
    assert outbox.receive(TurnEnded("turn-1-1")) is True  # ours: the protocol acknowledges it
    outbox.accept(SpeechEnded(1, 0, 100.0, "silence", None, 0.0))
    wire.send()
    assert outbox._utterances[1].attempts == 1  # not at once: that was the resend storm
    clock.now_s += TURN_RETRY_BACKOFF_S
    wire.send()
    assert outbox._utterances[1].turn == "turn-1-2" and wire.begun_at == [(1, 0), (1, 0)] and not events


def test_an_early_turn_end_after_a_final_continues_from_the_acknowledged_audio_and_keeps_the_final():
    outbox, wire, events, _ = make(turns=True)
    speak(outbox, 1, chunks=10, end=False)
    wire.send()
    phrase_end_ticks = (3 * CHUNK_SAMPLES + 100) * TICKS_PER_SAMPLE  # inside the 4th chunk
    outbox.receive(ServiceResult(True, "hello", {"es": "HOLA"}, "turn-1-1", end_ticks=phrase_end_ticks))
    outbox.receive(TurnEnded("turn-1-1"))
    speak_more(outbox, 1, chunks=2)
    wire.send()  # at once: the service made progress, as the SDK's continuation does
    assert wire.begun_at == [(1, 0), (1, 3)]  # from the chunk holding the acknowledged sample
    second_end_ticks = 2 * CHUNK_SAMPLES * TICKS_PER_SAMPLE  # offsets restart with the turn
    outbox.receive(ServiceResult(True, "world", {"es": "MUNDO"}, "turn-1-2", end_ticks=second_end_ticks))
    outbox.receive(TurnEnded("turn-1-2"))
    assert [(f.source_text, f.translations) for f in finals(events)] == [("hello world", {"es": "HOLA MUNDO"})]
    assert len(outbox) == 0


@pytest.mark.parametrize("throttled", [True, False])
def test_a_retryable_error_status_backs_off_doubling_and_gives_up_with_the_reason(throttled):
    outbox, wire, events, clock = make(turns=True)
    speak(outbox, 1)
    speak(outbox, 2)
    reason = "the service answered TooManyRequests" if throttled else "the service answered Error"
    delays = []
    for attempt in range(1, MAX_TURN_RETRIES + 2):
        wire.send()
        turn = outbox._utterances[1].turn
        outbox.receive(ServiceFailure(turn, reason, "retry", throttled=throttled))
        outbox.receive(TurnEnded(turn))
        if 1 in outbox:
            delays.append(outbox._utterances[1].retry_at - clock.now_s)
            clock.now_s = outbox._utterances[1].retry_at
    base = THROTTLED_BACKOFF_S if throttled else TURN_RETRY_BACKOFF_S
    assert delays == [base, 2 * base, 4 * base, 8 * base]
    assert [u for u, _ in wire.begun_at].count(1) == MAX_TURN_RETRIES + 1
    errors = [e.message for e in events if isinstance(e, UplinkError)]
    assert len(errors) == MAX_TURN_RETRIES + 1 and all(reason in m for m in errors)
    assert "utterance 1 dropped" in errors[-1] and 1 not in outbox
    assert not finals(events)


def test_a_cancelling_status_drops_the_utterance_with_the_reason_but_keeps_finals_already_in():
    outbox, wire, events, _ = make(turns=True)
    speak(outbox, 1)
    speak(outbox, 2)
    wire.send()
    outbox.receive(ServiceFailure("turn-1-1", "the service answered BadRequest", "cancel"))
    outbox.receive(TurnEnded("turn-1-1"))
    assert 1 not in outbox and events == [UplinkError("utterance 1 dropped: the service answered BadRequest", True)]
    outbox.receive(ServiceResult(True, "two", {"es": "DOS"}, "turn-2-1", end_ticks=TICKS_PER_SAMPLE))
    outbox.receive(ServiceFailure("turn-2-1", "the service answered BadRequest", "cancel"))
    outbox.receive(TurnEnded("turn-2-1"))
    assert [f.source_text for f in finals(events)] == ["two"]
    assert "utterance 2 cut short: the service answered BadRequest" in events[-2].message
    outbox.receive(ServiceFailure("turn-2-1", "speech synthesis failed: boom", "report"))
    assert events[-1] == UplinkError("speech synthesis failed: boom")


def test_v1_pieces_before_the_end_are_joined_and_the_first_final_after_it_completes():
    outbox, wire, events, _ = make(turns=False, speech_expected=True)
    speak(outbox, 1, end=False)
    wire.send()
    start = outbox._utterances[1].stream_start
    outbox.receive(result(True, "hello", position=start))  # the service ended a phrase early: a piece
    outbox.receive(result(False, "big", position=start + 1000))
    assert not finals(events)
    assert events[-1] == PartialResult(1, "hello big", {"es": "HELLO BIG"})
    outbox.accept(SpeechEnded(1, 0, 100.0, "silence", None, 0.0))
    wire.send()
    outbox.receive(result(True, "big world", position=start + 1000))
    outbox.receive(ServiceAudio(b"RIFF"))  # v1 audio follows the final it belongs to
    assert finals(events) == [FinalResult(1, "hello big world", {"es": "HELLO BIG WORLD"}, 10.0, 100_000, 100.0)]
    assert isinstance(events[-1], SynthesizedSpeech) and events[-1].utterance_id == 1
    assert len(outbox) == 0


def test_v1_pieces_complete_after_the_settle_time_without_another_final():
    outbox, wire, events, clock = make(turns=False)
    speak(outbox, 1)
    wire.send()
    outbox._utterances[1].pieces.append(result(True, "early"))
    clock.now_s += V1_SETTLE_S - 0.1
    outbox.check_timeouts()
    assert not finals(events)
    clock.now_s += 0.2
    outbox.check_timeouts()
    assert [e.source_text for e in finals(events)] == ["early"]


def test_v1_timing_info_attributes_by_the_speech_bytes_sent_and_ignores_speech_outside():
    outbox, wire, events, _ = make(turns=False)
    speak(outbox, 1)
    speak(outbox, 2)
    wire.send()
    first, second = outbox._utterances[1], outbox._utterances[2]
    outbox.receive(result(False, "two", position=second.stream_start + 10))
    outbox.receive(result(False, "pre-roll", position=first.stream_start - 9600, size=9600 + 3200))
    outbox.receive(result(False, "before", position=first.stream_start - WIRE_BYTES_PER_S - 2))  # no size: 1 s
    outbox.receive(result(False, "after", position=wire.position + 10))
    assert [(e.utterance_id, e.source_text) for e in events] == [(2, "two"), (1, "pre-roll")]


def test_a_timeout_asks_for_a_resend_accepts_a_late_final_and_never_writes_an_empty_final():
    outbox, wire, events, clock = make(turns=True)
    speak(outbox, 1)
    wire.send()
    clock.now_s += 14.9
    assert outbox.check_timeouts() == [] and not events
    clock.now_s += 0.2
    assert outbox.check_timeouts() == [1]  # the connection owner reconnects and sends it again
    assert not finals(events) and 1 in outbox
    outbox.receive(result(True, "late but here", "turn-1-1"))  # before the resend: still accepted
    outbox.receive(TurnEnded("turn-1-1"))  # USP finals are written at the end of their turn
    assert [e.source_text for e in finals(events)] == ["late but here"]


def test_an_utterance_unanswered_three_times_is_dropped_with_a_warning_not_written_empty():
    outbox, wire, events, clock = make(turns=True)
    speak(outbox, 1)
    for attempt in (1, 2, 3):
        outbox.connected()
        wire.send()
        clock.now_s += 15.1
        stalled = outbox.check_timeouts()
    assert stalled == [] and not finals(events) and 1 not in outbox
    assert [e.message for e in events] == ["utterance 1 dropped: no result from the service within 3 x 15 s"]


def test_a_service_that_is_behind_but_answering_is_waited_for_not_sent_the_utterance_again():
    outbox, wire, events, clock = make(turns=False, window=2)
    speak(outbox, 1)
    speak(outbox, 2)
    wire.send()
    clock.now_s += 10.0
    outbox.receive(result(True, "one", position=outbox._utterances[1].stream_start))
    clock.now_s += 5.1
    assert outbox.check_timeouts() == []  # 2 is late, but the service answered 5 s ago: it is busy
    clock.now_s += 10.0
    outbox.receive(result(True, "two, late", position=outbox._utterances[2].stream_start))
    assert [e.source_text for e in finals(events)] == ["one", "two, late"] and len(outbox) == 0


def test_a_usp_turn_that_ends_without_a_phrase_is_an_empty_final_because_the_service_said_so():
    outbox, wire, events, _ = make(turns=True)
    speak(outbox, 1)
    wire.send()
    outbox.receive(TurnEnded("turn-1-1"))
    assert finals(events) == [FinalResult(1, "", {}, 20.0, 100_000, 100.0)] and len(outbox) == 0


def test_a_backlog_goes_out_at_the_pace_of_the_window_and_each_timeout_starts_at_its_send():
    outbox, wire, events, clock = make(turns=False, window=2)
    for utterance_id in range(1, 6):
        speak(outbox, utterance_id)
    wire.send()
    assert [i for i, _ in wire.sent] == [1, 2]
    for utterance_id in range(1, 6):
        clock.now_s += 6.0  # the service takes 6 s per utterance: all sent at once, the third would time out
        assert outbox.check_timeouts() == []
        first = outbox._utterances[utterance_id]
        outbox.receive(result(True, f"said {utterance_id}", position=first.stream_start + 10))
        wire.send()
    assert [e.source_text for e in finals(events)] == [f"said {i}" for i in range(1, 6)]
    assert [i for i, _ in wire.sent] == [1, 2, 3, 4, 5] and len(outbox) == 0


def test_v1_an_utterance_is_done_only_when_its_speech_arrived_and_speech_goes_to_no_one_else():
    outbox, wire, events, clock = make(turns=False, window=1, speech_expected=True)
    speak(outbox, 1)
    speak(outbox, 2)
    wire.send()
    first = outbox._utterances[1]
    outbox.receive(result(True, "one", position=first.stream_start))
    assert outbox.in_flight == 1 and [i for i, _ in wire.sent] == [1]  # its speech is still owed
    wire.send()
    assert [i for i, _ in wire.sent] == [1]
    outbox.receive(ServiceAudio(b"RIFF-1"))
    assert 1 not in outbox and outbox.in_flight == 0
    outbox.receive(ServiceAudio(b"RIFF-?"))  # a second speech for one final belongs to nobody
    wire.send()
    outbox.receive(result(True, "noise far away", position=wire.position + 10_000))  # outside utterance 2
    outbox.receive(ServiceAudio(b"RIFF-noise"))
    speech = [(e.utterance_id, e.wav_bytes) for e in events if isinstance(e, SynthesizedSpeech)]
    assert speech == [(1, b"RIFF-1")]
    assert events[1].spoken_end_monotonic_s == 100.0  # its age counts from when the talker stopped
    # Utterance 2 was heard in full (a final came from past its end) with nothing in it: an empty final now.
    assert [(e.utterance_id, e.source_text) for e in finals(events)] == [(1, "one"), (2, "")]


def test_v1_a_final_whose_speech_never_comes_is_done_after_the_timeout():
    outbox, wire, events, clock = make(turns=False, speech_expected=True)
    speak(outbox, 1)
    wire.send()
    outbox.receive(result(True, "one", position=outbox._utterances[1].stream_start))
    clock.now_s += 15.1
    outbox.check_timeouts()
    assert len(outbox) == 0 and len(finals(events)) == 1


def test_a_reconnect_completes_finals_whose_speech_was_lost_instead_of_sending_them_again():
    outbox, wire, events, _ = make(turns=False, speech_expected=True)
    speak(outbox, 1)
    wire.send()
    outbox.receive(result(True, "one", position=outbox._utterances[1].stream_start))
    outbox.connected()
    wire.send()
    assert len(outbox) == 0 and [i for i, _ in wire.sent] == [1] and len(finals(events)) == 1


def test_the_spool_keeps_what_is_owed_across_a_crash_and_ids_never_collide(tmp_path):
    spool = Spool(tmp_path)
    events, clock = [], Clock()
    outbox = Outbox(turns=True, max_audio_s=60.0, final_timeout_s=15.0, spoken_language="es",
                    emit=events.append, clock=clock, spool=spool)
    speak(outbox, 1)
    speak(outbox, 2)
    speak(outbox, 3, end=False)  # the process dies while 3 is being spoken
    wire = Wire(outbox, turns=True)
    wire.send()
    outbox.receive(result(True, "one", "turn-1-1"))
    outbox.receive(TurnEnded("turn-1-1"))
    with open(tmp_path / "0000000003.utt", "ab") as torn:
        torn.write(b"A\x00\x00\x10")  # a power cut tore the last record
    (tmp_path / "0000000009.utt").write_bytes(b"garbage")

    again = Spool(tmp_path)  # the restart
    assert again.next_utterance_id() == 10
    restored_events = []
    restored = Outbox(turns=True, max_audio_s=60.0, final_timeout_s=15.0, spoken_language="es",
                      emit=restored_events.append, clock=clock, window=4, spool=again)
    restored.restore(again.load())
    assert [u.id for u in restored.unsent()] == [2, 3]
    assert restored._utterances[3].ended.reason == "restart" and len(restored._utterances[3].chunks) == 5
    assert restored._utterances[2].chunks == outbox._utterances[2].chunks
    wire = Wire(restored, turns=True)
    wire.send()
    for utterance_id in (2, 3):
        restored.receive(result(True, f"said {utterance_id}", f"turn-{utterance_id}-1"))
        restored.receive(TurnEnded(f"turn-{utterance_id}-1"))
    assert [e.source_text for e in finals(restored_events)] == ["said 2", "said 3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_usp_final_without_turn_end_completes_at_the_timeout_without_a_second_final():
    outbox, wire, events, clock = make(turns=True)
    speak(outbox, 1)
    wire.send()
    outbox.receive(result(True, "said", "turn-1-1"))
    clock.now_s += 16
    outbox.check_timeouts()
    assert [e.source_text for e in finals(events)] == ["said"] and len(outbox) == 0


def test_the_oldest_utterance_is_dropped_beyond_the_audio_budget():
    outbox, _, events, _ = make(turns=True, max_audio_s=0.15)  # 5 chunks of 20 ms = 0.1 s each
    for utterance_id in (1, 2, 3):
        speak(outbox, utterance_id)
    assert [e.message for e in events] == ["utterance 1 dropped: more than 0 s of speech waiting"]
    assert 1 not in outbox and outbox.dropped_utterances == 1


def test_an_overflowed_utterance_is_dropped_whole_once():
    outbox, wire, events, _ = make(turns=True)
    outbox.overflowed(1)
    speak(outbox, 1)
    speak(outbox, 2)
    wire.send()
    assert [e for e in events if isinstance(e, UplinkError)] == [
        UplinkError("utterance 1 dropped: the uplink queue overflowed")]
    assert outbox.dropped_utterances == 1 and wire.sent == [(2, 5)]


@pytest.mark.parametrize("attempts, dropped", [(1, False), (2, True)])
def test_a_fatal_close_drops_the_utterance_only_on_its_second_refusal(attempts, dropped):
    outbox, wire, events, _ = make(turns=True)
    speak(outbox, 1)
    for _ in range(attempts):
        outbox.connected()
        wire.send()
    outbox.rejected("close 1007: bad audio")
    assert (1 not in outbox) is dropped
    assert [e.message for e in events if isinstance(e, UplinkError)] == (
        ["utterance 1 dropped: the service rejected it twice (close 1007: bad audio)"] if dropped else [])


@pytest.mark.parametrize("pre_roll_ms", [20, 150, 280])
def test_v1_a_phrase_starting_in_the_pre_roll_belongs_to_the_utterance_after_a_noise_only_one(pre_roll_ms):
    """Noise-only utterance 1 gets no final; utterance 2's phrase starts in 1's silence tail (the
    gateway's 300 ms pre-roll). It is 2's, and 1 gets its empty final, heard in full."""
    outbox, wire, events, _ = make(turns=False, window=2)
    speak(outbox, 1)
    speak(outbox, 2, chunks=50)
    wire.send()
    second = outbox._utterances[2]
    start = second.stream_start - pre_roll_ms * WIRE_BYTES_PER_S // 1000
    size = 50 * CHUNK_SAMPLES * 2 + pre_roll_ms * WIRE_BYTES_PER_S // 1000
    outbox.receive(result(False, "hel", position=start, size=size // 2))
    outbox.receive(result(True, "hello", position=start, size=size))
    assert [(e.utterance_id, e.source_text) for e in events if isinstance(e, PartialResult)] == [(2, "hel")]
    assert sorted((e.utterance_id, e.source_text) for e in finals(events)) == [(1, ""), (2, "hello")]
    assert len(outbox) == 0


def test_v1_a_result_that_fits_no_utterance_is_shown_not_attached_by_arrival_order():
    outbox, wire, events, _ = make(turns=False, window=2)
    speak(outbox, 1)
    wire.send()
    outbox.receive(result(True, "from nowhere", position=wire.position + 5 * WIRE_BYTES_PER_S, size=3200))
    assert not [e for e in events if isinstance(e, FinalResult) and e.source_text]
    assert [e.message for e in events if isinstance(e, UplinkError)] == [
        "the service recognized 'from nowhere' outside any utterance sent"]
