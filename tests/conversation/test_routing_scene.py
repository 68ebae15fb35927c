"""Real audio through the real DSP: two talkers taking turns are told apart by where they sit."""

from __future__ import annotations

import pytest

from agent.hardware import load_array_profile
from tests.support.conversation import route_conversation, seated_pair


def test_seats_split_the_circle_between_the_talkers():
    conversation = seated_pair(60.0, 240.0)
    a, b = conversation.parties
    assert (a.from_deg, a.to_deg, b.from_deg, b.to_deg) == (330.0, 150.0, 150.0, 330.0)
    near = seated_pair(350.0, 20.0)
    assert near.parties[0].from_deg == 185.0 and near.parties[0].to_deg == 5.0


@pytest.mark.parametrize("fresh_direction", [True, False])
def test_turns_from_60_and_240_degrees_go_to_their_talker_only_with_a_fresh_direction(fresh_direction):
    routed = route_conversation(load_array_profile("respeaker-4mic-hat"), 60.0, 240.0, rt60_s=0.3, snr_db=10.0,
                                fresh_direction=fresh_direction)
    right = sum(d.party == t for d, t in zip(routed.decisions, routed.truth))
    if fresh_direction:
        assert [d.party for d in routed.decisions] == routed.truth, (routed.started_deg, routed.ended_deg)
    else:  # the previous talker's 1.5 s of covariance outvotes a new talker for 800 ms and more
        assert right < len(routed.truth)
