"""Faults in what the config names, caught by ``check-config`` with file:line, and refused by
``parley run`` with the same text and exit 78 — never a traceback (issue 21, cases 3 and 4)."""

from __future__ import annotations

import os
import socket

import pytest

from tests.support.agent_cli import assert_refused, config_file, parley
from tests.support.wavfiles import channel_identity_signal, write_wav


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "in.wav"
    write_wav(path, channel_identity_signal(1600, 4), 16000)
    return path


def keyed_config(tmp_path, wav, key_line: str):
    return config_file(tmp_path, f"""\
        capture: {{source: wav, wav: {{path: {wav}}}}}
        uplink:
          url: ws://127.0.0.1:9
          {key_line}
        outputs:
          leds: {{backend: none}}
          speaker: {{backend: none}}
        """)


def test_a_missing_key_file_is_refused_at_its_line(tmp_path, wav):
    path = keyed_config(tmp_path, wav, f"key_file: {tmp_path / 'nokey'}")
    assert_refused(path, "uplink.key_file: '" + str(tmp_path / "nokey") + "' cannot be read (No such file or directory); "
                   "allowed: a file readable by this user holding the subscription key", line=4)


def test_a_directory_as_key_file_is_refused(tmp_path, wav):
    path = keyed_config(tmp_path, wav, f"key_file: {tmp_path}")
    assert_refused(path, "cannot be read (Is a directory)", line=4)


def test_an_empty_key_file_is_refused(tmp_path, wav):
    (tmp_path / "key").write_text("\n")
    path = keyed_config(tmp_path, wav, f"key_file: {tmp_path / 'key'}")
    assert_refused(path, "is empty; allowed: a file holding the subscription key", line=4)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_key_file_is_refused(tmp_path, wav):
    (tmp_path / "key").write_text("secret")
    (tmp_path / "key").chmod(0)
    path = keyed_config(tmp_path, wav, f"key_file: {tmp_path / 'key'}")
    assert_refused(path, "cannot be read (Permission denied)", line=4)


def test_an_unset_key_env_is_refused(tmp_path, wav):
    path = keyed_config(tmp_path, wav, "key_env: PARLEY_NO_SUCH_KEY")
    assert_refused(path, "uplink.key_env: environment variable PARLEY_NO_SUCH_KEY is not set", line=4,
                   env_drop=("PARLEY_NO_SUCH_KEY",))
    checked = parley(["check-config", str(path)], {"PARLEY_NO_SUCH_KEY": "k"})
    assert checked.returncode == 0, checked.stderr


def test_binary_garbage_as_config_is_a_clear_error(tmp_path):
    path = tmp_path / "agent.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    assert_refused(path, "not a text file")
    path.write_bytes(b"daemon: {log_level: info}\n\x00\x01\x02")
    assert_refused(path, "not a text file: control character #x00", line=2)


def test_a_yaml_error_is_reported_at_the_line_to_edit(tmp_path):
    path = tmp_path / "agent.yaml"
    path.write_text("daemon:\n  log_level: [info\n")
    assert_refused(path, "not valid YAML", line=2)
    path.write_text("outputs:\n  transcript: {path: /tmp/x\n\n\n")
    assert_refused(path, "not valid YAML", line=2)


def test_an_http_port_in_use_exits_78_naming_the_key(tmp_path, wav):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    path = config_file(tmp_path, f"""\
        capture: {{source: wav, wav: {{path: {wav}}}}}
        uplink: {{url: "ws://127.0.0.1:9"}}
        outputs:
          leds: {{backend: none}}
          speaker: {{backend: none}}
          http: {{enabled: true, port: {port}}}
        """)
    try:
        ran = parley(["run", "--config", str(path)])
    finally:
        holder.close()
    assert ran.returncode == 78, ran.stderr
    assert f"parley: cannot start: outputs.http.port {port} on 127.0.0.1 cannot be listened on (" in ran.stderr
    assert "ss -ltnp" in ran.stderr and "Traceback" not in ran.stderr


# -- case 4: what check-config passed and run then failed on ------------------------------------

@pytest.mark.parametrize("key, value, line, expected", [
    ("from_language", "en_US", 3, "uplink.from_language: 'en_US' is not a BCP-47 language tag"),
    ("to_languages", "[spanish]", 3, "uplink.to_languages[0]: 'spanish' is not a BCP-47 language tag"),
])
def test_one_language_codes_are_checked_like_the_parties(tmp_path, wav, key, value, line, expected):
    path = config_file(tmp_path, f"""\
        capture: {{source: wav, wav: {{path: {wav}}}}}
        uplink:
          {key}: {value}
          url: ws://127.0.0.1:9
        outputs: {{leds: {{backend: none}}, speaker: {{backend: none}}}}
        """)
    assert_refused(path, expected, line=line)


