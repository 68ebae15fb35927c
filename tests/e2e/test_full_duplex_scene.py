"""The demo scene with a talker who answers while the box still speaks: the real agent and gateway,
the box's loudspeaker in the simulated room. The interruption is translated, the playback stops
(barge_in: stop) and nothing of the box's own voice becomes an utterance."""

from __future__ import annotations

from agent.config.schema import load_agent_config
from agent.daemon import Agent
from agent.demo import SPEAKER_VOLUME, TALKER_LEVEL, Line, demo_config_text, make_scene, score_lines
from agent.simulation_echo import EchoRoom, speaker_rirs

LINES = (
    Line("Good morning everyone, and welcome to the meeting about the new train station.", "en-us", 60.0),
    Line("Where is the train station?", "en-us", 60.0),
    Line("Please open the door for our guests.", "en-us", 60.0),
)


def test_a_talker_interrupting_the_playback_is_heard_and_stops_it(tmp_path, gateway, shared_data):
    # 2.5 s pauses: each answer starts while the previous translation (about 4 s of Spanish) plays
    scene_path, scene = make_scene(tmp_path, shared_data, lines=LINES, gap_s=2.5, level=TALKER_LEVEL)
    text = demo_config_text(scene_path, gateway.base_url, tmp_path, realtime=True).replace(
        "languages: [es, ca]", "languages: [es]")
    config = load_agent_config(None, text)
    sent = []
    room = EchoRoom(speaker_rirs(config.geometry, rt60_s=0.3), gain=scene.scale * SPEAKER_VOLUME)
    agent = Agent(config, room=room, on_segment_event=sent.append)
    agent.start()
    try:
        assert agent.wait_until_drained(timeout_s=60 + len(scene.mixture) / 16000)
    finally:
        agent.close(timeout_s=3.0)
    # An utterance is the box's own voice if it starts well before any sentence (more than the
    # pre-roll and a VAD window) or overlaps none; a sentence cut in two at a pause is not.
    starts = {e.utterance_id: e.start_sample for e in sent if type(e).__name__ == "SpeechStarted"}
    ends = {e.utterance_id: e.end_sample for e in sent if type(e).__name__ == "SpeechEnded"}
    assert starts.keys() == ends.keys()
    lead_samples = 16000 * 6 // 10
    own_voice = [(starts[u], ends[u]) for u in starts
                 if not any(starts[u] < b and ends[u] > a and starts[u] >= a - lead_samples for a, b in scene.utterances)]
    assert not own_voice, f"utterances of the box's own voice at samples {own_voice} (sentences at {scene.utterances})"
    heard = score_lines(LINES, scene.utterances, _transcript(tmp_path))
    assert all(line.records for line in heard), [line.line.text for line in heard if not line.records]
    errors, words = sum(line.errors for line in heard), sum(line.words for line in heard)
    assert errors / words < 0.5, [r["source"] for line in heard for r in line.records]  # espeak through echo and room
    assert agent.speaker.barge_ins >= 1  # someone spoke over a translation, and it stopped
    assert agent.status()["duplex"] == "full"


def _transcript(tmp_path):
    from agent.outputs.transcript import read_transcript

    return read_transcript(tmp_path / "transcript.jsonl")
