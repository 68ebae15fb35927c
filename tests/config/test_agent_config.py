"""The agent config: the shipped reference validates, and bad files fail with every problem named."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from agent.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE, main
from agent.config.reference import render_reference
from agent.config.schema import AgentConfig, load_agent_config
from parley_common.typedyaml import ConfigError


def test_shipped_reference_is_valid_and_equals_the_defaults(repo_root):
    config = load_agent_config(repo_root / "config" / "agent.yaml")
    assert config == AgentConfig()


def test_shipped_reference_is_in_sync_with_the_schema(repo_root):
    shipped = (repo_root / "config" / "agent.yaml").read_text()
    result = subprocess.run([sys.executable, "-m", "agent.cli", "config-reference"],
                            capture_output=True, text=True, check=True)
    assert result.stdout == shipped, "regenerate with: parley config-reference > config/agent.yaml"


def test_reference_names_every_key_of_every_section():
    text = render_reference(AgentConfig)
    for section in ("array", "capture", "frontend", "uplink", "outputs", "daemon"):
        assert f"\n{section}:" in "\n" + text


def test_typo_wrong_type_and_bad_enum_are_all_reported_with_lines_and_suggestions(tmp_path):
    bad = tmp_path / "agent.yaml"
    bad.write_text(textwrap.dedent("""\
        array:
          profile: respeaker-4mic-hat
        daemon:
          log_levle: info
          status_interval_s: often
        uplink:
          backend: azur
        """))
    with pytest.raises(ConfigError) as caught:
        load_agent_config(bad)
    issues = {issue.key_path: issue for issue in caught.value.issues}
    assert set(issues) == {"daemon.log_levle", "daemon.status_interval_s", "uplink.backend"}
    assert issues["daemon.log_levle"].line == 4
    assert "did you mean 'log_level'" in issues["daemon.log_levle"].message
    assert issues["daemon.status_interval_s"].line == 5
    assert "expected a number" in issues["daemon.status_interval_s"].message
    assert issues["uplink.backend"].line == 7
    assert "did you mean 'azure'" in issues["uplink.backend"].message
    assert all(issue.file == str(bad) for issue in issues.values())


def test_unknown_array_profile_lists_the_available_ones(tmp_path):
    bad = tmp_path / "agent.yaml"
    bad.write_text("array:\n  profile: respeaker-9mic\n")
    with pytest.raises(ConfigError) as caught:
        load_agent_config(bad)
    message = str(caught.value)
    assert "respeaker-9mic" in message and "respeaker-6mic-hat" in message and "mono" in message


def test_inline_geometry_replaces_the_profile(tmp_path):
    path = tmp_path / "agent.yaml"
    path.write_text(textwrap.dedent("""\
        array:
          geometry:
            mics_m: [[0.05, 0, 0], [-0.05, 0, 0]]
            channel_map: [1, 0]
            native_channels: 2
        """))
    geometry = load_agent_config(path).geometry
    assert geometry.n_mics == 2 and geometry.channel_map == (1, 0)
    assert geometry.aperture_m == pytest.approx(0.1)


def test_check_config_exit_codes_and_redaction(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text("daemon:\n  log_level: debug\n")
    assert main(["check-config", str(good)]) == EXIT_OK
    assert "log_level: debug" in capsys.readouterr().out

    bad = tmp_path / "bad.yaml"
    bad.write_text("daemon:\n  log_level: loud\n")
    assert main(["check-config", str(bad)]) == EXIT_INVALID
    err = capsys.readouterr().err
    assert f"{bad}:2: daemon.log_level" in err and "debug, info, warning, error" in err

    with pytest.raises(SystemExit) as usage:
        main(["check-config"])
    assert usage.value.code == EXIT_USAGE


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "agent.yaml"
    path.write_text("daemon:\n  log_level: [info\n")
    with pytest.raises(ConfigError) as caught:
        load_agent_config(path)
    assert caught.value.issues[0].line is not None
    assert "not valid YAML" in str(caught.value)


def test_cross_field_problems_are_reported_with_lines_all_at_once(tmp_path):
    bad = tmp_path / "agent.yaml"
    bad.write_text(textwrap.dedent("""\
        capture:
          sample_rate_hz: 48000
          reopen_initial_ms: 5000
          reopen_max_ms: 1000
        frontend:
          vad:
            engine: silero
        uplink:
          url: not-a-url
        """))
    with pytest.raises(ConfigError) as caught:
        load_agent_config(bad)
    issues = {issue.key_path: issue for issue in caught.value.issues}
    assert set(issues) == {"capture.sample_rate_hz", "capture.reopen_initial_ms", "uplink.url"}
    assert issues["capture.sample_rate_hz"].line == 2
    assert "the silero VAD cannot run at capture.sample_rate_hz 48000; allowed with silero: 16000" in str(
        issues["capture.sample_rate_hz"])
    assert issues["capture.reopen_initial_ms"].line == 3
    assert issues["uplink.url"].line == 9
    assert "'not-a-url' has no scheme; allowed: ws://" in issues["uplink.url"].message


@pytest.mark.parametrize("rate_hz, engine, ok", [
    (22050, "webrtc", False), (44100, "webrtc", False), (8000, "webrtc", True), (32000, "webrtc", True),
    (48000, "webrtc", True), (16000, "silero", True), (8000, "silero", False),
])
def test_vad_rates(tmp_path, rate_hz, engine, ok):
    text = f"capture:\n  sample_rate_hz: {rate_hz}\nfrontend:\n  vad:\n    engine: {engine}\n  postfilter:\n    type: none\n"
    if ok:
        assert load_agent_config(tmp_path / "a.yaml", text=text).capture.sample_rate_hz == rate_hz
    else:
        with pytest.raises(ConfigError, match=f"a.yaml:2: capture.sample_rate_hz: the {engine} VAD cannot run"):
            load_agent_config(tmp_path / "a.yaml", text=text)


@pytest.mark.parametrize("url, problem", [
    ("http://example.com/speech", "has scheme 'http'"),
    ("ws://", "has no host"),
    ("ws://host:99999/x", "is not a valid URL"),
])
def test_bad_uplink_urls_are_named(tmp_path, url, problem):
    with pytest.raises(ConfigError, match=problem):
        load_agent_config(tmp_path / "a.yaml", text=f"uplink:\n  url: {url}\n")
    assert load_agent_config(tmp_path / "a.yaml", text="uplink:\n  url: wss://h.example:443/v1\n").uplink.url


@pytest.mark.parametrize("text, key, message", [
    ("capture:\n  sample_rate_hz: 44100\nfrontend:\n  vad:\n    engine: webrtc\n  postfilter:\n    type: deepfilternet\n",
     "frontend.postfilter.type", "DeepFilterNet3 runs at 48000 Hz, which capture.sample_rate_hz 44100 does not divide"),
    ("frontend:\n  postfilter:\n    speech_presence_snr_db: 40\n", "frontend.postfilter.speech_presence_snr_db", "35.0"),
    ("frontend:\n  postfilter:\n    type: deepfiltrenet\n", "frontend.postfilter.type", "deepfilternet"),
    ("frontend:\n  postfilter:\n    max_attenuation_db: 0\n", "frontend.postfilter.max_attenuation_db", "1.0"),
])
def test_postfilter_keys_are_validated_with_lines(tmp_path, text, key, message):
    with pytest.raises(ConfigError) as caught:
        load_agent_config(tmp_path / "a.yaml", text=text)
    issues = {issue.key_path: issue for issue in caught.value.issues}
    assert key in issues and issues[key].line is not None
    assert message in str(issues[key])
