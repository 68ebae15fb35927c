"""The agent's HTTP server on loopback: config rules, the access token, the event stream, /metrics."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.config.schema import load_agent_config
from agent.events import FinalResult, LinkStatus, PartialResult, SpeechEnded, SpeechStarted, SynthesizedSpeech
from agent.outputs.config import HttpConfig
from agent.outputs.http import HttpOutput
from parley_common.typedyaml import ConfigError

TIMEOUT_S = 10


def fetch(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class EventStream:
    """Reads /events on a thread: each ``data:`` message as a dict."""

    def __init__(self, url: str):
        self.messages: list[dict] = []
        self.changed = threading.Condition()
        self._response = urllib.request.urlopen(url + "/events", timeout=TIMEOUT_S)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for line in self._response:
                if line.startswith(b"data: "):
                    with self.changed:
                        self.messages.append(json.loads(line[6:]))
                        self.changed.notify_all()
        except (OSError, ValueError):
            pass

    def wait_for(self, predicate) -> dict:
        with self.changed:
            assert self.changed.wait_for(lambda: any(predicate(m) for m in self.messages), TIMEOUT_S), self.messages
            return next(m for m in self.messages if predicate(m))


@pytest.fixture
def server():
    status = {"frames": 250, "overruns": 2, "utterances": 1, "finals": 1, "reconnects": 1, "dropped_utterances": 0,
              "outbox_depth": 0, "link_up": 1, "last_frame_age_s": 0.02, "capture_state": "running",
              "pipeline_cpu_s": 0.5}
    http = HttpOutput(HttpConfig(enabled=True, port=0), lambda: dict(status), audio_stall_s=5.0)
    http.start()
    yield http
    http.close()


def test_non_loopback_host_without_token_is_a_config_error_naming_file_and_line(tmp_path):
    path = tmp_path / "agent.yaml"
    path.write_text("outputs:\n  http:\n    enabled: true\n    host: 0.0.0.0\n")
    with pytest.raises(ConfigError) as caught:
        load_agent_config(path)
    message = str(caught.value)
    assert f"{path}:3: outputs.http" in message and "token_file is required" in message
    path.write_text(f"outputs:\n  http: {{enabled: true, host: 0.0.0.0, token_file: {tmp_path / 'none'}}}\n")
    with pytest.raises(ConfigError, match=r"agent\.yaml:2: outputs\.http: token_file .* cannot be read"):
        load_agent_config(path)
    path.write_text("outputs:\n  http: {enabled: true, host: '::1', port: 70000}\n")
    with pytest.raises(ConfigError, match=r"outputs\.http\.port"):
        load_agent_config(path)


def test_token_is_required_when_configured(tmp_path):
    (tmp_path / "token").write_text("s3cret\n")
    http = HttpOutput(HttpConfig(enabled=True, port=0, token_file=str(tmp_path / "token")), dict, audio_stall_s=5.0)
    http.start()
    try:
        assert fetch(http.url + "/healthz")[0] == 401
        assert fetch(http.url + "/metrics", token="wrong")[0] == 401
        assert fetch(http.url + "/metrics", token="s3cret")[0] == 200
        assert fetch(http.url + "/?token=s3cret")[0] == 200
    finally:
        http.close()


def test_a_page_gets_a_snapshot_then_partials_and_finals_with_the_direction(server):
    server.publish(LinkStatus(True, "connected"))
    server.publish(FinalResult(1, "good morning", {"es": "buenos días"}, 88.0, 0, 900.0))
    first = EventStream(server.url)
    snapshot = first.wait_for(lambda m: m["type"] == "snapshot" and m["finals"])
    assert snapshot["link_up"] and snapshot["finals"][0]["translations"]["es"] == "buenos días"
    server.publish(SpeechStarted(2, 32000, 121.6, 0.8))
    server.publish(PartialResult(2, "where is", {"es": "dónde está"}))
    partial = first.wait_for(lambda m: m["type"] == "partial")
    assert partial["azimuth_deg"] == 122 and partial["translations"]["es"] == "dónde está"
    server.device_state("muted")
    assert first.wait_for(lambda m: m["type"] == "state")["state"] == "muted"
    later = EventStream(server.url)  # a page that connects mid-utterance sees the partial in its snapshot
    assert later.wait_for(lambda m: m["type"] == "snapshot")["partial"]["utterance"] == 2
    server.publish(FinalResult(2, "where is the station", {"es": "dónde está la estación"}, 120.0, 32000, 1500.0))
    assert later.wait_for(lambda m: m["type"] == "final")["azimuth_deg"] == 120
    assert "Parley captions" in fetch(server.url + "/")[1].decode()


def test_metrics_parse_with_prometheus_client_and_count_latencies(server):
    server.publish(SpeechStarted(1, 0, 45.0, 0.7))
    server.publish(SpeechEnded(1, 16000, 1000.0, "silence", 45.0, 0.7))
    server.publish(FinalResult(1, "hello", {"es": "hola"}, 45.0, 0, 1000.0))
    server.publish(SynthesizedSpeech(1, "es", b"RIFF", received_monotonic_s=time.monotonic(),
                                     spoken_end_monotonic_s=time.monotonic()))
    deadline = time.monotonic() + TIMEOUT_S
    while True:  # the server folds events in on its own loop
        status, body = fetch(server.url + "/metrics")
        assert status == 200
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        value = {s.name: s.value for f in families.values() for s in f.samples}
        if value["parley_end_of_speech_to_first_audio_seconds_count"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert value["parley_frames_total"] == 250 and value["parley_capture_overruns_total"] == 2
    assert value["parley_uplink_reconnects_total"] == 1 and value["parley_pipeline_cpu_seconds_total"] == 0.5
    assert families["parley_end_of_speech_to_final_seconds"].type == "histogram"
    for name in ("parley_end_of_speech_to_final_seconds", "parley_doa_azimuth_degrees", "parley_doa_confidence"):
        assert value[f"{name}_count"] == 1, name
    assert value["parley_end_of_speech_to_first_audio_seconds_count"] == 1
    health = json.loads(fetch(server.url + "/healthz")[1])
    assert health["ok"] and health["capture"] == {"state": "running", "last_frame_age_s": 0.02, "overruns": 2}
