"""The outbox and result attribution on their own: a fake clock, no socket, no thread."""

from __future__ import annotations

import numpy as np
import pytest

from parley_common.frames import Frame
from agent.events import FinalResult, PartialResult, SpeechChunk, SpeechEnded, SpeechStarted, SynthesizedSpeech, UplinkError
from agent.uplink.outbox import V1_SETTLE_S, Outbox
from agent.uplink.protocol import Opened, ServiceAudio, ServiceResult, TurnEnded
from parley_common.protocols.wav import HEADER_BYTES, WIRE_BYTES_PER_S

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
        self.sent: list[tuple[int, int]] = []  # (utterance id, chunks) per begin

    def send(self) -> None:
        for utterance in self.outbox.unsent():
            if not utterance.begun:
                opened = Opened(turn=f"turn-{utterance.id}-{utterance.attempts + 1}") if self.turns else \
                    Opened(stream_position=self.position)
                self.outbox.opened(utterance, opened)
            while utterance.sent_chunks < len(utterance.chunks):
                self.position += len(utterance.chunks[utterance.sent_chunks])
                utterance.sent_chunks += 1
            if utterance.ended is None:
                return
            self.sent.append((utterance.id, utterance.sent_chunks))
            self.position += WIRE_BYTES_PER_S  # the silence tail
            self.outbox.end_sent(utterance, None if self.turns else self.position)


def make(turns: bool, **kw):
    events, clock = [], Clock()
    outbox = Outbox(turns=turns, max_audio_s=kw.get("max_audio_s", 60.0), final_timeout_s=15.0,
                    spoken_language="es", emit=events.append, clock=clock)
    return outbox, Wire(outbox, turns), events, clock


def speak(outbox: Outbox, utterance_id: int, chunks: int = 5, end: bool = True) -> None:
    outbox.accept(SpeechStarted(utterance_id, utterance_id * 100_000, 10.0, 0.9))
    for k in range(chunks):
        samples = np.full((CHUNK_SAMPLES, 1), utterance_id, np.int16)
        outbox.accept(SpeechChunk(utterance_id, Frame(samples, k * CHUNK_SAMPLES, 16000)))
    if end:
        outbox.accept(SpeechEnded(utterance_id, 0, 100.0, "silence", 20.0, 0.9))


def finals(events):
    return [e for e in events if isinstance(e, FinalResult)]


def result(final: bool, text: str, turn=None, position=None):
    return ServiceResult(final, text, {"es": text.upper()}, turn, position)


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
    assert [(type(e).__name__, e.utterance_id) for e in events] == [
        ("PartialResult", 2), ("FinalResult", 1), ("SynthesizedSpeech", 2), ("FinalResult", 2)]
    assert finals(events)[0].translations == {"es": "HELLO"} and finals(events)[0].azimuth_deg == 20.0
    assert events[2].language == "es"
    assert len(outbox) == 1  # 2 waits for its turn.end
    assert outbox.receive(TurnEnded(turn2)) and len(outbox) == 0
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
    assert [(e.utterance_id, e.source_text) for e in finals(events)] == [(1, "one"), (2, "two")]
    assert finals(events)[1].azimuth_deg == 20.0
    assert outbox._utterances[3].attempts == 2 and outbox._utterances[3].turn == "turn-3-2"


def test_a_turn_the_service_ends_before_our_end_is_sent_again():
    outbox, wire, events, _ = make(turns=True)
    speak(outbox, 1, end=False)
    wire.send()
    assert outbox.receive(TurnEnded("turn-1-1")) is False
    outbox.accept(SpeechEnded(1, 0, 100.0, "silence", None, 0.0))
    wire.send()
    assert outbox._utterances[1].turn == "turn-1-2" and not events


def test_v1_pieces_before_the_end_are_joined_and_the_first_final_after_it_completes():
    outbox, wire, events, _ = make(turns=False)
    speak(outbox, 1, end=False)
    wire.send()
    outbox.receive(result(True, "hello"))  # the service ended a phrase early: a piece
    outbox.receive(result(False, "big"))
    assert not finals(events)
    assert events[-1] == PartialResult(1, "hello big", {"es": "HELLO BIG"})
    outbox.accept(SpeechEnded(1, 0, 100.0, "silence", None, 0.0))
    wire.send()
    outbox.receive(result(True, "big world"))
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


def test_v1_timing_info_attributes_by_stream_position_and_ignores_speech_outside():
    outbox, wire, events, _ = make(turns=False)
    speak(outbox, 1)
    speak(outbox, 2)
    wire.send()
    first, second = outbox._utterances[1], outbox._utterances[2]
    outbox.receive(result(False, "two", position=second.stream_start + 10))
    outbox.receive(result(False, "pre-roll", position=first.stream_start - WIRE_BYTES_PER_S))
    outbox.receive(result(False, "before", position=first.stream_start - WIRE_BYTES_PER_S - 2))
    outbox.receive(result(False, "after", position=wire.position + 10))
    assert [(e.utterance_id, e.source_text) for e in events] == [(2, "two"), (1, "pre-roll")]


def test_a_late_final_after_the_timeout_is_dropped_and_the_empty_final_is_emitted_once():
    outbox, wire, events, clock = make(turns=True)
    speak(outbox, 1)
    wire.send()
    clock.now_s += 14.9
    outbox.check_timeouts()
    assert not events
    clock.now_s += 0.2
    outbox.check_timeouts()
    assert finals(events) == [FinalResult(1, "", {}, 20.0, 100_000, 100.0)]
    outbox.receive(result(True, "too late", "turn-1-1"))
    outbox.receive(TurnEnded("turn-1-1"))
    assert len(finals(events)) == 1 and len(outbox) == 0


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
