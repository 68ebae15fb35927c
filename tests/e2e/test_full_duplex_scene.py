"""The demo scene with a talker who answers while the box still speaks: the real agent and gateway,
the box's loudspeaker in the simulated room. The interruption is translated, the playback stops
(barge_in: stop) and nothing of the box's own voice becomes an utterance."""

from __future__ import annotations

from agent.config.schema import load_agent_config
from agent.daemon import Agent
from agent.demo import SPEAKER_VOLUME, TALKER_LEVEL, Line, demo_config_text, make_scene
from agent.simulation_echo import EchoRoom, speaker_rirs
from tests.support.speech import word_errors

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
    finals = agent.console.finals_shown
    started = [e for e in sent if type(e).__name__ == "SpeechStarted"]
    assert len(started) == len(LINES), f"{len(started)} utterances for {len(LINES)} sentences: the box heard itself"
    assert finals == len(LINES)
    records = [r["source"] for r in _transcript(tmp_path)]
    errors = sum(word_errors(line.text, said)[0] for line, said in zip(LINES, records))
    words = sum(len(line.text.split()) for line in LINES)
    assert errors / words < 0.5, records  # espeak-ng speech through the echo and the room
    assert agent.speaker.barge_ins >= 1  # someone spoke over a translation, and it stopped
    assert agent.status()["duplex"] == "full"


def _transcript(tmp_path):
    from agent.outputs.transcript import read_transcript

    return read_transcript(tmp_path / "transcript.jsonl")