@pytest.mark.parametrize("languages, line, expected", [
    ("from_language: xx-YY", 3, "uplink.from_language: the gateway does not recognize 'xx-YY'; it recognizes: en-US"),
    ("to_languages: [de]", 3, "uplink.to_languages: the gateway cannot translate 'en-US' into de; from en it offers: "),
])
def test_one_language_codes_are_checked_against_the_gateway(tmp_path, wav, gateway, languages, line, expected):
    path = config_file(tmp_path, f"""\
        capture: {{source: wav, wav: {{path: {wav}}}}}
        uplink:
          {languages}
          url: {gateway.base_url}
        outputs: {{leds: {{backend: none}}, speaker: {{backend: none}}}}
        """)
    assert_refused(path, expected, line=line)


@pytest.mark.parametrize("section, key", [("uplink", "spool_dir"), ("outputs.subtitles", "directory")])
def test_a_regular_file_where_a_folder_belongs_is_refused(tmp_path, wav, section, key):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    nested = "outputs:\n  subtitles:\n    directory" if section == "outputs.subtitles" else "uplink:\n  spool_dir"
    path = tmp_path / "agent.yaml"
    path.write_text(f"capture: {{source: wav, wav: {{path: {wav}}}}}\n{nested}: {blocker}\n")
    line = 4 if section == "outputs.subtitles" else 3
    assert_refused(path, f"{section}.{key}: '{blocker}' exists but is not a directory; a folder is needed here",
                   line=line)


def four_channel_wav(tmp_path):
    path = tmp_path / "four.wav"
    write_wav(path, channel_identity_signal(1600, 4), 16000)
    return path


def test_a_profile_too_small_for_the_recording_is_refused_naming_the_ones_that_fit(tmp_path):
    path = config_file(tmp_path, f"""\
        array: {{profile: respeaker-2mic-hat}}
        capture:
          source: wav
          wav: {{path: {four_channel_wav(tmp_path)}}}
        outputs: {{leds: {{backend: none}}, speaker: {{backend: none}}}}
        """)
    assert_refused(path, "delivers 4 channel(s) but array 'respeaker-2mic-hat' expects a 2-channel stream; allowed: "
                   "array.profile: linear-4mic or respeaker-4mic-hat (4 channels)", line=4)


def test_a_four_mic_profile_on_the_six_mic_hats_eight_channels_is_refused_at_start(tmp_path):
    """A card with exactly 8 input channels (an ALSA ``multi`` PCM, as the 6-mic HAT's AC108 pair)."""
    asound = tmp_path / "asound.conf"
    asound.write_text("</usr/share/alsa/alsa.conf>\n"
                      'pcm.raw8 { type file; slave.pcm "null"; file "/dev/null"; infile "/dev/zero"; format "raw" }\n'
                      "pcm.seeed8mic { type multi; slaves.a { pcm raw8; channels 8 }\n"
                      + "".join(f"  bindings.{c} {{ slave a; channel {c} }}\n" for c in range(8)) + "}\n")
    path = config_file(tmp_path, """\
        array: {profile: respeaker-4mic-hat}
        capture: {device: seeed8mic}
        uplink: {url: "ws://127.0.0.1:9"}
        outputs: {leds: {backend: none}, speaker: {backend: none}}
        """)
    ran = parley(["run", "--config", str(path)], {"ALSA_CONFIG_PATH": str(asound)})
    assert ran.returncode == 78, ran.stderr
    assert ("input device 'seeed8mic' delivers 8 channel(s) but array 'respeaker-4mic-hat' expects a 4-channel "
            "stream; allowed: array.profile: matrix-voice or respeaker-6mic-hat (8 channels), or capture.channels: 4"
            in ran.stderr) and "Traceback" not in ran.stderr, ran.stderr


def test_a_captions_history_file_that_cannot_be_made_is_refused(tmp_path, wav):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    path = config_file(tmp_path, f"""\
        capture: {{source: wav, wav: {{path: {wav}}}}}
        outputs:
          http:
            enabled: true
            history_file: {blocker}/history.jsonl
        """)
    assert_refused(path, f"outputs.http.history_file: '{blocker}' is not a directory", line=5)
