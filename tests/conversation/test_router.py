"""The routing unit on its own: seats on the circle, first guess, confirm/correct, drop or default."""

from __future__ import annotations

import numpy as np
import pytest

from agent.conversation.router import Seat, SeatMap, UtteranceRouter
from agent.events import SpeechChunk, SpeechEnded, SpeechStarted
from parley_common.frames import Frame

SEATS = SeatMap([Seat("Ann", 300, 60), Seat("Ben", 180, 270)])


def chunk(utterance_id: int, ms: int = 20) -> SpeechChunk:
    n = 16 * ms
    return SpeechChunk(utterance_id, Frame(np.zeros((n, 1), np.int16), 0, 16000))


@pytest.mark.parametrize("azimuth, party", [(0, "Ann"), (359.5, "Ann"), (300, "Ann"), (60, "Ann"), (30, "Ann"),
                                            (200, "Ben"), (270, "Ben"), (120, None), (61, None), (None, None),
                                            (420, "Ann")])
def test_seats_wrap_through_zero(azimuth, party):
    assert SEATS.party_at(azimuth) == party


def test_outside_every_seat_goes_to_the_default_party():
    assert SeatMap(SEATS.seats, default_party="Ben").party_at(120) == "Ben"


@pytest.mark.parametrize("a, b, overlap", [((300, 60), (30, 90), True), ((300, 60), (60, 180), False),
                                           ((0, 180), (180, 0), False), ((10, 20), (0, 30), True),
                                           ((0, 360), (100, 120), True), ((350, 10), (355, 5), True)])
def test_overlap_is_symmetric_and_edges_may_touch(a, b, overlap):
    first, second = Seat("a", *a), Seat("b", *b)
    assert first.overlaps(second) == overlap and second.overlaps(first) == overlap


def feed(router, events_with_azimuth):
    out = []
    for event, azimuth in events_with_azimuth:
        out += router.route(event, azimuth)
    return out


def test_audio_is_held_until_the_direction_settles_then_a_wrong_first_guess_is_corrected():
    decisions = []
    router = UtteranceRouter(SEATS, decide_after_ms=100, on_decision=decisions.append, settle_ms=60)
    started = SpeechStarted(1, 0, 100.0, 0.3)  # the early estimate is off (nobody's seat)...
    assert router.route(started, 100.0) == []
    held = [chunk(1) for _ in range(6)]
    for c in held[:4]:
        assert router.route(c, 150.0) == []  # 80 ms: still held
    for c in held[4:]:
        assert router.route(c, 210.0) == []  # ...80 ms in, the estimate says Ben: a correction, not settled yet
    seventh = chunk(1)
    out = router.route(seventh, 210.0)  # Ben's seat for 60 ms: settled
    assert [d.party for d in out] == ["Ben"] * 8
    assert [d.event for d in out] == [started, *held, seventh]
    assert router.route(chunk(1), 20.0)[0].party == "Ben"  # the route is fixed: never split
    end = SpeechEnded(1, 9000, 500.0, "silence", 205.0, 0.9)
    assert [d.event for d in router.route(end, 205.0)] == [end]
    assert decisions[0].party == "Ben" and decisions[0].first_guess is None and decisions[0].corrected
    assert decisions[0].held_ms == 140
    assert router.corrected == 1 and router.routed == {"Ben": 1}


def test_a_jump_to_the_mirror_image_at_decision_time_is_waited_out():
    """The failure measured at RT60 0.6 s and 5 dB: Ann at 0°, the estimate at the decision time
    briefly at 180° (her mirror image, Ben's seat) before coming back."""
    decisions = []
    router = UtteranceRouter(SEATS, decide_after_ms=100, on_decision=decisions.append, settle_ms=60)
    directions = [355.0] * 4 + [180.0] * 2 + [358.0] * 3  # 20 ms chunks: the jump lasts 40 ms
    out = feed(router, [(SpeechStarted(8, 0, 355.0, 0.3), 355.0)] + [(chunk(8), az) for az in directions])
    assert {d.party for d in out} == {"Ann"} and len(out) == 10
    assert decisions[0].held_ms == 180 and not decisions[0].corrected


def test_an_estimate_that_never_settles_is_routed_at_the_end_by_the_whole_utterance():
    router = UtteranceRouter(SEATS, decide_after_ms=40, settle_ms=60)
    flapping = [(chunk(9), az) for az in [200.0, 10.0] * 5]
    assert feed(router, [(SpeechStarted(9, 0, 10.0, 0.3), 10.0)] + flapping) == []
    out = router.route(SpeechEnded(9, 3200, 220.0, "silence", 20.0, 0.9), 200.0)
    assert {d.party for d in out} == {"Ann"} and len(out) == 12


def test_a_short_utterance_is_routed_by_its_whole_utterance_direction():
    router = UtteranceRouter(SEATS, decide_after_ms=800)
    assert feed(router, [(SpeechStarted(2, 0, 10.0, 0.5), 10.0), (chunk(2), 10.0)]) == []
    out = router.route(SpeechEnded(2, 320, 300.0, "silence", 230.0, 0.9), 10.0)
    assert {d.party for d in out} == {"Ben"} and len(out) == 3
    assert router.corrected == 1


def test_a_confirmed_guess_is_not_counted_as_a_correction():
    router = UtteranceRouter(SEATS, decide_after_ms=40)
    out = feed(router, [(SpeechStarted(3, 0, 20.0, 0.5), 20.0), (chunk(3), 25.0), (chunk(3), 25.0)])
    assert [d.party for d in out] == ["Ann"] * 3 and router.corrected == 0


def test_outside_every_seat_without_a_default_is_dropped_whole(caplog):
    router = UtteranceRouter(SEATS, decide_after_ms=40)
    out = feed(router, [(SpeechStarted(4, 0, 120.0, 0.5), 120.0), (chunk(4), 120.0), (chunk(4), 120.0),
                        (chunk(4), 120.0), (SpeechEnded(4, 960, 60.0, "silence", 120.0, 0.9), 120.0)])
    assert out == [] and router.dropped == 1
    assert "utterance 4 dropped: 120° is outside every seat" in caplog.text


def test_whole_utterance_disagreement_after_the_route_is_fixed_is_logged_not_split(caplog):
    router = UtteranceRouter(SEATS, decide_after_ms=20)
    out = feed(router, [(SpeechStarted(5, 0, 20.0, 0.5), 20.0), (chunk(5), 20.0),
                        (SpeechEnded(5, 320, 20.0, "silence", 230.0, 0.9), 230.0)])
    assert {d.party for d in out} == {"Ann"} and len(out) == 3
    assert router.late_disagreements == 1 and "is Ben's seat" in caplog.text


def test_interleaved_utterances_keep_their_own_routes_and_unknown_ones_are_ignored():
    router = UtteranceRouter(SEATS, decide_after_ms=0)
    a = router.route(SpeechStarted(6, 0, 0.0, 0.5))
    b = router.route(SpeechStarted(7, 0, 200.0, 0.5))
    assert a[0].party == "Ann" and b[0].party == "Ben"
    assert router.route(chunk(6), 200.0)[0].party == "Ann"
    assert router.route(chunk(99), 0.0) == []
