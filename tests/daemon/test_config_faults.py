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
