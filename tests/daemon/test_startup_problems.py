"""Start-up problems: what will not fix itself is refused with a clean message (check-config exits
1, ``parley run`` exits 78 so systemd does not restart it); a missing mic is a state the daemon
waits in."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.support.agent_cli import assert_refused, config_file, parley
from tests.support.loopback_ws import LoopbackServer
from tests.support.wavfiles import channel_identity_signal, write_wav


@pytest.fixture
def wav_config(tmp_path):
    def make(wav_path) -> object:
        return config_file(tmp_path, f"""\
            capture:
              source: wav
              wav:
                path: {wav_path}
            outputs:
              leds:
                backend: none
              speaker:
                backend: none
            """)
    return make


def test_missing_wav_is_refused(tmp_path, wav_config):
    assert_refused(wav_config(tmp_path / "nope.wav"), "nope.wav: cannot open: No such file or directory", line=4)


def test_a_directory_as_wav_is_refused(tmp_path, wav_config):
    assert_refused(wav_config(tmp_path), "is a directory, not a WAV file", line=4)


def test_truncated_wav_header_is_refused_with_a_reason(tmp_path, wav_config):
    whole = tmp_path / "whole.wav"
    write_wav(whole, channel_identity_signal(160, 4), 16000)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[:30])
    assert_refused(wav_config(cut), "capture.wav.path: " + str(cut) + ": truncated header: the 'fmt ' chunk has")


def test_a_wav_with_too_few_channels_is_refused(tmp_path, wav_config):
    stereo = tmp_path / "stereo.wav"
    write_wav(stereo, channel_identity_signal(160, 2), 16000)
    assert_refused(wav_config(stereo), "has 2 channel(s) but array 'respeaker-4mic-hat' maps channel 3")


def test_unwritable_transcript_and_tts_folders_are_refused_together(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    path = config_file(tmp_path, f"""\
        outputs:
          leds:
            backend: none
          transcript:
            path: {blocker}/transcript.jsonl
          speaker:
            backend: wav
            output_dir: {blocker}
        """)
    checked = parley(["check-config", str(path)])
    assert checked.returncode == 1
    assert f"{path}:5: outputs.transcript.path: '{blocker}' is not a directory" in checked.stderr
    assert f"{path}:8: outputs.speaker.output_dir: '{blocker}' exists but is not a directory" in checked.stderr
    assert_refused(path, "outputs.speaker.output_dir")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_tts_folder_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    path = config_file(tmp_path, f"""\
        outputs:
          speaker:
            backend: wav
            output_dir: {folder / 'tts'}
        """)
    assert_refused(path, "is not writable by this user")


@pytest.mark.skipif(os.path.exists("/dev/gpiomem"), reason="this machine is a Raspberry Pi")
def test_rpi_gpio_leds_off_a_pi_are_refused(tmp_path):
    path = config_file(tmp_path, """\
        outputs:
          leds:
            backend: rpi-gpio
        """)
    assert_refused(path, "rpi-gpio needs a Raspberry Pi", line=3)


def test_a_bogus_pin_factory_in_the_environment_is_refused(tmp_path):
    path = config_file(tmp_path, """\
        outputs:
          leds:
            backend: log
        """)
    assert_refused(path, "PARLEY_PIN_FACTORY='blinky': allowed: board, mock",
                   env_extra={"PARLEY_PIN_FACTORY": "blinky"}, line=3)


def test_a_missing_mic_is_the_mic_lost_state_not_a_crash(tmp_path):
    """No such capture device (a HAT whose driver has not come up): the daemon runs, shows
    mic_lost on the LEDs and in its systemd status, keeps petting the watchdog (so systemd does
    not kill it into a restart loop), retries with backoff, and stops cleanly on SIGTERM."""
    asound = tmp_path / "asound.conf"
    asound.write_text("</usr/share/alsa/alsa.conf>\n")
    path = config_file(tmp_path, """\
        capture:
          device: seeed-4mic-voicecard
          reopen_initial_ms: 100
          reopen_max_ms: 400
        uplink:
          url: ws://127.0.0.1:9
        outputs:
          leds:
            backend: log
          speaker:
            backend: none
        daemon:
          status_interval_s: 1.0
          log_level: debug  # the log LED backend's state lines are debug
        """)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(0.1)
    env = dict(os.environ, ALSA_CONFIG_PATH=str(asound), NOTIFY_SOCKET=str(tmp_path / "notify"),
               WATCHDOG_USEC="2000000")
    env.pop("PARLEY_PIN_FACTORY", None)
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    messages = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None and not (
                any(m.startswith("STATUS=mic_lost;") for m in messages)
                and sum(m == "WATCHDOG=1" for m in messages) >= 3):
            try:
                messages.append(notify.recv(4096).decode())
            except socket.timeout:
                pass
        assert proc.poll() is None, "the daemon exited instead of waiting for its mic"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        notify.close()
    assert any(m.startswith("STATUS=mic_lost;") for m in messages), messages
    assert sum(m == "WATCHDOG=1" for m in messages) >= 3, messages
    assert proc.returncode == 0, err
    assert "leds: mic_lost" in err
    assert "no input device matches 'seeed-4mic-voicecard'" in err
    assert err.count("next try in") >= 2
    assert "Traceback" not in err


class SilentService(LoopbackServer):
    """Accepts the agent's connection and says nothing: the link is up, no result ever comes."""

    def __init__(self):
        super().__init__(subprotocols=None)

    async def _serve(self, ws) -> None:
        await ws.wait_closed()


def test_no_sound_card_for_the_speaker_is_a_waiting_state_like_a_missing_mic(tmp_path):
    """No output device: the agent runs on (captions, transcript), shows output_lost, says why once,
    looks for the device again, and stops cleanly — as for a missing mic, not exit 78 for good."""
    asound = tmp_path / "asound.conf"
    asound.write_text("</usr/share/alsa/alsa.conf>\n")
    wav = tmp_path / "in.wav"
    write_wav(wav, channel_identity_signal(16000, 4), 16000)
    with SilentService() as service:  # a link that is up: offline would outrank output_lost on the LEDs
        path = config_file(tmp_path, f"""\
            capture: {{source: wav, wav: {{path: {wav}, loop: true}}}}
            uplink:
              url: {service.base_url}
            outputs:
              leds:
                backend: log
            daemon:
              log_level: debug  # the log LED backend's state lines are debug
            """)
        env = {k: v for k, v in os.environ.items() if k != "PARLEY_PIN_FACTORY"}
        proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--config", str(path)],
                                stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                env=dict(env, ALSA_CONFIG_PATH=str(asound)))
        time.sleep(6)
        assert proc.poll() is None, "the agent exited instead of waiting for its speaker"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert err.count("speaker failed: no default output device") == 1, err
    assert "waiting for an output device" in err and "leds: output_lost" in err
    assert "Traceback" not in err
