"""/healthz and /metrics of the real agent with the real gateway: healthy while it works, 503 when the
link is down past its bound and when capture stops delivering audio."""

from __future__ import annotations

import urllib.request

import pytest
import srt
from prometheus_client.parser import text_string_to_metric_families

from agent.config.schema import load_agent_config
from agent.daemon import Agent
from agent.outputs.transcript import read_transcript

from tests.support.captions_scene import agent_yaml, free_port, get_json, start_gateway, wait_until, write_scene

pytestmark = pytest.mark.slow  # starts its own real gateway

GAP_S = 3.0


def metric_values(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}


def test_healthz_goes_503_when_the_link_is_down_past_its_bound_and_when_audio_stops(tmp_path):
    scene = write_scene(tmp_path / "scene.wav", utterances=2, gap_s=GAP_S)
    gateway_port = free_port()
    gateway = start_gateway(gateway_port)
    config = tmp_path / "agent.yaml"
    config.write_text(agent_yaml(scene, gateway_port, 0, tmp_path, loop=False, link_down_bound_s=1.0)
                      + "daemon: {audio_stall_s: 1.0}\n")
    agent = Agent(load_agent_config(config))
    agent.start()
    try:
        url = agent.http.url
        transcript = tmp_path / "transcript.jsonl"
        wait_until(lambda: transcript.exists() and read_transcript(transcript), 60, "the first final")
        status, health = get_json(url + "/healthz")
        assert status == 200 and health["ok"], health  # audio flows (the second utterance is still to come)
        assert health["link"]["up"] and health["finals"] == 1 and health["capture"]["state"] == "running"
        values = metric_values(url)
        assert values["parley_finals_total"] == 1 and values["parley_frames_total"] > 100
        assert values["parley_end_of_speech_to_final_seconds_count"] == 1
        assert values["parley_pipeline_cpu_seconds_total"] > 0

        gateway.close()
        _, health = wait_until(lambda: (r := get_json(url + "/healthz"))[0] == 503
                               and any("link down" in p for p in r[1]["problems"]) and r, 30, "503 for the link")
        assert not health["link"]["up"] and health["device_state"] in ("offline", "error")
        gateway = start_gateway(gateway_port)
        wait_until(lambda: get_json(url + "/healthz")[1]["link"]["up"], 30, "the link back up")
        assert metric_values(url)["parley_uplink_reconnects_total"] >= 1

        wait_until(lambda: agent.input_ended, 60, "the end of the recording")
        status, health = wait_until(lambda: (r := get_json(url + "/healthz"))[0] == 503
                                    and any("no audio" in p for p in r[1]["problems"]) and r, 30, "503 for audio")
        assert health["capture"]["last_frame_age_s"] > 1.0 and health["link"]["up"]
        # the live subtitles: one cue block per final so far, timed by the audio clock
        cues = list(srt.parse((tmp_path / "subtitles" / "captions.es.srt").read_text()))
        assert cues and len({c.start for c in cues}) == len(cues)
        assert 2.0 < cues[0].start.total_seconds() < GAP_S + 0.5  # the talker starts GAP_S into the recording
    finally:
        agent.close()
        gateway.close()
